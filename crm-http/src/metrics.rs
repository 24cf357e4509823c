//! Metrics through one facade, the [`metrics`](https://docs.rs/metrics) crate: this crate and
//! `crm-dynamo` only record, with its macros; a binary chooses where the numbers go by installing a
//! recorder at its edge ([`Config::metrics`](crate::Config::metrics), `CRM_METRICS`):
//!
//! - in AWS Lambda, `CloudWatch` Embedded Metric Format lines in the function's log stream
//!   (`crm-lambda`, flushed after every invocation; no API call);
//! - `crm-server` with `CRM_METRICS=prometheus`: Prometheus text at `GET /metrics`
//!   ([`install_prometheus`], [`AppState::with_prometheus`](crate::AppState::with_prometheus));
//! - an embedding application: whatever recorder it installs itself, and its own endpoint.
//!
//! Without a recorder every macro is a few nanoseconds' no-op.
//!
//! | metric | kind | unit | labels |
//! | --- | --- | --- | --- |
//! | [`HTTP_REQUESTS`] `http_requests` | counter | count | `route`, `method`, `status_class` |
//! | [`HTTP_REQUEST_DURATION`] `http_request_duration_ms` | histogram | milliseconds | `route`, `method`, `status_class` |
//! | `dynamodb_calls`, `dynamodb_errors`, `dynamodb_retries`, `dynamodb_throttles`, `dynamodb_cancelled` | counter | count | `operation` (`crm_dynamo::metrics`) |
//! | `dynamodb_call_duration_ms` | histogram | milliseconds | `operation` |
//! | `cold_starts` | counter | count | none (`crm-lambda`, once per sandbox, at its first invocation) |
//! | [`SPAN_EXPORT_FAILURES`] `span_export_failures` | counter | count | none (feature `otel`: exports of spans to the collector that failed; their spans are lost) |
//!
//! `route` is the route template axum matched (`/customers/{id}`), or `unmatched`; never the path,
//! which holds ids. `method` is one of the standard methods or `other` (a client chooses the
//! method's text). `status_class` is `1xx` to `5xx`. No label holds a customer value: every label
//! value comes from a fixed list or from this router's templates.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Method;
use metrics::{Key, Label, SharedString, Unit};

/// Counter: HTTP requests answered, whatever their outcome.
pub const HTTP_REQUESTS: &str = "http_requests";
/// Histogram, milliseconds: from the request's arrival in the router's outermost layer to its
/// response (the same span as the log line's `latency_ms`).
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_ms";
/// Counter: exports of OpenTelemetry spans that failed (feature `otel`, an endpoint configured);
/// the spans of each are lost, and a `warn` log line says why, at most once a minute.
pub const SPAN_EXPORT_FAILURES: &str = "span_export_failures";
/// Label: the route template, or [`UNMATCHED_ROUTE`].
pub const ROUTE: &str = "route";
/// Label: the request method, or `other`.
pub const METHOD: &str = "method";
/// Label: `1xx`, `2xx`, `3xx`, `4xx` or `5xx`.
pub const STATUS_CLASS: &str = "status_class";
/// The `route` of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Gives every metric of this crate (and of `crm-dynamo`, with the `dynamodb` feature) its unit
/// and description in the recorder installed. A binary calls it once, right after installing its
/// recorder.
pub fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, Unit::Count, "HTTP requests answered");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Milliseconds,
        "HTTP request duration"
    );
    metrics::describe_counter!(
        SPAN_EXPORT_FAILURES,
        Unit::Count,
        "Span exports to the collector that failed"
    );
    #[cfg(feature = "dynamodb")]
    crm_dynamo::metrics::describe();
}

/// Records one answered request.
pub(crate) fn record_request(route: &str, method: &Method, status: u16, elapsed: Duration) {
    let milliseconds = elapsed.as_secs_f64() * 1000.0;
    let (method, class) = (method_index(method), class_index(status));
    if let Some(keys) = RequestKeys::of(route, method, class) {
        metrics::with_recorder(|recorder| {
            recorder
                .register_counter(&keys.requests, &METADATA)
                .increment(1);
            recorder
                .register_histogram(&keys.duration, &METADATA)
                .record(milliseconds);
        });
        return;
    }
    // A route of no API operation (the docs page's, `/metrics`): its label is a copy of its own.
    let labels = [
        Label::new(ROUTE, SharedString::from_shared(Arc::<str>::from(route))),
        Label::from_static_parts(METHOD, METHOD_LABELS[method]),
        Label::from_static_parts(STATUS_CLASS, STATUS_CLASSES[class]),
    ];
    metrics::counter!(HTTP_REQUESTS, labels.iter()).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, labels.iter()).record(milliseconds);
}

/// What the `metrics` macros give a metric recorded in this module.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The keys of the two request metrics for one route, method and status class of the API.
struct RequestKeys {
    requests: Key,
    duration: Key,
}

/// How many route, method and status class triples there are.
const TRIPLES: usize = ROUTE_LABELS.len() * METHOD_LABELS.len() * STATUS_CLASSES.len();

/// The keys of every triple of [`ROUTE_LABELS`], [`METHOD_LABELS`] and [`STATUS_CLASSES`], each
/// made at its first request: a key (name, labels and the hash of both) made for every request
/// would cost two label lists a request, recorder or not.
static REQUEST_KEYS: [OnceLock<RequestKeys>; TRIPLES] = [const { OnceLock::new() }; TRIPLES];

