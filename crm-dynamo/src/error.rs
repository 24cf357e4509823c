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

/// Error codes that mean "not now": throttling, an overloaded or failing service.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionInProgressException"
            | "TransactionConflict"
            | "ThrottlingError"
    )
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
