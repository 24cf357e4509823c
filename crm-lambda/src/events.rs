//! The change-events function: the table's DynamoDB stream, put on an `EventBridge` bus.
//!
//! Lambda hands the function the table's stream records in batches (an event source mapping on the
//! stream, `ReportBatchItemFailures` on). Each record becomes a
//! [`StreamChange`] and [`crm_dynamo::stream::event_of`] says which
//! [`CustomerEvent`] it tells, if any (claims, idempotency records, maintenance writes and the
//! expiry of tombstones tell none). Each event is put on the bus named by `CRM_EVENT_BUS_NAME` with
//! `PutEvents`: source [`SOURCE`], detail-type the event's type (`customer.created`, …), detail the
//! event's JSON (which names the customer, the version, the time and the changed fields, never a
//! value: [`crm_domain::events`]), time the event's.
//!
//! # Order
//!
//! Per customer, events reach the bus in version order: a customer's next event is not sent until
//! the bus has accepted its previous one. So a `PutEvents` call never holds two events of one
//! customer (the bus does not promise to keep the order of the entries of one call), and the calls
//! go in rounds: a round takes, in the batch's order, the first event not yet accepted of each
//! customer, at most [`ENTRIES_PER_CALL`] per call (`EventBridge`'s limit) and
//! [`CALLS_PER_ROUND`] calls at once; the next round starts when they have all answered. Events of
//! different customers are not ordered among themselves, as they were not in the table either.
//!
//! # Retries and the batch response
//!
//! Entries the bus refuses (`FailedEntryCount`, an entry's `ErrorCode`) and calls that fail
//! (throttling, 5xx, timeouts, a lost connection) are sent again in the next round, after a short
//! backoff (50 ms, doubling up to 400 ms, back to 50 ms after a round without failure): each event
//! at most 4 times ([`Publisher::with_retries`]). An entry the bus accepted is never sent again by
//! the same invocation. A call the bus refuses for good (access denied, an unknown bus, a
//! malformed request) is not retried. The SDK's own retries are off, so that these are the only
//! ones; each attempt is bounded by the client's timeouts (1 s to connect, 2 s per call), and no
//! round starts when less than 3 s remain before the invocation's deadline.
//!
//! An event that could not be published after that is reported in the answer,
//! [`DynamoDbEventResponse`], as the one batch item failure: the sequence number of its record.
//! Lambda then checkpoints every record before it and invokes the function again from it, with
//! every record after it. Publishing stops at the first such record: none of its customer's later
//! events is sent, and once it is known no event of a record after it is (the events of records
//! before it still get their attempts). So delivery is at least once, in order
//! per customer: events of records after the failed one that were already accepted (other
//! customers', in earlier rounds) are published again by the next invocation, and an invocation
//! cut short by a crash or a timeout publishes its events again too. Consumers deduplicate on
//! `(id, version, time)`, as [`crm_domain::events`] tells them to. While the event source
//! mapping retries, an event is never lost or reordered for its customer; a range of records the
//! mapping gives up on (after its retries or at its maximum record age) is described on its
//! on-failure queue, for an operator to publish again (`deploy/README.md`, "Failed batches").
//!
//! # Records the function cannot read
//!
//! A record is never passed over unread, since it could tell an event. A record that does not
//! decode as a DynamoDB stream record, has an `eventName` other than `INSERT`, `MODIFY` and
//! `REMOVE`, comes from a stream that does not carry both images, or whose customer or tombstone
//! image does not decode ([`StreamError`](crm_dynamo::stream::StreamError)) ends the batch there
//! like a failed event: the events of the records before it are published, it is reported, and
//! nothing after it is read. It blocks its shard until the event source mapping's retry limits
//! send it to its on-failure destination. A record without a sequence number (Lambda always gives
//! one) cannot be named; when one has to be reported, the batch item failure has an empty
//! identifier, which Lambda reads as the whole batch failing: it is retried whole.
//!
//! A payload that is no stream batch at all (no `Records` array) is the function error
//! `unsupported-event`: Lambda retries the whole batch.
//!
//! # Deployment
//!
//! The event source mapping on the table's stream (`NEW_AND_OLD_IMAGES`) must turn on
//! `ReportBatchItemFailures` (without it Lambda ignores the answer, and a batch with a failure is
//! checkpointed as done), and should filter on the image kinds that can tell an event
//! ([`crm_dynamo::stream::EVENT_KINDS`]) and bound its retries (`MaximumRetryAttempts`, an
//! on-failure destination) so that a record that can never be published does not block its shard
//! for the stream's 24 hours. The function's role needs `events:PutEvents` on the bus, and its
//! timeout should leave room for the retries: 15 s or more (no round starts in its last 3 s).
//!
//! # Logs
//!
//! One line per invocation, `"message": "stream batch"`, with the request id and counts: `records`,
//! `events` (told by the records read), `published`, `retries` (entries sent again),
//! `failed_records` (the records handed back to Lambda: the reported one and every one after it),
//! and when there are any, `error`: why records were handed back, else the last failure retried past
//! (an `EventBridge` error code, `timeout`, `undecodable-image`, …). It is at ERROR when a record is
//! handed back, else at INFO. No
//! line ever holds an id or a field's value.
//!
//! # Metrics
//!
//! Inside Lambda the function writes `CloudWatch` EMF lines, as the API function does
//! ([`metrics`](crate::metrics): namespace `CRM_METRICS_NAMESPACE`, dimension `function`, written
//! after every invocation; `CRM_METRICS=off` turns them off). Per invocation:
//!
//! | metric | kind | unit | counts |
//! | --- | --- | --- | --- |
//! | [`EVENTS_PUBLISHED`] `events_published` | counter | count | events the bus accepted |
//! | [`EVENTS_FAILED_ENTRIES`] `events_failed_entries` | counter | count | entries an attempt did not get accepted: refused by the bus (`ErrorCode`), or in a call that failed whole |
//! | [`EVENTS_RETRIES`] `events_retries` | counter | count | entries sent again (the log line's `retries`) |
//! | [`EVENTS_FAILED_RECORDS`] `events_failed_records` | counter | count | records handed back to Lambda (the log line's `failed_records`) |
//! | [`EVENTS_BATCH_DURATION`] `events_batch_duration_ms` | histogram | milliseconds | one batch, from reading it to the answer |
//! | `cold_starts` | counter | count | once per sandbox ([`metrics::COLD_STARTS`](crate::metrics::COLD_STARTS)) |
//!
//! They have no label, only the dimension `function`: nothing of a customer, an event or a record
//! reaches a metric. A batch that is no stream batch, or that panics, records none of them (it is a
//! Lambda error). The `EventBridge` client carries no call metrics of its own: these counts are
//! what the calls came to. Failed records are no Lambda error (a partial batch response), so only
//! this count sees them as they happen.
//!
//! ```no_run
//! use crm_lambda::events::{EventsConfig, Publisher, answer_stream};
//! use lambda_runtime::service_fn;
//!
//! # #[tokio::main] async fn main() -> Result<(), lambda_runtime::Error> {
//! let config = EventsConfig::from_env()?;
//! let publisher = Publisher::connect(config.bus_name()).await;
//! let publisher = &publisher;
//! lambda_runtime::run(service_fn(move |event| answer_stream(publisher, event))).await?;
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use aws_config::BehaviorVersion;
use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamViewType};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::retry::RetryConfig;
use aws_sdk_eventbridge::config::timeout::TimeoutConfig;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use crm_domain::Timestamp;
use crm_domain::events::CustomerEvent;
use crm_dynamo::items::Item;
use crm_dynamo::stream::{RecordKind, StreamChange, event_of};
use crm_http::MetricsExport;
use lambda_runtime::{Diagnostic, LambdaEvent};
use metrics::Unit;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::catch_panic;

