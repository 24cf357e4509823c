//! DynamoDB call metrics, through the `metrics` facade: an SDK interceptor that every client built
//! from [`DynamoSettings::sdk_config`](crate::DynamoSettings::sdk_config) carries.
//!
//! | metric | kind | unit | labels | counts |
//! | --- | --- | --- | --- | --- |
//! | [`CALLS`] `dynamodb_calls` | counter | count | `operation` | operations the SDK ran to the end (retries inside one) |
//! | [`ERRORS`] `dynamodb_errors` | counter | count | `operation` | calls that failed for any reason but a condition of the store's own (see below) |
//! | [`RETRIES`] `dynamodb_retries` | counter | count | `operation` | attempts after the first, whatever their cause |
//! | [`THROTTLES`] `dynamodb_throttles` | counter | count | `operation` | attempts DynamoDB throttled |
//! | [`CANCELLED`] `dynamodb_cancelled` | counter | count | `operation` | calls dropped before their end (see below) |
//! | [`CALL_DURATION`] `dynamodb_call_duration_ms` | histogram | milliseconds | `operation` | one call, retries and back-off included; a cancelled call until it was dropped |
//!
//! `operation` is the API name (`GetItem`, `TransactWriteItems`, …; `other` for a name not in
//! [`OPERATIONS`]), never a table name, key or value. A throttle is an attempt answered
//! `ThrottlingException`, `ProvisionedThroughputExceededException` or `RequestLimitExceeded`, or a
//! `TransactionCanceledException` with a `ThrottlingError` or `ProvisionedThroughputExceeded`
//! reason. A call that ends in `ConditionalCheckFailedException`, or in a transaction cancelled by
//! condition failures only, is not an error: that is how the store learns that an id or email is
//! taken, or a version changed.
//!
//! A call dropped before its end is recorded as its state, kept with the SDK's future, is dropped:
//! it counts in [`CANCELLED`] and its time so far in [`CALL_DURATION`], so that the slowest calls
//! stay in the latency figures. What drops a call: the repository's deadline when it comes first,
//! a request's deadline, the failure of a sibling call run beside it (`describe`, the merged
//! queries of a listing), a request the server stopped serving. It is not in [`CALLS`],
//! [`ERRORS`] or [`RETRIES`]; a throttled attempt before the drop is in [`THROTTLES`]. A call
//! that the SDK's own operation timeout ends runs to its end as an error: it counts in [`CALLS`]
//! and [`ERRORS`], with its duration. [`connect`](crate::DynamoCustomerRepository::connect) sets
//! that timeout to the repository's deadline, and on an operation's first call it usually fires
//! first.
//!
//! Nothing is recorded until a binary installs a recorder (`metrics::set_global_recorder`); until
//! then each call costs the interceptor a few branches and an `Instant`. The error body is read
//! (it is already in memory) only when the status is 400 or more, and only its error codes are
//! kept, never its message or items.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use metrics::Unit;

/// Counter: DynamoDB operations run to the end.
pub const CALLS: &str = "dynamodb_calls";
/// Counter: calls that failed, except for the store's own conditions.
pub const ERRORS: &str = "dynamodb_errors";
/// Counter: attempts after the first.
pub const RETRIES: &str = "dynamodb_retries";
/// Counter: attempts DynamoDB throttled.
pub const THROTTLES: &str = "dynamodb_throttles";
/// Counter: calls dropped before their end.
pub const CANCELLED: &str = "dynamodb_cancelled";
/// Histogram, milliseconds: the duration of one call, retries included.
pub const CALL_DURATION: &str = "dynamodb_call_duration_ms";
/// The one label of every DynamoDB metric: the operation.
pub const OPERATION: &str = "operation";
/// The `operation` of a name not in [`OPERATIONS`].
pub const OTHER_OPERATION: &str = "other";

/// The operation names recorded as themselves; any other is [`OTHER_OPERATION`], so that the
/// label's values stay a short, fixed list.
pub const OPERATIONS: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
    "DescribeTable",
    "CreateTable",
    "UpdateTable",
    "DeleteTable",
    "DescribeTimeToLive",
    "UpdateTimeToLive",
    "ListTables",
];

