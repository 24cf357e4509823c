//! OpenTelemetry spans over OTLP/HTTP (protobuf), with the feature `otel`, when
//! [`Config::traces`](crate::Config::traces) names an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Without one nothing here is installed: the subscriber is
//! the logs' alone, and a request pays one atomic load ([`enabled`]).
//!
//! # What is exported
//!
//! Two kinds of `tracing` spans become OpenTelemetry spans, and nothing else does (no event, no
//! other span, whatever `RUST_LOG` says):
//!
//! - the `request` span the router opens around every request: a **server** span named by the
//!   method and the route template (`GET /customers/{id}`; the method alone when no route
//!   matched; `_OTHER` for a method outside the standard ones), with `http.request.method`,
//!   `http.route`, `http.response.status_code` and `request_id`; status `Error` for a 5xx. Its
//!   parent is the caller's span (`traceparent`, `X-Amzn-Trace-Id`, or Lambda's X-Ray header),
//!   so it joins the caller's trace.
//! - the `invocation` span of a direct invocation of the `DynamoDBManager` envelope
//!   (`crm-lambda-envelope`): a **server** span named `DynamoDBManager <operation>` (`unknown`
//!   when unreadable), with `crm.operation`, `crm.status` (200, or the error's status) and
//!   `request_id`, in the trace of the invocation's X-Ray header.
//! - the span the AWS SDK opens around each DynamoDB operation (`DynamoDB.GetItem`, …): a
//!   **client** span, child of the request (or invocation) span, named `DynamoDB.<operation>`,
//!   with `rpc.system` (`aws-api`), `rpc.service` and `rpc.method`.
//!
//! Every other attribute is dropped, and so are span events and links, by a span processor of this module, just before
//! export: the SDK's spans record only constant names today, but a field a later SDK adds cannot
//! reach the collector. No path, query, header or body is ever recorded; customer data has no way
//! in.
//!
//! # How spans leave the process
//!
//! Through the SDK's [`BatchSpanProcessor`], which queues finished spans and exports them from a
//! thread of its own (every 5 s, `OTEL_BSP_SCHEDULE_DELAY`), so that a request never waits for the
//! collector. The exporter's HTTP requests run on a one-thread Tokio runtime of their own, not on
//! the application's: [`flush_within`] blocks its caller until the export is done or its limit
//! has passed, and the caller is a worker of the application's runtime (crm-lambda flushes on the
//! way out of each invocation), possibly its only one (one vCPU, or the one-thread runtime of a
//! classic sandbox). An export on the application's own runtime could then wait for the very thread
//! that waits for it; on a runtime of its own it cannot. (The SDK's `SimpleSpanProcessor` would
//! export each span on the thread that ends it, holding every request up for a round trip to the
//! collector per DynamoDB call.)
//!
//! Each export is one HTTP request of at most [`EXPORT_TIMEOUT`], not retried: a collector that
//! is down costs the spans, not the requests. [`flush_within`] waits for the spans queued so far
//! at most as long as its caller says (crm-lambda: the time the invocation has left, at most 1 s);
//! the SDK's own wait, up to 5 s, goes on on a thread of its own. [`shutdown`] waits for the last
//! ones.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Method;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator, RandomIdGenerator, SdkTracerProvider, Span as SdkSpan,
    SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor,
};
use tracing::{Metadata, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::{Config, TracesExport};

/// The most one export (one HTTP request to the collector) may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long [`shutdown`] waits for the last spans.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// The least time between two log lines about failed exports ([`Reported`]).
const REPORT_EVERY: Duration = Duration::from_mins(1);

/// The tracer provider, once [`install`]ed.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The target of the router's request span.
const REQUEST_TARGET: &str = crate::middleware::TARGET;

/// The target of a direct envelope invocation's span.
const INVOCATION_TARGET: &str = "crm_http::envelope";

/// The attributes a server (request) span keeps.
const SERVER_ATTRIBUTES: &[&str] = &[
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "request_id",
];

/// The attributes an invocation span keeps.
const INVOCATION_ATTRIBUTES: &[&str] = &["crm.operation", "crm.status", "request_id"];

/// The attributes a client (DynamoDB call) span keeps.
const CLIENT_ATTRIBUTES: &[&str] = &["rpc.system", "rpc.service", "rpc.method"];

/// The span export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export spans: {0}")]
pub struct ExportError(String);

/// Whether spans are exported: an endpoint was configured and the export installed
/// ([`telemetry::init_with`](crate::telemetry::init_with) or
/// [`telemetry::init_batched`](crate::telemetry::init_batched)).
#[inline]
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// The thread that runs [`flush_within`]'s flushes, started by the first one; each request is a
/// channel to say "done" on.
static FLUSHER: OnceLock<mpsc::SyncSender<mpsc::SyncSender<()>>> = OnceLock::new();

/// Exports the spans finished so far and waits for the collector's answer, at most `limit`;
/// nothing when no export is installed. crm-lambda calls it before each answer is posted, since
/// Lambda may freeze the process once it is, with the time the invocation has left.
///
/// It blocks the calling thread for at most `limit`. The flush itself runs on a thread of its own
/// (the SDK's `force_flush` waits up to 5 s for a collector that does not answer, far longer than
/// an invocation may have left): past `limit` the caller goes on, the flush finishes in the
/// background, and flushes asked for meanwhile wait behind it rather than start threads of their
/// own. Spans it could not export by the answer are exported by a later flush, or lost if Lambda
/// ends the sandbox first.
pub fn flush_within(limit: Duration) {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    let flusher = FLUSHER.get_or_init(|| {
        let (requests, received) = mpsc::sync_channel::<mpsc::SyncSender<()>>(64);
        let provider = provider.clone();
        let started = std::thread::Builder::new()
            .name("crm-otel-flush".to_owned())
            .spawn(move || {
                for done in received {
                    let _ = provider.force_flush();
                    let _ = done.try_send(());
                }
            });
        if started.is_err() {
            tracing::warn!(
                "cannot start the span flush thread: spans are exported on schedule only"
            );
        }
        requests
    });
    let (done, finished) = mpsc::sync_channel(1);
    // A full queue (64 flushes waiting behind a stuck one) or no thread: do not wait at all.
    if flusher.try_send(done).is_ok() {
        let _ = finished.recv_timeout(limit);
    }
}

/// Exports the last spans and stops the export (waiting at most a few seconds); nothing when none
/// is installed. `crm-server` calls it on its way out.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
    }
}