/// The `source` of every event this function puts on the bus.
pub const SOURCE: &str = "crm.customers";

/// The most entries one `PutEvents` call takes (`EventBridge`'s limit).
pub const ENTRIES_PER_CALL: usize = 10;

/// How many `PutEvents` calls one round sends at once.
pub const CALLS_PER_ROUND: usize = 4;

/// Counter: events the bus accepted.
pub const EVENTS_PUBLISHED: &str = "events_published";
/// Counter: entries a `PutEvents` attempt did not get accepted: those the bus refused (an entry's
/// `ErrorCode`) and those of calls that failed whole (throttled, 5xx, timed out, refused for good).
pub const EVENTS_FAILED_ENTRIES: &str = "events_failed_entries";
/// Counter: entries sent again (attempts after an event's first).
pub const EVENTS_RETRIES: &str = "events_retries";
/// Counter: records handed back to Lambda in the partial batch response: the reported record and
/// every one after it, which Lambda delivers again.
pub const EVENTS_FAILED_RECORDS: &str = "events_failed_records";
/// Histogram, milliseconds: one batch, from reading its records to the answer.
pub const EVENTS_BATCH_DURATION: &str = "events_batch_duration_ms";

/// Gives the events function's metrics their units and descriptions in the installed recorder
/// ([`metrics::install_emf`](crate::metrics::install_emf) calls it).
pub fn describe_metrics() {
    metrics::describe_counter!(EVENTS_PUBLISHED, Unit::Count, "events the bus accepted");
    metrics::describe_counter!(
        EVENTS_FAILED_ENTRIES,
        Unit::Count,
        "PutEvents entries not accepted, per attempt"
    );
    metrics::describe_counter!(EVENTS_RETRIES, Unit::Count, "PutEvents entries sent again");
    metrics::describe_counter!(
        EVENTS_FAILED_RECORDS,
        Unit::Count,
        "stream records handed back to Lambda (partial batch response)"
    );
    metrics::describe_histogram!(
        EVENTS_BATCH_DURATION,
        Unit::Milliseconds,
        "stream batch duration"
    );
}

/// How many times an event is sent at most in one invocation, by default.
const DEFAULT_ATTEMPTS: u32 = 4;

/// The first backoff after a round with failures; it doubles up to 8 times this.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(50);

/// Connecting to the bus may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One `PutEvents` call may take this long (`EventBridge` answers in tens of milliseconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// No round starts when less than this remains before the invocation's deadline: one call's time,
/// and a second for answering Lambda.
const DEADLINE_RESERVE: Duration = Duration::from_secs(3);

/// The configuration of the events function, read once at start: `CRM_EVENT_BUS_NAME` (required:
/// the name or ARN of the bus), `RUST_LOG` (the log filter, `info` by default),
/// `AWS_LAMBDA_RUNTIME_API` (set by Lambda), and for the metrics (see [Metrics](self#metrics))
/// `CRM_METRICS` (`emf`, the default inside Lambda, or `off`), `CRM_METRICS_NAMESPACE` (default
/// `crm`) and `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda: the `function` dimension), read as
/// `crm-http`'s [`Config`](crm_http::Config) reads them. The AWS SDK reads its own variables
/// (`AWS_REGION`, the keys Lambda sets, `AWS_ENDPOINT_URL_EVENTBRIDGE` or `AWS_ENDPOINT_URL` for
/// another endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    bus_name: String,
    log_filter: String,
    in_lambda: bool,
    metrics: MetricsExport,
    metrics_namespace: String,
    function_name: Option<String>,
}