impl RequestKeys {
    /// The keys of `route`, the method of [`method_index`] and the class of [`class_index`];
    /// `None` for a route outside [`ROUTE_LABELS`].
    fn of(route: &str, method: usize, class: usize) -> Option<&'static Self> {
        let route = ROUTE_LABELS.iter().position(|known| *known == route)?;
        let index = (route * METHOD_LABELS.len() + method) * STATUS_CLASSES.len() + class;
        let (method, class) = (METHOD_LABELS.get(method)?, STATUS_CLASSES.get(class)?);
        let keys = REQUEST_KEYS.get(index)?.get_or_init(|| {
            let labels = [
                Label::from_static_parts(ROUTE, ROUTE_LABELS[route]),
                Label::from_static_parts(METHOD, method),
                Label::from_static_parts(STATUS_CLASS, class),
            ];
            Self {
                requests: Key::from_parts(HTTP_REQUESTS, labels.to_vec()),
                duration: Key::from_parts(HTTP_REQUEST_DURATION, labels.to_vec()),
            }
        });
        Some(keys)
    }
}

/// The `route` labels of the API's operations, and [`UNMATCHED_ROUTE`].
const ROUTE_LABELS: [&str; 9] = [
    "/customers",
    "/customers/search",
    "/customers/batch",
    "/customers/{id}",
    "/health",
    "/openapi.json",
    "/Customers",
    "/DynamoDBManager",
    UNMATCHED_ROUTE,
];

/// The `method` labels: the standard methods as themselves, any other as `other` (a method is
/// text the client chooses); [`method_index`] picks one.
const METHOD_LABELS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];

/// The `status_class` labels; [`class_index`] picks one.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The position of `method`'s label in [`METHOD_LABELS`].
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The position of `status`'s class in [`STATUS_CLASSES`].
fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusHandle, install_prometheus, prometheus_recorder};

#[cfg(feature = "prometheus")]
pub(crate) mod prometheus {
    use std::time::Duration;

    use axum::response::{IntoResponse, Response};
    pub use metrics_exporter_prometheus::PrometheusHandle;
    use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusRecorder};

    /// How often the recorder's histograms are drained, between scrapes, by the task
    /// [`install_prometheus`] starts.
    const UPKEEP: Duration = Duration::from_secs(5);

    /// A Prometheus recorder, not installed: for [`metrics::with_local_recorder`] in tests, or for
    /// an application that installs recorders itself. [`PrometheusRecorder::handle`] renders it.
    pub fn prometheus_recorder() -> PrometheusRecorder {
        PrometheusBuilder::new().build_recorder()
    }

    /// Installs a Prometheus recorder as the process's global recorder, describes every metric,
    /// and starts its upkeep task on the current Tokio runtime. Give the handle to
    /// [`AppState::with_prometheus`](crate::AppState::with_prometheus) to serve it at
    /// `GET /metrics`.
    ///
    /// # Errors
    /// When a global recorder is already installed.
    pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
        let recorder = prometheus_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)?;
        super::describe();
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP);
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(handle)
    }

    /// `GET /metrics`: the Prometheus text exposition format.
    pub(crate) fn render(handle: &PrometheusHandle) -> Response {
        (
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method_label(method: &Method) -> &'static str {
        METHOD_LABELS[method_index(method)]
    }

    fn status_class(status: u16) -> &'static str {
        STATUS_CLASSES[class_index(status)]
    }

    #[test]
    fn status_classes_and_methods_come_from_fixed_lists() {
        assert_eq!(status_class(100), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(412), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let custom = Method::from_bytes(b"ADA-LOVELACE").unwrap();
        assert_eq!(method_label(&custom), "other");
    }

    #[test]
    fn every_documented_route_method_and_class_has_its_keys_made_once() {
        let mut documented = crate::openapi::paths();
        documented.push(UNMATCHED_ROUTE.to_owned());
        documented.sort();
        let mut known = ROUTE_LABELS.map(str::to_owned).to_vec();
        known.sort();
        assert_eq!(known, documented);
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
            Method::from_bytes(b"PURGE").unwrap(),
        ];
        for route in ROUTE_LABELS {
            for method in &methods {
                for status in [101, 200, 302, 404, 503] {
                    let (at, class_at) = (method_index(method), class_index(status));
                    let keys = RequestKeys::of(route, at, class_at).unwrap();
                    let (method, class) = (method_label(method), status_class(status));
                    let labels: Vec<_> = keys.requests.labels().map(Label::value).collect();
                    assert_eq!(labels, [route, method, class]);
                    assert_eq!(keys.requests.name(), HTTP_REQUESTS);
                    assert_eq!(keys.duration.name(), HTTP_REQUEST_DURATION);
                    let labels: Vec<_> = keys.duration.labels().map(Label::value).collect();
                    assert_eq!(labels, [route, method, class]);
                    let again = RequestKeys::of(route, at, class_at).unwrap();
                    assert!(std::ptr::eq(keys, again), "made twice");
                }
            }
        }
        assert!(RequestKeys::of("/docs/{file}", 0, 1).is_none());
    }
}