/// Builds the tracer provider for `traces`: the OTLP/HTTP exporter, [`Reported`], behind a batch
/// processor, behind [`Shape`]. The resource is `service.name` (`OTEL_SERVICE_NAME`, default `crm`), what
/// `OTEL_RESOURCE_ATTRIBUTES` adds, and inside Lambda `cloud.provider`, `cloud.platform` and
/// `faas.name`. The sampler is the SDK's (`OTEL_TRACES_SAMPLER`; by default the caller's
/// decision, else every trace).
///
/// # Errors
/// When the exporter cannot be built, or the export runtime cannot start. (The `OTEL_*` settings
/// the SDK reads itself are not among the causes: it ignores a value it cannot read and keeps its
/// default.)
pub(crate) fn provider(
    traces: &TracesExport,
    config: &Config,
) -> Result<SdkTracerProvider, ExportError> {
    let client = OnOwnRuntime::start(traces.endpoint())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces.endpoint())
        .with_timeout(EXPORT_TIMEOUT)
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .map_err(|e| ExportError(e.to_string()))?;
    let mut resource = Resource::builder().with_service_name(traces.service_name().to_owned());
    if config.in_lambda() {
        resource = resource.with_attributes([
            KeyValue::new("cloud.provider", "aws"),
            KeyValue::new("cloud.platform", "aws_lambda"),
        ]);
        if let Some(function) = config.function_name() {
            resource = resource.with_attribute(KeyValue::new("faas.name", function.to_owned()));
        }
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(Shape(
            BatchSpanProcessor::builder(Reported::new(exporter)).build(),
        ))
        .with_id_generator(XrayIds::default())
        .with_resource(resource.build())
        .build())
}