/// A configuration value that is missing or invalid: one line, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    variable: &'static str,
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {} {}",
            self.variable, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The environment variable at fault.
    pub fn variable(&self) -> &str {
        self.variable
    }
}

/// The variables [`EventsConfig`] reads.
const VARIABLES: [&str; 6] = [
    "CRM_EVENT_BUS_NAME",
    "RUST_LOG",
    "AWS_LAMBDA_RUNTIME_API",
    "CRM_METRICS",
    "CRM_METRICS_NAMESPACE",
    "AWS_LAMBDA_FUNCTION_NAME",
];

impl EventsConfig {
    /// The longest bus name or ARN `PutEvents` accepts.
    pub const MAX_BUS_NAME: usize = 1600;

    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// `CRM_EVENT_BUS_NAME` missing, empty or not a bus name; `RUST_LOG` not a `tracing` filter;
    /// `CRM_METRICS` other than `emf` (inside Lambda only) or `off`; `CRM_METRICS_NAMESPACE` not a
    /// `CloudWatch` namespace; any of them not UTF-8.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        for name in VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                let value = value.into_string().map_err(|_| ConfigError {
                    variable: name,
                    message: "is not valid UTF-8".to_owned(),
                })?;
                vars.push((name, value));
            }
        }
        Self::from_vars(vars.iter().map(|(name, value)| (*name, value.as_str())))
    }

    /// The configuration these variables make: pairs of name and value (the last of a name
    /// counts; names it does not read are ignored).
    ///
    /// # Errors
    /// As [`EventsConfig::from_env`].
    pub fn from_vars<'v>(
        vars: impl IntoIterator<Item = (&'v str, &'v str)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(&str, &str)> = vars.into_iter().collect();
        let get = |name: &str| vars.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let bus_name = get("CRM_EVENT_BUS_NAME").map(str::trim).unwrap_or_default();
        if bus_name.is_empty() {
            return Err(ConfigError {
                variable: "CRM_EVENT_BUS_NAME",
                message:
                    "is not set; it names the EventBridge bus (name or ARN) the change events go to"
                        .to_owned(),
            });
        }
        if bus_name.len() > Self::MAX_BUS_NAME || !bus_name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError {
                variable: "CRM_EVENT_BUS_NAME",
                message: format!(
                    "={bus_name:?} is not an EventBridge bus name or ARN (1-{} visible ASCII characters)",
                    Self::MAX_BUS_NAME
                ),
            });
        }
        let log_filter = get("RUST_LOG")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or("info");
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(log_filter) {
            return Err(ConfigError {
                variable: "RUST_LOG",
                message: format!("={log_filter:?} is not a valid tracing filter: {e}"),
            });
        }
        let in_lambda = get("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.is_empty());
        let metrics = match get("CRM_METRICS").map(str::trim).unwrap_or_default() {
            "" | "emf" if in_lambda => MetricsExport::Emf,
            "" | "off" => MetricsExport::Off,
            other => {
                return Err(ConfigError {
                    variable: "CRM_METRICS",
                    message: format!(
                        "={other:?} is not one of this function's: emf (inside AWS Lambda, the default there) or off"
                    ),
                });
            }
        };
        let metrics_namespace = get("CRM_METRICS_NAMESPACE")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(crm_http::Config::DEFAULT_METRICS_NAMESPACE);
        // crm-http's rule: 1-255 characters of these, not AWS's own namespaces.
        let namespace_ok = (1..=255).contains(&metrics_namespace.len())
            && !metrics_namespace.starts_with("AWS/")
            && metrics_namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/#: ".contains(&b));
        if !namespace_ok {
            return Err(ConfigError {
                variable: "CRM_METRICS_NAMESPACE",
                message: format!(
                    "={metrics_namespace:?} must be 1 to 255 letters, digits and . - _ / # : or spaces, not starting with AWS/"
                ),
            });
        }
        let function_name = get("AWS_LAMBDA_FUNCTION_NAME")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Ok(Self {
            bus_name: bus_name.to_owned(),
            log_filter: log_filter.to_owned(),
            in_lambda,
            metrics,
            metrics_namespace: metrics_namespace.to_owned(),
            function_name,
        })
    }

    /// The bus the events go to.
    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The `tracing` filter, already checked.
    pub fn log_filter(&self) -> &str {
        &self.log_filter
    }

    /// True when running inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` is set).
    pub fn in_lambda(&self) -> bool {
        self.in_lambda
    }

    /// Where the metrics go: [`MetricsExport::Emf`] (the default inside Lambda) or
    /// [`MetricsExport::Off`] (`CRM_METRICS=off`, and the default outside Lambda).
    pub fn metrics(&self) -> MetricsExport {
        self.metrics
    }

    /// The `CloudWatch` namespace of the EMF metrics (`CRM_METRICS_NAMESPACE`, default `crm`).
    pub fn metrics_namespace(&self) -> &str {
        &self.metrics_namespace
    }

    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda): the `function` dimension
    /// of the EMF metrics.
    pub fn function_name(&self) -> Option<&str> {
        self.function_name.as_deref()
    }
}

