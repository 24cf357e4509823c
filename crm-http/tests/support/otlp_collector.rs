//! A fake OpenTelemetry collector on loopback: `POST /v1/traces` takes OTLP/HTTP protobuf bodies
//! (`ExportTraceServiceRequest`), keeps every byte received, and answers `200` with an empty
//! `ExportTraceServiceResponse`, as a collector does. The tests read back the raw bodies (to look
//! for customer data in any byte) and the spans decoded from them.
//!
//! Shared by crm-http's and crm-lambda's span tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;

/// OTLP's span kinds, as the protobuf numbers them.
pub(crate) const KIND_SERVER: i32 = 2;
pub(crate) const KIND_CLIENT: i32 = 3;

/// One exported span, flattened: ids in lowercase hex (empty when absent), attributes as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExportedSpan {
    pub(crate) service: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent_span_id: String,
    pub(crate) name: String,
    pub(crate) kind: i32,
    pub(crate) attributes: BTreeMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    pub(crate) status: i32,
    pub(crate) events: usize,
    pub(crate) links: usize,
}

#[derive(Default)]
struct Received {
    bodies: Vec<(Instant, Vec<u8>)>,
    /// Requests that were not protobuf posts.
    refused: usize,
}

/// The collector, serving until dropped.
pub(crate) struct Collector {
    address: SocketAddr,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Starts the collector on a free loopback port (inside a Tokio runtime).
    pub(crate) async fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let router = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the collector");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            received,
            server,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is added to it).
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every body received so far, as received.
    pub(crate) fn bodies(&self) -> Vec<Vec<u8>> {
        self.lock().bodies.iter().map(|(_, b)| b.clone()).collect()
    }

    /// How many requests were refused (not a protobuf `POST`, or not decodable).
    pub(crate) fn refused(&self) -> usize {
        self.lock().refused
    }

    /// Every span received so far, in the order received.
    pub(crate) fn spans(&self) -> Vec<ExportedSpan> {
        self.bodies().iter().flat_map(|body| decode(body)).collect()
    }

    /// The spans of the trace `trace_id`.
    pub(crate) fn trace(&self, trace_id: &str) -> Vec<ExportedSpan> {
        self.spans()
            .into_iter()
            .filter(|span| span.trace_id == trace_id)
            .collect()
    }

    /// Waits (at most `timeout`) until `done` holds of the spans received; returns them.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ExportedSpan]) -> bool,
    ) -> Vec<ExportedSpan> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) || started.elapsed() > timeout {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `POST /v1/traces`: keeps the body when it is an OTLP protobuf request.
async fn traces(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-protobuf");
    let decodes = ExportTraceServiceRequest::decode(body.as_ref()).is_ok();
    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
    if protobuf && decodes {
        received.bodies.push((Instant::now(), body.to_vec()));
        // An empty ExportTraceServiceResponse: full success.
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::new(),
        )
    } else {
        received.refused += 1;
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            b"not an OTLP protobuf request".to_vec(),
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The spans of one `ExportTraceServiceRequest` body.
pub(crate) fn decode(body: &[u8]) -> Vec<ExportedSpan> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace request");
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(ExportedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                        .collect(),
                    status: span.status.map_or(0, |s| s.code),
                    events: span.events.len(),
                    links: span.links.len(),
                });
            }
        }
    }
    spans
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}