/// Gives every DynamoDB metric its unit and description in the installed recorder. Call it once,
/// after installing the recorder (the EMF exporter writes a metric's unit only once described).
pub fn describe() {
    metrics::describe_counter!(CALLS, Unit::Count, "DynamoDB operations run to the end");
    metrics::describe_counter!(
        ERRORS,
        Unit::Count,
        "DynamoDB calls that failed (not counting the store's own conditions)"
    );
    metrics::describe_counter!(RETRIES, Unit::Count, "DynamoDB attempts after the first");
    metrics::describe_counter!(THROTTLES, Unit::Count, "DynamoDB attempts throttled");
    metrics::describe_counter!(
        CANCELLED,
        Unit::Count,
        "DynamoDB calls dropped before their end (a deadline, a failed sibling call, a dropped request)"
    );
    metrics::describe_histogram!(
        CALL_DURATION,
        Unit::Milliseconds,
        "DynamoDB call duration, retries included"
    );
}

/// The interceptor that records the metrics above for every call of the client it is in.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CallMetrics;

/// One call under way, kept in the call's config bag, which the SDK drops with the call: when the
/// call ran to its end, after [`CallMetrics::read_after_execution`] has marked it; when the call's
/// future was dropped before, with nothing marked, and the drop records the cancellation.
#[derive(Debug)]
struct CallUnderWay {
    started: Instant,
    operation: &'static str,
    ended: AtomicBool,
}

impl Storable for CallUnderWay {
    type Storer = StoreReplace<Self>;
}

impl Drop for CallUnderWay {
    fn drop(&mut self) {
        if !*self.ended.get_mut() {
            metrics::counter!(CANCELLED, OPERATION => self.operation).increment(1);
            record_duration(self.operation, self.started);
        }
    }
}

/// Records the duration of a call of `operation` that started at `started`.
fn record_duration(operation: &'static str, started: Instant) {
    metrics::histogram!(CALL_DURATION, OPERATION => operation)
        .record(started.elapsed().as_secs_f64() * 1000.0);
}

impl Intercept for CallMetrics {
    fn name(&self) -> &'static str {
        "crm: DynamoDB call metrics"
    }

    // Not `read_before_execution`: a client's interceptors see that before the operation's
    // configuration, its name included, is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let call = CallUnderWay {
            started: Instant::now(),
            operation: operation(cfg),
            ended: AtomicBool::new(false),
        };
        cfg.interceptor_state().store_put(call);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.response().map(answer) == Some(Answer::Throttled) {
            metrics::counter!(THROTTLES, OPERATION => operation(cfg)).increment(1);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation(cfg);
        metrics::counter!(CALLS, OPERATION => operation).increment(1);
        let attempts = cfg
            .load::<RequestAttempts>()
            .map_or(0, RequestAttempts::attempts);
        if attempts > 1 {
            metrics::counter!(RETRIES, OPERATION => operation).increment(u64::from(attempts - 1));
        }
        let failed = matches!(context.output_or_error(), Some(Err(_)) | None)
            && context.response().map(answer) != Some(Answer::Condition);
        if failed {
            metrics::counter!(ERRORS, OPERATION => operation).increment(1);
        }
        if let Some(call) = cfg.load::<CallUnderWay>() {
            call.ended.store(true, Ordering::Relaxed);
            record_duration(operation, call.started);
        }
        Ok(())
    }
}

/// The call's operation, as one of [`OPERATIONS`] or [`OTHER_OPERATION`].
fn operation(cfg: &ConfigBag) -> &'static str {
    let name = cfg.load::<Metadata>().map_or("", Metadata::name);
    OPERATIONS
        .iter()
        .find(|known| **known == name)
        .copied()
        .unwrap_or(OTHER_OPERATION)
}

/// What one attempt's response says, as far as the metrics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A success, or an error of no interest here.
    Other,
    /// DynamoDB throttled the attempt.
    Throttled,
    /// A condition of the store failed: an answer, not a failure.
    Condition,
}

fn answer(response: &HttpResponse) -> Answer {
    if response.status().as_u16() < 400 {
        return Answer::Other;
    }
    response.body().bytes().map_or(Answer::Other, classify)
}