/// Puts events on one bus, through an `EventBridge` client built once per process (per cold
/// start), with the retry rules of the [module docs](self).
#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    bus_name: String,
    attempts: u32,
    backoff: Duration,
}

impl Publisher {
    /// A publisher to `bus_name` with a client configured as the AWS SDK configures itself from
    /// the environment (`AWS_REGION`; the keys Lambda sets; `AWS_ENDPOINT_URL_EVENTBRIDGE` or
    /// `AWS_ENDPOINT_URL` for another endpoint), with this module's timeouts and without the
    /// SDK's retries. No request is made.
    pub async fn connect(bus_name: impl Into<String>) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(CALL_TIMEOUT)
                    .operation_timeout(CALL_TIMEOUT)
                    .build(),
            )
            // This module retries entries and calls itself, so that an accepted entry is never
            // sent again and the time spent is bounded in one place.
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        Self::from_client(Client::new(&config), bus_name)
    }

    /// A publisher to `bus_name` through a client the caller configured. It should not retry on
    /// its own (this publisher does) and should bound each call.
    pub fn from_client(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
            attempts: DEFAULT_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// The same publisher sending each event at most `attempts` times per invocation (at least
    /// once), waiting `backoff` after the first round with failures (doubling after each further
    /// one, up to 8 times `backoff`).
    #[must_use]
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// The bus the events go to.
    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }
}

/// Publishes the events `batch` tells, as the [module docs](self) describe, and answers which
/// record Lambda must retry from, if any. Writes the invocation's log line.
pub async fn publish(batch: Event, publisher: &Publisher) -> DynamoDbEventResponse {
    let started = Instant::now();
    let records = batch.records.into_iter().map(Ok).collect();
    let (response, summary) = run(records, publisher, None).await;
    summary.log(None);
    summary.record(started.elapsed());
    response
}

/// Answers one invocation of the events function: the stream batch in `event`, published with
/// [`publish`]'s rules, each record decoded on its own (so that one that does not decode is
/// reported, not the whole batch), within the invocation's deadline.
///
/// # Errors
/// The function error `unsupported-event` when the payload is no stream batch, `internal-error`
/// on a panic: Lambda then retries the whole batch.
pub async fn answer_stream(
    publisher: &Publisher,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<DynamoDbEventResponse, Diagnostic> {
    #[derive(Deserialize)]
    struct Batch<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<&'a RawValue>,
    }
    let started = Instant::now();
    let LambdaEvent { payload, context } = event;
    let Ok(batch) = serde_json::from_str::<Batch<'_>>(payload.get()) else {
        tracing::error!(
            request_id = %context.request_id,
            "event not published: not a DynamoDB stream batch"
        );
        return Err(Diagnostic {
            error_type: "unsupported-event".to_owned(),
            error_message: "this function reads DynamoDB stream batches".to_owned(),
        });
    };
    let records = batch.records.iter().map(|raw| decode(raw)).collect();
    let deadline = (context.deadline > 0).then(|| context.deadline());
    match catch_panic(run(records, publisher, deadline)).await {
        Some((response, summary)) => {
            summary.log(Some(&context.request_id));
            summary.record(started.elapsed());
            Ok(response)
        }
        None => Err(Diagnostic {
            error_type: "internal-error".to_owned(),
            error_message: "the batch was not published; it is retried whole".to_owned(),
        }),
    }
}

/// A record that does not decode: its sequence number, when that much can be read.
struct Undecoded {
    sequence_number: Option<String>,
}

fn decode(raw: &RawValue) -> Result<EventRecord, Undecoded> {
    serde_json::from_str(raw.get()).map_err(|_| Undecoded {
        sequence_number: serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| {
                v.pointer("/dynamodb/SequenceNumber")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            }),
    })
}

/// Why a record cannot be read. Its name is what the log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// Not a DynamoDB stream record.
    Record,
    /// An `eventName` other than `INSERT`, `MODIFY` and `REMOVE`.
    EventName,
    /// A stream that does not carry both images (`StreamViewType`).
    ViewType,
    /// A customer or tombstone image that does not decode.
    Image,
    /// An event whose JSON could not be written.
    Detail,
}

impl Unreadable {
    fn as_str(self) -> &'static str {
        match self {
            Self::Record => "undecodable-record",
            Self::EventName => "unknown-event-name",
            Self::ViewType => "stream-without-images",
            Self::Image => "undecodable-image",
            Self::Detail => "unserializable-event",
        }
    }
}

/// What `record` says happened to its item, for [`event_of`]. An empty image is an absent one (an
/// insert has no old image, a remove no new one).
fn change_of(record: EventRecord) -> Result<StreamChange, Unreadable> {
    let kind = RecordKind::parse(&record.event_name).ok_or(Unreadable::EventName)?;
    let change = record.change;
    if change
        .stream_view_type
        .as_ref()
        .is_some_and(|view| *view != StreamViewType::NewAndOldImages)
    {
        return Err(Unreadable::ViewType);
    }
    let image = |item: serde_dynamo::Item| (!item.is_empty()).then(|| Item::from(item));
    // A record without a creation time (the field is optional) reads as the epoch: the time it is
    // read is closer to the truth.
    let millis = change.approximate_creation_date_time.timestamp_millis();
    let recorded_at = (millis > 0)
        .then(|| Timestamp::from_unix_millis(millis).ok())
        .flatten()
        .unwrap_or_else(Timestamp::now);
    Ok(StreamChange {
        kind,
        old_image: image(change.old_image),
        new_image: image(change.new_image),
        recorded_at,
    })
}