/// Makes `provider` the one [`flush_within`] and [`shutdown`] act on.
pub(crate) fn install(provider: SdkTracerProvider) {
    let _ = PROVIDER.set(provider);
}

/// The `tracing` layer that turns the [`exported`] spans of the subscriber into OpenTelemetry
/// spans of `provider`: no source location, thread or timing attributes (all dropped anyway).
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber
        + for<'span> tracing_subscriber::registry::LookupSpan<'span>
        + Send
        + Sync
        + 'static,
{
    use tracing_subscriber::Layer as _;
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("crm"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_level(false)
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(exported))
}

/// The callsites that become OpenTelemetry spans: the router's `request` span, a direct envelope
/// invocation's `invocation` span, and the AWS SDK's span of a DynamoDB operation (the one that
/// records `rpc.method`: `DynamoDB.GetItem` from the generated client, or the runtime's generic
/// `invoke`). Never an event.
pub(crate) fn exported(metadata: &Metadata<'_>) -> bool {
    if !metadata.is_span() {
        return false;
    }
    let target = metadata.target();
    (target == REQUEST_TARGET && metadata.name() == "request")
        || (target == INVOCATION_TARGET && metadata.name() == "invocation")
        || ((target.starts_with("aws_sdk_dynamodb") || target.starts_with("aws_smithy_runtime"))
            && metadata.fields().field("rpc.method").is_some())
}

/// The caller's span, as the request's trace headers name it: a request span continues its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemoteParent {
    /// The trace id (non-zero).
    pub(crate) trace_id: u128,
    /// The caller's span id (non-zero).
    pub(crate) span_id: u64,
    /// Whether the caller sampled the trace.
    pub(crate) sampled: bool,
}

/// Makes `parent` the parent of the request span `span`, which must not have been entered yet.
pub(crate) fn adopt(span: &Span, parent: Option<RemoteParent>) {
    let Some(parent) = parent else { return };
    let flags = if parent.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let remote = SpanContext::new(
        TraceId::from(parent.trace_id),
        SpanId::from(parent.span_id),
        flags,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

/// Records the outcome of the request span `span`: its method, route template (`None`: no route
/// matched) and status; a 5xx sets the span's status to `Error`.
pub(crate) fn answered(span: &Span, method: &Method, route: Option<&str>, status: u16) {
    span.set_attribute("http.request.method", method_name(method));
    if let Some(route) = route {
        span.set_attribute("http.route", route.to_owned());
    }
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(""));
    }
}

/// Records the outcome of a direct envelope invocation's span `span`: its operation (one of the
/// envelope's names, or `unknown`) and status (200, or the error's); a 5xx sets the span's status
/// to `Error`.
pub(crate) fn invoked(span: &Span, operation: &'static str, status: u16) {
    span.set_attribute("crm.operation", operation);
    span.set_attribute("crm.status", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(""));
    }
}

/// The method as OpenTelemetry's HTTP conventions name it: a standard method as itself, any other
/// as `_OTHER` (a method is text the client chooses).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The span processor in front of the batch processor: gives each span its kind and name and
/// keeps only the attributes listed for it ([`SERVER_ATTRIBUTES`], [`INVOCATION_ATTRIBUTES`],
/// [`CLIENT_ATTRIBUTES`]), and no event or link. A span that is none of these is not exported.
#[derive(Debug)]
pub(crate) struct Shape<P>(pub(crate) P);

