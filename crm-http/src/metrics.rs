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
//! | `dynamodb_calls`, `dynamodb_errors`, `dynamodb_retries`, `dynamodb_throttles` | counter | count | `operation` (`crm_dynamo::metrics`) |
//! | `dynamodb_call_duration_ms` | histogram | milliseconds | `operation` |
//! | `cold_starts` | counter | count | none (`crm-lambda`, once per sandbox, at its first invocation) |
//!
//! `route` is the route template axum matched (`/customers/{id}`), or `unmatched`; never the path,
//! which holds ids. `method` is one of the standard methods or `other` (a client chooses the
//! method's text). `status_class` is `1xx` to `5xx`. No label holds a customer value: every label
//! value comes from a fixed list or from this router's templates.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use metrics::{Label, SharedString, Unit};

/// Counter: HTTP requests answered, whatever their outcome.
pub const HTTP_REQUESTS: &str = "http_requests";
/// Histogram, milliseconds: from the request's arrival in the router's outermost layer to its
/// response (the same span as the log line's `latency_ms`).
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_ms";
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
    #[cfg(feature = "dynamodb")]
    crm_dynamo::metrics::describe();
}

/// Records one answered request.
pub(crate) fn record_request(route: &str, method: &Method, status: u16, elapsed: Duration) {
    // Every value static for this router's own routes; the counter and the histogram share the
    // labels.
    let labels = [
        Label::new(ROUTE, route_label(route)),
        Label::from_static_parts(METHOD, method_label(method)),
        Label::from_static_parts(STATUS_CLASS, status_class(status)),
    ];
    metrics::counter!(HTTP_REQUESTS, labels.iter()).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, labels.iter())
        .record(elapsed.as_secs_f64() * 1000.0);
}

/// The route templates of the API's operations, whose label needs no copy of its own.
const API_ROUTES: [&str; 8] = [
    "/customers",
    "/customers/search",
    "/customers/batch",
    "/customers/{id}",
    "/health",
    "/openapi.json",
    "/Customers",
    "/DynamoDBManager",
];

/// `route` as a label value: a static string for the API's routes and `unmatched`, a shared copy
/// for any other (the docs page's, `/metrics`).
fn route_label(route: &str) -> SharedString {
    API_ROUTES
        .iter()
        .chain(&[UNMATCHED_ROUTE])
        .find(|known| **known == route)
        .map_or_else(
            || SharedString::from_shared(Arc::<str>::from(route)),
            |known| SharedString::const_str(known),
        )
}

/// The standard methods as themselves, any other as `other`: a method is text the client chooses.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
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
    fn every_documented_route_has_a_static_label() {
        let mut documented = crate::openapi::paths();
        documented.sort();
        let mut known = API_ROUTES.map(str::to_owned).to_vec();
        known.sort();
        assert_eq!(known, documented);
        for route in ["/customers/{id}", UNMATCHED_ROUTE, "/docs/{file}"] {
            assert_eq!(&*route_label(route), route);
        }
    }
}
