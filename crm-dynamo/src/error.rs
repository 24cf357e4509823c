//! SDK errors turned into the domain's words.
//!
//! Only the operation name and the error code survive: DynamoDB's messages may quote key values,
//! and whatever an error carries ends up in logs, where customer data must never be.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use crm_domain::RepositoryError;

/// A DynamoDB failure, stripped to what is safe to log.
#[derive(Debug)]
pub(crate) struct DynamoFailure {
    operation: &'static str,
    kind: &'static str,
    code: Option<String>,
}

impl fmt::Display for DynamoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynamoDB {} failed: {}", self.operation, self.kind)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DynamoFailure {}

impl DynamoFailure {
    pub(crate) fn new(operation: &'static str, kind: &'static str, code: Option<&str>) -> Self {
        Self {
            operation,
            kind,
            code: code.map(str::to_owned),
        }
    }
}

/// Error codes that mean "not now": throttling, an overloaded or failing service, or a write that
/// met an item another transaction holds. Both spellings occur: operations fail with
/// `…Exception` codes, a cancelled transaction names each item's reason without the suffix.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "ThrottlingError"
            | "ProvisionedThroughputExceededException"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "TransactionInProgressException"
            | "TransactionConflictException"
            | "TransactionConflict"
            | "ReplicatedWriteConflictException"
    )
}

/// Tells the SDK to retry a single-item write that failed with `TransactionConflictException`.
///
/// DynamoDB refuses a `PutItem`, `UpdateItem` or `DeleteItem` on an item that a transaction is
/// writing at that moment. The SDK's own classifier does not count that code as retryable, so a
/// plain patch racing a transactional one (an email change of the same customer) would fail
/// outright; it is a race, and the retry (with the SDK's backoff and attempt limit) settles it
/// like any other: every write is conditional, so retrying loses nothing.
#[derive(Debug, Default)]
pub(crate) struct TransactionConflictRetry;

impl aws_sdk_dynamodb::config::retry::ClassifyRetry for TransactionConflictRetry {
    fn classify_retry(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::InterceptorContext,
    ) -> aws_sdk_dynamodb::config::retry::RetryAction {
        use aws_sdk_dynamodb::config::retry::RetryAction;
        use aws_sdk_dynamodb::operation::{
            delete_item::DeleteItemError, put_item::PutItemError, update_item::UpdateItemError,
        };
        let Some(Err(error)) = context.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = error
            .downcast_ref::<UpdateItemError>()
            .and_then(ProvideErrorMetadata::code)
            .or_else(|| {
                error
                    .downcast_ref::<PutItemError>()
                    .and_then(ProvideErrorMetadata::code)
            })
            .or_else(|| {
                error
                    .downcast_ref::<DeleteItemError>()
                    .and_then(ProvideErrorMetadata::code)
            });
        if code == Some("TransactionConflictException") {
            RetryAction::transient_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "crm: retry single-item writes that met a transaction"
    }
}

/// How long a client should wait before retrying after the store said "not now".
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Maps an SDK error that no condition explains: timeouts, connection failures and throttling
/// become [`RepositoryError::Unavailable`], anything else [`RepositoryError::Unexpected`].
pub(crate) fn classify<E, R>(operation: &'static str, error: &SdkError<E, R>) -> RepositoryError
where
    E: ProvideErrorMetadata,
{
    let code = error.code();
    let (kind, transient) = match error {
        SdkError::TimeoutError(_) => ("timed out", true),
        SdkError::DispatchFailure(_) => ("could not reach the endpoint", true),
        SdkError::ResponseError(_) => ("unreadable response", true),
        SdkError::ServiceError(_) => ("service error", code.is_some_and(is_transient)),
        SdkError::ConstructionFailure(_) => ("request construction failed", false),
        _ => ("unknown SDK error", false),
    };
    let failure = DynamoFailure::new(operation, kind, code);
    if transient {
        RepositoryError::Unavailable {
            retry_after: Some(RETRY_AFTER),
            source: Box::new(failure),
        }
    } else {
        RepositoryError::unexpected(failure)
    }
}

/// A transaction's per-item outcome, from `CancellationReason::code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    /// This item did not stop the transaction.
    Fine,
    /// Its condition failed.
    ConditionFailed,
    /// Another transaction or write was on the item, or the store throttled: try again.
    Retry,
    /// Anything else (validation): a bug.
    Other,
}

impl ItemOutcome {
    pub(crate) fn from_code(code: Option<&str>) -> Self {
        match code {
            None | Some("None") => Self::Fine,
            Some("ConditionalCheckFailed") => Self::ConditionFailed,
            Some(code) if is_transient(code) => Self::Retry,
            Some(_) => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cancellation_reason_dynamodb_documents_has_its_outcome() {
        for (code, outcome) in [
            (None, ItemOutcome::Fine),
            (Some("None"), ItemOutcome::Fine),
            (Some("ConditionalCheckFailed"), ItemOutcome::ConditionFailed),
            (Some("TransactionConflict"), ItemOutcome::Retry),
            (Some("ProvisionedThroughputExceeded"), ItemOutcome::Retry),
            (Some("ThrottlingError"), ItemOutcome::Retry),
            (Some("ItemCollectionSizeLimitExceeded"), ItemOutcome::Other),
            (Some("ValidationError"), ItemOutcome::Other),
        ] {
            assert_eq!(ItemOutcome::from_code(code), outcome, "{code:?}");
        }
    }

    #[test]
    fn throttling_timeouts_and_conflicts_are_transient_and_validation_is_not() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "InternalServerError",
            "RequestTimeout",
            "TransactionConflictException",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
        ] {
            assert!(!is_transient(code), "{code}");
        }
    }
}