/// One event to publish.
#[derive(Debug)]
struct Told {
    /// The index of its record in the batch.
    record: usize,
    event: CustomerEvent,
    /// The event's JSON.
    detail: String,
    /// How many times it was sent.
    sent: u32,
}

/// The events told by `records`, in order, up to the first record that cannot be read: its index
/// and why.
fn tell(records: Vec<Result<EventRecord, Undecoded>>) -> (Vec<Told>, Option<(usize, Unreadable)>) {
    let mut told = Vec::new();
    for (index, record) in records.into_iter().enumerate() {
        let event = record
            .map_err(|_| Unreadable::Record)
            .and_then(change_of)
            .and_then(|change| event_of(&change).map_err(|_| Unreadable::Image));
        match event {
            Ok(None) => {}
            Ok(Some(event)) => match serde_json::to_string(&event) {
                Ok(detail) => told.push(Told {
                    record: index,
                    event,
                    detail,
                    sent: 0,
                }),
                Err(_) => return (told, Some((index, Unreadable::Detail))),
            },
            Err(why) => return (told, Some((index, why))),
        }
    }
    (told, None)
}

/// The next round: indexes into `pending` (in the batch's order) of the first event of each
/// customer, at most `capacity`.
fn next_round(pending: &[Told], capacity: usize) -> Vec<usize> {
    let mut customers = HashSet::new();
    let mut round = Vec::new();
    for (index, told) in pending.iter().enumerate() {
        if round.len() == capacity {
            break;
        }
        if customers.insert(told.event.id.as_str()) {
            round.push(index);
        }
    }
    round
}

/// What one `PutEvents` call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallOutcome {
    /// The bus answered: per entry, in order, `None` when it accepted it, else its error code.
    Answered(Vec<Option<String>>),
    /// The call failed as a whole: the kind of failure, and whether another attempt may succeed.
    Failed { kind: String, retryable: bool },
}

/// Where events go: the bus, or a script in the unit tests.
trait Bus {
    /// Sends `entries` in one call.
    fn put(&self, entries: &[&Told]) -> impl Future<Output = CallOutcome>;

    /// How many times an event is sent at most, and the first backoff.
    fn retries(&self) -> (u32, Duration);
}

impl Bus for Publisher {
    fn retries(&self) -> (u32, Duration) {
        (self.attempts, self.backoff)
    }

    async fn put(&self, entries: &[&Told]) -> CallOutcome {
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|told| {
                PutEventsRequestEntry::builder()
                    .source(SOURCE)
                    .detail_type(told.event.kind.as_str())
                    .detail(told.detail.clone())
                    .time(DateTime::from_millis(told.event.time.unix_millis()))
                    .event_bus_name(&self.bus_name)
                    .build()
            })
            .collect();
        match self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
        {
            Ok(output) if output.entries().len() == entries.len() => CallOutcome::Answered(
                output
                    .entries()
                    .iter()
                    .map(|entry| entry.error_code().map(str::to_owned))
                    .collect(),
            ),
            // An answer that does not say what became of each entry: send them all again.
            Ok(_) => CallOutcome::Failed {
                kind: "entries-missing-from-answer".to_owned(),
                retryable: true,
            },
            Err(error) => failure(&error),
        }
    }
}

/// The kind of a failed call, and whether to try again: throttling, 5xx, timeouts and transport
/// failures pass; any other refusal (access denied, an unknown bus, a malformed request) stays.
fn failure<E: aws_sdk_eventbridge::error::ProvideErrorMetadata>(
    error: &SdkError<E>,
) -> CallOutcome {
    let (kind, retryable) = match error {
        SdkError::TimeoutError(_) => ("timeout".to_owned(), true),
        SdkError::DispatchFailure(_) => ("dispatch-failure".to_owned(), true),
        SdkError::ResponseError(_) => ("unreadable-response".to_owned(), true),
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = error.code().unwrap_or("unknown-service-error");
            let retryable = status >= 500
                || status == 429
                || code.contains("Throttl")
                || matches!(
                    code,
                    "InternalException" | "InternalFailure" | "ServiceUnavailable"
                );
            (code.to_owned(), retryable)
        }
        _ => ("request-not-built".to_owned(), false),
    };
    CallOutcome::Failed { kind, retryable }
}

/// The counts of one invocation, for its log line and its metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Summary {
    records: usize,
    events: usize,
    published: usize,
    retries: usize,
    /// Entries an attempt did not get accepted (metrics only).
    failed_entries: usize,
    failed_records: usize,
    error: Option<String>,
}

impl Summary {
    /// Records the invocation's metrics: its counts, and `elapsed`, the batch's duration.
    fn record(&self, elapsed: Duration) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        metrics::counter!(EVENTS_PUBLISHED).increment(count(self.published));
        metrics::counter!(EVENTS_FAILED_ENTRIES).increment(count(self.failed_entries));
        metrics::counter!(EVENTS_RETRIES).increment(count(self.retries));
        metrics::counter!(EVENTS_FAILED_RECORDS).increment(count(self.failed_records));
        metrics::histogram!(EVENTS_BATCH_DURATION).record(elapsed.as_secs_f64() * 1000.0);
    }

    fn log(&self, request_id: Option<&str>) {
        let error = self.error.as_deref();
        if self.failed_records > 0 {
            tracing::error!(
                request_id,
                records = self.records,
                events = self.events,
                published = self.published,
                retries = self.retries,
                failed_records = self.failed_records,
                error,
                "stream batch"
            );
        } else {
            tracing::info!(
                request_id,
                records = self.records,
                events = self.events,
                published = self.published,
                retries = self.retries,
                failed_records = 0,
                error,
                "stream batch"
            );
        }
    }
}