/// The error codes of a DynamoDB (JSON 1.0 protocol) error body: `__type` and a cancelled
/// transaction's reasons. Messages and items are never read.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(rename = "CancellationReasons", default)]
    reasons: Vec<Reason>,
}

#[derive(serde::Deserialize)]
struct Reason {
    #[serde(rename = "Code", default)]
    code: Option<String>,
}

const THROTTLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];
const THROTTLE_REASONS: &[&str] = &[
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// Classifies an error body (status 400 or more).
fn classify(body: &[u8]) -> Answer {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(body) else {
        return Answer::Other;
    };
    // `com.amazonaws.dynamodb.v20120810#ThrottlingException`, or the bare code.
    let code = body.kind.rsplit('#').next().unwrap_or_default();
    let reasons = || body.reasons.iter().filter_map(|r| r.code.as_deref());
    match code {
        _ if THROTTLE_CODES.contains(&code) => Answer::Throttled,
        "ConditionalCheckFailedException" => Answer::Condition,
        "TransactionCanceledException" => {
            if reasons().any(|reason| THROTTLE_REASONS.contains(&reason)) {
                Answer::Throttled
            } else if reasons().any(|reason| reason == "ConditionalCheckFailed")
                && reasons().all(|reason| matches!(reason, "None" | "ConditionalCheckFailed"))
            {
                Answer::Condition
            } else {
                Answer::Other
            }
        }
        _ => Answer::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_throttles_with_or_without_their_namespace() {
        for code in THROTTLE_CODES {
            let qualified = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"slow down"}}"#
            );
            assert_eq!(classify(qualified.as_bytes()), Answer::Throttled, "{code}");
            let bare = format!(r#"{{"__type":"{code}"}}"#);
            assert_eq!(classify(bare.as_bytes()), Answer::Throttled, "{code}");
        }
    }

    #[test]
    fn a_transaction_cancelled_by_a_throttled_item_is_a_throttle() {
        let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "CancellationReasons":[{"Code":"None"},{"Code":"ThrottlingError","Message":"x"}]}"#;
        assert_eq!(classify(body), Answer::Throttled);
        let body = br#"{"__type":"TransactionCanceledException",
            "CancellationReasons":[{"Code":"ProvisionedThroughputExceeded"}]}"#;
        assert_eq!(classify(body), Answer::Throttled);
    }

    #[test]
    fn the_store_s_own_conditions_are_answers_not_errors() {
        assert_eq!(
            classify(
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#
            ),
            Answer::Condition
        );
        let body = br#"{"__type":"TransactionCanceledException","CancellationReasons":[
            {"Code":"None"},{"Code":"ConditionalCheckFailed","Item":{"email":{"S":"ada@example.com"}}}]}"#;
        assert_eq!(classify(body), Answer::Condition);
        let conflict = br#"{"__type":"TransactionCanceledException","CancellationReasons":[
            {"Code":"TransactionConflict"}]}"#;
        assert_eq!(classify(conflict), Answer::Other);
        // A cancellation that gives no reason is no condition of ours.
        let unexplained = br#"{"__type":"TransactionCanceledException"}"#;
        assert_eq!(classify(unexplained), Answer::Other);
    }

    #[test]
    fn anything_else_is_neither() {
        for body in [
            &br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}"#[..],
            br#"{"__type":"com.amazon.coral.service#InternalFailure"}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(classify(body), Answer::Other);
        }
    }

    #[test]
    fn operations_outside_the_list_are_other() {
        let mut cfg = ConfigBag::base();
        assert_eq!(operation(&cfg), OTHER_OPERATION);
        let mut layer = aws_smithy_types::config_bag::Layer::new("test");
        layer.store_put(Metadata::new("TransactWriteItems", "DynamoDB"));
        cfg.push_layer(layer);
        assert_eq!(operation(&cfg), "TransactWriteItems");
        let mut layer = aws_smithy_types::config_bag::Layer::new("test");
        layer.store_put(Metadata::new("SomethingNew", "DynamoDB"));
        cfg.push_layer(layer);
        assert_eq!(operation(&cfg), OTHER_OPERATION);
    }
}