impl<P: SpanProcessor> SpanProcessor for Shape<P> {
    fn on_start(&self, span: &mut SdkSpan, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if shape(&mut span) {
            self.0.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// Shapes `span` for export (see [`Shape`]); false when it is to be dropped.
pub(crate) fn shape(span: &mut SpanData) -> bool {
    let text = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .and_then(|kv| match &kv.value {
                Value::String(s) => Some(s.as_str().to_owned()),
                _ => None,
            })
    };
    let (kind, name, kept) = if let Some(method) = text("http.request.method") {
        let name = match text("http.route") {
            Some(route) => format!("{method} {route}"),
            None => method,
        };
        (SpanKind::Server, name, SERVER_ATTRIBUTES)
    } else if let Some(operation) = text("crm.operation") {
        (
            SpanKind::Server,
            format!("DynamoDBManager {operation}"),
            INVOCATION_ATTRIBUTES,
        )
    } else if let (Some(service), Some(operation)) = (text("rpc.service"), text("rpc.method")) {
        (
            SpanKind::Client,
            format!("{service}.{operation}"),
            CLIENT_ATTRIBUTES,
        )
    } else {
        return false;
    };
    let client = kind == SpanKind::Client;
    span.span_kind = kind;
    span.name = name.into();
    span.attributes.retain(|kv| kept.contains(&kv.key.as_str()));
    if client
        && !span
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "rpc.system")
    {
        span.attributes.push(KeyValue::new("rpc.system", "aws-api"));
    }
    span.events = SpanEvents::default();
    span.links = SpanLinks::default();
    if let Status::Error { .. } = span.status {
        span.status = Status::error("");
    }
    true
}

/// The exporter, with its failures made visible. The SDK's batch processor drops a batch whose
/// export failed and tells only its own internal log, which this crate does not turn on: with a
/// collector down, unreachable or refusing the spans, an operator would see traces missing and
/// nothing else. Each failed export counts in
/// [`SPAN_EXPORT_FAILURES`](crate::metrics::SPAN_EXPORT_FAILURES), and a `warn` line says why
/// (the exporter's words: "network error", a status code, a timeout; never a span or a response
/// body), with the failures and spans lost since the previous line, at most once a minute: in
/// Lambda every invocation flushes, so a collector that stays down would otherwise write a line
/// per invocation.
#[derive(Debug)]
struct Reported<E> {
    exporter: E,
    failures: Mutex<Failures>,
}

impl<E> Reported<E> {
    fn new(exporter: E) -> Self {
        Self {
            exporter,
            failures: Mutex::new(Failures::default()),
        }
    }

    fn failed(&self, spans: usize, error: &OTelSdkError) {
        metrics::counter!(crate::metrics::SPAN_EXPORT_FAILURES).increment(1);
        let due = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(spans, Instant::now());
        if let Some(Failures { exports, spans, .. }) = due {
            tracing::warn!(
                failed_exports = exports,
                spans_lost = spans,
                error = %error,
                "span export failed; the spans are lost"
            );
        }
    }
}

impl<E: SpanExporter> SpanExporter for Reported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.exporter.export(batch).await;
        if let Err(error) = &result {
            self.failed(spans, error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.exporter.set_resource(resource);
    }
}

/// Failed exports not yet reported by a log line, and when the last line was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Failures {
    exports: u64,
    spans: u64,
    reported: Option<Instant>,
}

impl Failures {
    /// Counts a failed export of `spans` spans at `now`. When a line is due (the first failure,
    /// or the first after [`REPORT_EVERY`] since the last line), returns what it reports, and
    /// starts counting again.
    fn add(&mut self, spans: usize, now: Instant) -> Option<Self> {
        self.exports += 1;
        self.spans += spans as u64;
        if self
            .reported
            .is_some_and(|last| now.saturating_duration_since(last) < REPORT_EVERY)
        {
            return None;
        }
        let due = *self;
        *self = Self {
            reported: Some(now),
            ..Self::default()
        };
        Some(due)
    }
}