/// Publishes what `records` tell on `bus`, stopping before `deadline`; the answer for Lambda and
/// the counts.
async fn run(
    records: Vec<Result<EventRecord, Undecoded>>,
    bus: &impl Bus,
    deadline: Option<SystemTime>,
) -> (DynamoDbEventResponse, Summary) {
    let sequence_numbers: Vec<Option<String>> = records
        .iter()
        .map(|record| match record {
            Ok(record) => record.change.sequence_number.clone(),
            Err(undecoded) => undecoded.sequence_number.clone(),
        })
        .collect();
    let mut publishing = Publishing::new(records);
    let (attempts, first_backoff) = bus.retries();
    let mut failed_rounds = 0_u32;
    loop {
        publishing
            .pending
            .retain(|told| told.record < publishing.cutoff);
        let Some(first) = publishing.pending.first().map(|told| told.record) else {
            break;
        };
        if deadline.is_some_and(|d| SystemTime::now() + DEADLINE_RESERVE > d) {
            publishing.cut(first, "deadline".to_owned());
            break;
        }
        if publishing.round(bus, attempts).await {
            failed_rounds = 0;
        } else {
            failed_rounds += 1;
            let cutoff = publishing.cutoff;
            if publishing.pending.iter().any(|told| told.record < cutoff) {
                tokio::time::sleep(first_backoff * 2_u32.pow(failed_rounds.min(4) - 1)).await;
            }
        }
    }
    let Publishing {
        cutoff,
        cut_by,
        mut summary,
        ..
    } = publishing;
    // The log names why records are handed back, else the last failure retried past.
    summary.error = cut_by.or(summary.error);
    let mut response = DynamoDbEventResponse::default();
    if cutoff < summary.records {
        summary.failed_records = summary.records - cutoff;
        let mut failure = DynamoDbBatchItemFailure::default();
        // No sequence number: an empty identifier, which Lambda reads as the whole batch failing.
        failure.item_identifier = Some(
            sequence_numbers
                .get(cutoff)
                .cloned()
                .flatten()
                .unwrap_or_default(),
        );
        response.batch_item_failures.push(failure);
    }
    (response, summary)
}

/// The state of one invocation's publishing.
struct Publishing {
    /// The events not yet accepted, in the batch's order.
    pending: Vec<Told>,
    /// The first record that cannot be published (yet): Lambda retries from it. The number of
    /// records when there is none.
    cutoff: usize,
    /// Why the cutoff is where it is.
    cut_by: Option<String>,
    summary: Summary,
}

impl Publishing {
    fn new(records: Vec<Result<EventRecord, Undecoded>>) -> Self {
        let records_count = records.len();
        let (pending, unreadable) = tell(records);
        let mut publishing = Self {
            summary: Summary {
                records: records_count,
                events: pending.len(),
                ..Summary::default()
            },
            pending,
            cutoff: records_count,
            cut_by: None,
        };
        if let Some((index, why)) = unreadable {
            publishing.cut(index, why.as_str().to_owned());
        }
        publishing
    }

    /// Nothing from `record` on is published, because of `error`.
    fn cut(&mut self, record: usize, error: String) {
        if record < self.cutoff {
            self.cutoff = record;
            self.cut_by = Some(error);
        }
    }

    /// Sends one round; true when the bus accepted every entry of it. An event sent `attempts`
    /// times and still refused, or refused for good, moves the cutoff to its record.
    async fn round(&mut self, bus: &impl Bus, attempts: u32) -> bool {
        let round = next_round(&self.pending, ENTRIES_PER_CALL * CALLS_PER_ROUND);
        let calls: Vec<Vec<&Told>> = round
            .chunks(ENTRIES_PER_CALL)
            .map(|chunk| chunk.iter().map(|&index| &self.pending[index]).collect())
            .collect();
        self.summary.retries += calls.iter().flatten().filter(|told| told.sent > 0).count();
        let outcomes = join_all(calls.iter().map(|call| bus.put(call))).await;
        let mut accepted = HashSet::new();
        let mut refused_for_good = Vec::new();
        let mut error = None;
        for (chunk, outcome) in round.chunks(ENTRIES_PER_CALL).zip(outcomes) {
            match outcome {
                CallOutcome::Answered(results) => {
                    for (&index, result) in chunk.iter().zip(results) {
                        match result {
                            None => {
                                accepted.insert(index);
                            }
                            Some(code) => {
                                self.summary.failed_entries += 1;
                                error = Some(code);
                            }
                        }
                    }
                }
                CallOutcome::Failed { kind, retryable } => {
                    self.summary.failed_entries += chunk.len();
                    if !retryable {
                        refused_for_good.extend_from_slice(chunk);
                    }
                    error = Some(kind);
                }
            }
        }
        for &index in &round {
            let told = &mut self.pending[index];
            told.sent += 1;
            if !accepted.contains(&index) && told.sent >= attempts {
                refused_for_good.push(index);
            }
        }
        // An error code is the service's word for what went wrong; capped, so that an odd endpoint
        // cannot fill the log line.
        let error: Option<String> = error.map(|e| e.chars().take(64).collect());
        for index in refused_for_good {
            let record = self.pending[index].record;
            self.cut(record, error.clone().unwrap_or_default());
        }
        self.summary.published += accepted.len();
        let mut index = 0;
        self.pending.retain(|_| {
            let keep = !accepted.contains(&index);
            index += 1;
            keep
        });
        let clean = error.is_none();
        if error.is_some() {
            self.summary.error = error;
        }
        clean
    }
}

/// The outputs of `futures`, run at once, in their order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// A bus that answers from a script: per call (from 0) and entry, accepted or an error code;
    /// or the whole call failed. It records what it was sent as `id@version`.
    struct Script<F> {
        answer: F,
        sent: Mutex<Vec<Vec<String>>>,
    }

    impl<F: Fn(usize, &str) -> Result<Option<String>, CallOutcome>> Script<F> {
        fn new(answer: F) -> Self {
            Self {
                answer,
                sent: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<Vec<String>> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl<F: Fn(usize, &str) -> Result<Option<String>, CallOutcome>> Bus for Script<F> {
        async fn put(&self, entries: &[&Told]) -> CallOutcome {
            let keys: Vec<String> = entries
                .iter()
                .map(|t| format!("{}@{}", t.event.id.as_str(), t.event.version.get()))
                .collect();
            let call = {
                let mut sent = self.sent.lock().unwrap();
                sent.push(keys.clone());
                sent.len() - 1
            };
            let mut results = Vec::new();
            for key in &keys {
                match (self.answer)(call, key) {
                    Ok(result) => results.push(result),
                    Err(failed) => return failed,
                }
            }
            CallOutcome::Answered(results)
        }

        fn retries(&self) -> (u32, Duration) {
            (3, Duration::ZERO)
        }
    }

    /// A stream record of `name` creating customer `id` (empty old image), as Lambda writes it.
    fn creation(id: &str, sequence_number: Option<&str>) -> EventRecord {
        let image = json!({
            "pk": {"S": format!("CUSTOMER#{id}")}, "kind": {"S": "customer"}, "id": {"S": id},
            "firstName": {"S": "Zephyrine"}, "lastName": {"S": "Quillfeather"},
            "createdAt": {"S": "2026-12-01T10:00:00.000Z"},
            "updatedAt": {"S": "2026-12-01T10:00:00.000Z"}, "version": {"N": "1"}
        });
        let mut record = json!({
            "eventID": "1", "eventName": "INSERT", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1_795_345_200.0, "NewImage": image,
                         "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        });
        if let Some(sequence_number) = sequence_number {
            record["dynamodb"]["SequenceNumber"] = json!(sequence_number);
        }
        serde_json::from_value(record).unwrap()
    }

    fn records(ids: &[&str]) -> Vec<Result<EventRecord, Undecoded>> {
        ids.iter()
            .enumerate()
            .map(|(n, id)| Ok(creation(id, Some(&format!("s{n}")))))
            .collect()
    }

    fn handed_back(response: &DynamoDbEventResponse) -> Vec<Option<String>> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[test]
    fn a_record_reads_as_its_change_with_empty_images_absent() {
        let change = change_of(creation("c1", Some("s0"))).unwrap();
        assert_eq!(change.kind, RecordKind::Insert);
        assert!(change.old_image.is_none());
        assert!(
            change
                .new_image
                .is_some_and(|item| item.contains_key("firstName"))
        );
        assert_eq!(change.recorded_at.unix_millis(), 1_795_345_200_000);
    }

    #[test]
    fn a_record_without_a_creation_time_is_recorded_when_read() {
        let mut record = serde_json::to_value(creation("c1", None)).unwrap();
        record["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("ApproximateCreationDateTime");
        let record: EventRecord = serde_json::from_value(record).unwrap();
        let before = Timestamp::now();
        let change = change_of(record).unwrap();
        assert!(change.recorded_at >= before);
    }

    #[test]
    fn unknown_event_names_and_streams_without_images_cannot_be_read() {
        let mut record = creation("c1", None);
        record.event_name = "UPSERT".to_owned();
        assert_eq!(change_of(record).unwrap_err(), Unreadable::EventName);
        let mut record = creation("c1", None);
        record.change.stream_view_type = Some(StreamViewType::KeysOnly);
        assert_eq!(change_of(record).unwrap_err(), Unreadable::ViewType);
    }

    #[test]
    fn a_round_takes_the_first_event_of_each_customer_in_order() {
        let (told, unreadable) = tell(records(&["a", "b", "a", "c", "b", "d"]));
        assert!(unreadable.is_none());
        assert_eq!(next_round(&told, 40), [0, 1, 3, 5]);
        assert_eq!(next_round(&told, 2), [0, 1]);
    }

    #[tokio::test]
    async fn every_event_accepted_hands_nothing_back() {
        let bus = Script::new(|_, _: &str| Ok(None));
        let ids: Vec<String> = (0..45).map(|n| format!("c{n}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (response, summary) = run(records(&ids), &bus, None).await;
        assert!(response.batch_item_failures.is_empty());
        let sizes: Vec<usize> = bus.calls().iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 10, 10, 5], "4 calls a round, then 1");
        assert_eq!((summary.published, summary.retries), (45, 0));
    }

    #[tokio::test]
    async fn an_event_refused_every_time_hands_back_its_record_and_stops_its_customer() {
        let bus =
            Script::new(|_, key: &str| Ok((key == "b@1").then(|| "InternalFailure".to_owned())));
        let (response, summary) = run(records(&["a", "b", "c", "b"]), &bus, None).await;
        assert_eq!(handed_back(&response), [Some("s1".to_owned())]);
        assert_eq!(
            bus.calls(),
            [vec!["a@1", "b@1", "c@1"], vec!["b@1"], vec!["b@1"]]
        );
        assert_eq!(summary.failed_records, 3);
        assert_eq!((summary.failed_entries, summary.retries), (3, 2));
        assert_eq!(summary.error.as_deref(), Some("InternalFailure"));
    }

    #[tokio::test]
    async fn a_call_refused_for_good_hands_back_its_first_record() {
        let bus = Script::new(|_, _: &str| {
            Err(CallOutcome::Failed {
                kind: "AccessDeniedException".to_owned(),
                retryable: false,
            })
        });
        let (response, summary) = run(records(&["a", "b"]), &bus, None).await;
        assert_eq!(handed_back(&response), [Some("s0".to_owned())]);
        assert_eq!(bus.calls().len(), 1);
        // Both entries of the failed call, once: it is not sent again.
        assert_eq!((summary.failed_entries, summary.failed_records), (2, 2));
    }

    #[tokio::test]
    async fn a_record_without_sequence_number_hands_back_the_whole_batch() {
        let bus = Script::new(|_, key: &str| Ok((key == "b@1").then(|| "x".to_owned())));
        let batch = vec![Ok(creation("a", Some("s0"))), Ok(creation("b", None))];
        let (response, _) = run(batch, &bus, None).await;
        assert_eq!(handed_back(&response), [Some(String::new())]);
    }

    #[tokio::test]
    async fn an_undecodable_record_is_handed_back_and_nothing_after_it_is_sent() {
        let bus = Script::new(|_, _: &str| Ok(None));
        let mut batch = records(&["a", "b", "c"]);
        batch[1] = Err(Undecoded {
            sequence_number: Some("s1".to_owned()),
        });
        let (response, summary) = run(batch, &bus, None).await;
        assert_eq!(handed_back(&response), [Some("s1".to_owned())]);
        assert_eq!(bus.calls(), [vec!["a@1"]]);
        assert_eq!(summary.error.as_deref(), Some("undecodable-record"));
    }

    #[tokio::test]
    async fn no_round_starts_near_the_deadline() {
        let bus = Script::new(|_, _: &str| Ok(None));
        let deadline = SystemTime::now() + Duration::from_secs(1);
        let (response, summary) = run(records(&["a", "b"]), &bus, Some(deadline)).await;
        assert_eq!(handed_back(&response), [Some("s0".to_owned())]);
        assert!(bus.calls().is_empty());
        assert_eq!(summary.error.as_deref(), Some("deadline"));
    }

    #[test]
    fn the_bus_name_is_required_and_rust_log_checked() {
        for missing in [
            vec![],
            vec![("CRM_EVENT_BUS_NAME", "")],
            vec![("CRM_EVENT_BUS_NAME", "   ")],
        ] {
            let error = EventsConfig::from_vars(missing).unwrap_err();
            assert_eq!(error.variable(), "CRM_EVENT_BUS_NAME");
            assert!(!error.to_string().contains('\n'));
        }
        let error = EventsConfig::from_vars([("CRM_EVENT_BUS_NAME", "a bus")]).unwrap_err();
        assert_eq!(error.variable(), "CRM_EVENT_BUS_NAME");
        let error = EventsConfig::from_vars([("CRM_EVENT_BUS_NAME", "crm"), ("RUST_LOG", "=[")])
            .unwrap_err();
        assert_eq!(error.variable(), "RUST_LOG");
        let config = EventsConfig::from_vars([
            ("CRM_EVENT_BUS_NAME", " crm-bus "),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ])
        .unwrap();
        assert_eq!(
            (config.bus_name(), config.log_filter(), config.in_lambda()),
            ("crm-bus", "info", true)
        );
    }

    #[test]
    fn metrics_are_emf_inside_lambda_unless_off_and_the_namespace_is_checked() {
        let lambda = [
            ("CRM_EVENT_BUS_NAME", "crm"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "crm-events"),
        ];
        let config = EventsConfig::from_vars(lambda).unwrap();
        assert_eq!(
            (
                config.metrics(),
                config.metrics_namespace(),
                config.function_name()
            ),
            (MetricsExport::Emf, "crm", Some("crm-events"))
        );
        let with = |extra: &[(&'static str, &'static str)]| {
            EventsConfig::from_vars(lambda.iter().chain(extra).copied())
        };
        assert_eq!(
            with(&[("CRM_METRICS", " off ")]).unwrap().metrics(),
            MetricsExport::Off
        );
        assert_eq!(
            with(&[("CRM_METRICS_NAMESPACE", "crm/prod")])
                .unwrap()
                .metrics_namespace(),
            "crm/prod"
        );
        for (name, value) in [
            ("CRM_METRICS", "prometheus"),
            ("CRM_METRICS", "yes"),
            ("CRM_METRICS_NAMESPACE", "AWS/Lambda"),
            ("CRM_METRICS_NAMESPACE", "crm\u{e9}"),
        ] {
            let error = with(&[(name, value)]).unwrap_err();
            assert_eq!(error.variable(), name, "{value}");
        }
        // Outside Lambda: off, and EMF refused (nothing would turn the lines into metrics).
        let local = [("CRM_EVENT_BUS_NAME", "crm")];
        assert_eq!(
            EventsConfig::from_vars(local).unwrap().metrics(),
            MetricsExport::Off
        );
        let error =
            EventsConfig::from_vars(local.into_iter().chain([("CRM_METRICS", "emf")])).unwrap_err();
        assert_eq!(error.variable(), "CRM_METRICS");
    }
}