/// Trace ids that AWS X-Ray accepts as its own: the first 4 bytes are the start time in seconds
/// (X-Ray's `1-<8 hex>-<24 hex>`), the other 12 random. Span ids are random.
#[derive(Debug, Default)]
struct XrayIds(RandomIdGenerator);

impl IdGenerator for XrayIds {
    fn new_trace_id(&self) -> TraceId {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let random = u128::from_be_bytes(self.0.new_trace_id().to_bytes());
        let epoch = u128::from(u32::try_from(seconds).unwrap_or(u32::MAX));
        TraceId::from((epoch << 96) | (random & ((1 << 96) - 1)))
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// The exporter's HTTP client: opentelemetry-http's hyper client (plain TCP for `http://`,
/// rustls with the system's roots for `https://`), each request sent on a one-thread Tokio runtime
/// of its own (see the module docs for why).
#[derive(Debug)]
struct OnOwnRuntime {
    client: Arc<dyn HttpClient>,
    runtime: ExportRuntime,
}

/// The runtime of [`OnOwnRuntime`], shut down without waiting when dropped (which may happen
/// inside another runtime, where a plain drop would panic).
#[derive(Debug)]
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl OnOwnRuntime {
    fn start(endpoint: &str) -> Result<Self, ExportError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("crm-otel-export")
            .enable_all()
            .build()
            .map_err(|e| ExportError(format!("no runtime for the exporter: {e}")))?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let client: Arc<dyn HttpClient> = if endpoint.starts_with("https://") {
            http.enforce_http(false);
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| ExportError(format!("no TLS for the exporter: {e}")))?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(
                    hyper_rustls::ConfigBuilderExt::with_native_roots(tls)
                        .map_err(|e| ExportError(format!("no root certificates: {e}")))?
                        .with_no_client_auth(),
                )
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            Arc::new(opentelemetry_http::hyper::HyperClient::new(
                connector,
                EXPORT_TIMEOUT,
                None,
            ))
        } else {
            Arc::new(opentelemetry_http::hyper::HyperClient::new(
                http,
                EXPORT_TIMEOUT,
                None,
            ))
        };
        Ok(Self {
            client,
            runtime: ExportRuntime(Some(runtime)),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OnOwnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let Some(runtime) = &self.runtime.0 else {
            return Err("the export runtime is shut down".into());
        };
        let client = Arc::clone(&self.client);
        runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use opentelemetry::InstrumentationScope;

    use super::*;

    fn span(name: &'static str, attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::error("Zephyrine"),
            instrumentation_scope: InstrumentationScope::builder("crm").build(),
        }
    }

    #[test]
    fn failed_exports_are_reported_at_once_then_at_most_once_a_minute_with_the_count_between() {
        let start = Instant::now();
        let mut failures = Failures::default();
        let first = failures
            .add(3, start)
            .expect("the first failure is reported");
        assert_eq!((first.exports, first.spans), (1, 3));
        assert_eq!(failures.add(2, start + Duration::from_secs(1)), None);
        assert_eq!(failures.add(5, start + Duration::from_secs(59)), None);
        let next = failures
            .add(1, start + REPORT_EVERY)
            .expect("a minute after the last line, a new one");
        assert_eq!(
            (next.exports, next.spans),
            (3, 8),
            "what failed since the last line"
        );
        assert_eq!(failures.add(1, start + REPORT_EVERY), None);
        assert_eq!(failures.exports, 1);
    }

    fn keys(span: &SpanData) -> Vec<&str> {
        span.attributes.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn a_request_span_is_a_server_span_named_by_method_and_route_with_listed_attributes_only() {
        let mut request = span(
            "request",
            vec![
                KeyValue::new("request_id", "r-1"),
                KeyValue::new("trace_id", "1-5759e988-bd862e3fe1be46a994272793"),
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/customers/{id}"),
                KeyValue::new("http.response.status_code", 500),
                KeyValue::new("email", "zq.planted@example.org"),
                KeyValue::new("code.file.path", "src/middleware.rs"),
            ],
        );
        assert!(shape(&mut request));
        assert_eq!(request.name, "GET /customers/{id}");
        assert_eq!(request.span_kind, SpanKind::Server);
        assert_eq!(
            keys(&request),
            [
                "request_id",
                "http.request.method",
                "http.route",
                "http.response.status_code"
            ]
        );
        assert_eq!(request.status, Status::error(""));

        let mut unmatched = span(
            "request",
            vec![KeyValue::new("http.request.method", "_OTHER")],
        );
        assert!(shape(&mut unmatched));
        assert_eq!(unmatched.name, "_OTHER");
    }

    #[test]
    fn sdk_spans_are_client_spans_invocations_server_spans_and_anything_else_is_dropped() {
        let mut call = span(
            "invoke",
            vec![
                KeyValue::new("rpc.service", "DynamoDB"),
                KeyValue::new("rpc.method", "GetItem"),
                KeyValue::new("sdk_invocation_id", 4_242_424),
                KeyValue::new("body", "Quillfeather"),
            ],
        );
        assert!(shape(&mut call));
        assert_eq!(call.name, "DynamoDB.GetItem");
        assert_eq!(call.span_kind, SpanKind::Client);
        assert_eq!(keys(&call), ["rpc.service", "rpc.method", "rpc.system"]);

        let mut invocation = span(
            "invocation",
            vec![
                KeyValue::new("request_id", "r-2"),
                KeyValue::new("crm.operation", "read"),
                KeyValue::new("crm.status", 404),
                KeyValue::new("payload", "zq.planted@example.org"),
            ],
        );
        assert!(shape(&mut invocation));
        assert_eq!(invocation.name, "DynamoDBManager read");
        assert_eq!(invocation.span_kind, SpanKind::Server);
        assert_eq!(
            keys(&invocation),
            ["request_id", "crm.operation", "crm.status"]
        );

        let mut other = span("lazy_load_identity", vec![KeyValue::new("x", "y")]);
        assert!(!shape(&mut other));
    }

    #[test]
    fn only_the_request_span_and_the_sdk_operation_spans_are_exported() {
        // Spans with the metadata of the real ones, under a subscriber that takes every span.
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let request =
                tracing::info_span!(target: "crm_http::middleware", "request", request_id = 1);
            let call = tracing::debug_span!(
                target: "aws_sdk_dynamodb::operation::get_item",
                "DynamoDB.GetItem",
                "rpc.method" = "GetItem"
            );
            let invoke = tracing::debug_span!(
                target: "aws_smithy_runtime::client::orchestrator::operation",
                "invoke",
                "rpc.method" = "GetItem"
            );
            let attempt = tracing::debug_span!(
                target: "aws_smithy_runtime::client::orchestrator",
                "try_attempt",
                attempt = 1
            );
            let envelope = tracing::info_span!(target: "crm_http::envelope", "invocation");
            let other = tracing::info_span!(target: "crm_http::envelope", "request");
            for (span, expected) in [
                (&request, true),
                (&call, true),
                (&invoke, true),
                (&attempt, false),
                (&envelope, true),
                (&other, false),
            ] {
                let metadata = span.metadata().unwrap();
                assert_eq!(exported(metadata), expected, "{metadata:?}");
            }
        });
    }

    #[test]
    fn xray_trace_ids_start_with_the_time() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let id = u128::from_be_bytes(XrayIds::default().new_trace_id().to_bytes());
        let seconds = u64::try_from(id >> 96).unwrap();
        assert!(seconds.abs_diff(now) < 5, "{seconds} {now}");
        assert_ne!(id & ((1 << 96) - 1), 0);
    }

    #[test]
    fn standard_methods_are_named_and_others_are_other() {
        assert_eq!(method_name(&Method::PATCH), "PATCH");
        assert_eq!(
            method_name(&Method::from_bytes(b"ZEPHYRINE").unwrap()),
            "_OTHER"
        );
    }
}
