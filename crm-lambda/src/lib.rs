//! The AWS Lambda entry points of `crm`, over `crm-http`: nothing here but what only Lambda needs.
//!
//! - [`run_http`] serves API Gateway (REST and HTTP APIs), ALB and function URL events with
//!   [`crm_http::api`] through `lambda_http`, after [`platform_context`] has told the API
//!   what the event knows and the HTTP request does not (Lambda's request id, the path the client
//!   sent). [`answer_http`] is its answer to one event.
//! - [`invoke_direct`] answers a direct (non-HTTP) invocation of the `DynamoDBManager` envelope with
//!   [`crm_http::envelope::invoke_direct`], turning a failure into a Lambda function error whose
//!   `errorType` is the problem code.
//! - [`events::answer_stream`] reads a batch of the table's DynamoDB stream and puts the change
//!   events it tells on an `EventBridge` bus, in order per customer, answering Lambda which record
//!   to retry from (a partial batch response). [`events`] says how.
//! - [`metrics`] installs the `CloudWatch` Embedded Metric Format recorder and writes its lines after
//!   every invocation.
//!
//! The binaries `crm-lambda-http`, `crm-lambda-envelope` and `crm-lambda-events` are a few lines
//! each over these and [`serve`], which takes as many invocations at once as Lambda sets in
//! `AWS_LAMBDA_MAX_CONCURRENCY` (Lambda Managed Instances), and one at a time elsewhere. The first two build configuration, logs and repository with `crm-http`'s
//! [`Config`](crm_http::Config), [`telemetry`](crm_http::telemetry) and [`store`](crm_http::store),
//! once per cold start; the third needs no table, reads its own
//! [`EventsConfig`](events::EventsConfig) and builds its [`Publisher`](events::Publisher) (the
//! `EventBridge` client) once per cold start, with the same logs.
//!
//! # Panics and events that are not HTTP
//!
//! The bootstraps unwind on panic (the `lambda` profile of the workspace's `Cargo.toml`), so that a
//! panic ends one request, not the sandbox: inside the API's layers it is a 500 problem (`crm-http`'s
//! panic catcher); anywhere else in [`answer_http`] or [`invoke_direct`] the same 500 problem, or
//! the `internal-error` function error. In each case the panic hook
//! ([`install_panic_hook`](crm_http::telemetry::install_panic_hook)) writes the one log line,
//! which never holds the panic's message. An event that cannot become an HTTP request (a `Host`,
//! `X-Forwarded-Proto`, path or query string no URI can hold, header bytes that are not HTTP, a
//! body marked base64 that is not) is answered with a 400 problem before `lambda_http`, whose
//! conversion would panic on it, sees it.
//!
//! ```no_run
//! use crm_domain::CustomerService;
//! use crm_http::{AppState, Config, api, store};
//!
//! # #[tokio::main] async fn main() -> Result<(), lambda_http::Error> {
//! let config = Config::from_env()?;
//! let (repository, _) = store::connect(&config).await;
//! let state = AppState::new(CustomerService::new(repository), &config);
//! crm_lambda::run_http(api(state)).await?;
//! # Ok(()) }
//! ```

pub mod events;
mod http_event;
pub mod metrics;

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use crm_http::{ApiError, AppState, PlatformContext, envelope};
use lambda_http::request::RequestContext;
use lambda_http::{Adapter, Request, RequestExt as _};
use lambda_runtime::{Context, Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use serde_json::value::RawValue;
use tower::ServiceExt as _;

/// The tokio runtime a bootstrap runs on: one thread, unless Lambda sets
/// `AWS_LAMBDA_MAX_CONCURRENCY` above 1.
///
/// A classic sandbox hands out one invocation at a time, so a second worker thread would have
/// nothing of its own to do: it would only take over the tasks of the one request (the Runtime
/// API's connection, the SDK's), each handover a cross-thread wake-up on the latency path, and it
/// costs a thread's start in the cold start. Where one sandbox serves several invocations at once
/// (Lambda Managed Instances), they run on a worker per CPU, as [`serve`] polls for them.
/// Nothing the handlers do blocks a thread: the one blocking step, exporting spans before an
/// answer (the feature `otel`), waits for an exporter that runs on threads of its own.
///
/// # Errors
/// When the runtime cannot be built (the process cannot start threads or an event loop).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let concurrency = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .unwrap_or(1);
    let mut builder = if concurrency > 1 {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}

/// Serves `api` ([`crm_http::api`], or a `Router` that holds [`crm_http::router`]) to the Lambda
/// Runtime API until the runtime stops, answering each event with [`answer_http`], as many at
/// once as Lambda asks (see [`serve`]).
///
/// # Errors
/// When the runtime cannot be reached or stops.
pub async fn run_http<S>(api: S) -> Result<(), lambda_http::Error>
where
    S: HttpService,
{
    serve(
        api,
        |api, event| async move { answer_http(&api, event).await },
    )
    .await
}

/// Serves `handler` to the Lambda Runtime API until the runtime stops, giving it each event with
/// its own clone of `shared` (the API, the state, the publisher: each a few pointers to what
/// the cold start built).
///
/// Where Lambda sets `AWS_LAMBDA_MAX_CONCURRENCY` above 1 (Lambda Managed Instances), one sandbox
/// serves that many invocations at once: `lambda_runtime`'s `run_concurrent` polls for events in
/// that many tasks, each answering its invocation while the others poll or answer theirs.
/// Elsewhere the one poller takes the invocations one by one, as on Lambda's classic sandboxes.
/// Nothing the handlers share needs more: the repository, the SDK clients and the API are
/// built for concurrent requests, as the local server serves them.
///
/// Each invocation starts by counting a cold start if it is the sandbox's first, and ends, before
/// its answer is posted, by exporting the spans finished so far and waiting for the collector
/// ([`crm_http::telemetry::flush_spans`]; nothing without crm-http's `otel` feature or an OTLP
/// endpoint), then writing the metrics recorded so far as EMF lines ([`metrics::flush`]; nothing
/// when no EMF recorder is installed).
///
/// # Errors
/// When the runtime cannot be reached or stops.
pub async fn serve<T, R, F, Fut>(shared: T, handler: F) -> Result<(), lambda_http::Error>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T, LambdaEvent<Box<RawValue>>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<R, Diagnostic>> + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        metrics::invocation_started();
        let deadline = event.context.deadline();
        let answer = handler(shared.clone(), event);
        async move {
            // Before the runtime posts the answer, after which Lambda may freeze the sandbox; on
            // the way out of a handler that unwinds or is dropped too. Dropped in the reverse
            // order: the metrics first (a local write that cannot wait), then the spans (a wait
            // for the collector, bounded by the time the invocation has left).
            let _spans = FlushSpansOnDrop { deadline };
            let _flush = metrics::FlushOnDrop;
            let answered = answer.await;
            // One turn of the scheduler before the flush: tasks the answer aborted (a listing's
            // reads cut by the request's deadline) are dropped then, and with them their hold on
            // the request's span, which is exported only once closed. On the current-thread
            // runtime (classic sandboxes) they have run by the time this resumes; on the
            // multi-threaded one another worker may still be dropping one (a best effort: the
            // span is then exported with a later invocation's flush).
            tokio::task::yield_now().await;
            answered
        }
    }))
    .await
}

/// Exports the spans finished so far when dropped ([`crm_http::telemetry::flush_spans`]): at the
/// end of an invocation however it ends, before the runtime posts its answer. The request's span
/// and its DynamoDB calls' have ended by then (the handler's future has completed or unwound).
/// It waits for the collector at most [`SPAN_FLUSH_LIMIT`], and never past the invocation's
/// deadline less [`DEADLINE_MARGIN`](crm_http::DEADLINE_MARGIN): a collector that does not answer
/// must not turn an answer into a Lambda timeout.
struct FlushSpansOnDrop {
    deadline: SystemTime,
}

/// The longest an invocation waits for the collector before its answer is posted.
const SPAN_FLUSH_LIMIT: Duration = Duration::from_secs(1);

impl Drop for FlushSpansOnDrop {
    fn drop(&mut self) {
        let left = self
            .deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(crm_http::DEADLINE_MARGIN);
        crm_http::telemetry::flush_spans(left.min(SPAN_FLUSH_LIMIT));
    }
}

/// Answers one API Gateway, ALB or function URL event with `api`, as [`run_http`] does: the
/// response document for the Lambda service, in the shape of the event's source.
///
/// The event goes through `lambda_http`'s conversion, [`platform_context`] and the API, unless
/// it cannot become an HTTP request: then it is answered `400` with a `bad-request` problem naming
/// the part at fault (never its value) and logged as one `request refused` line. A panic anywhere
/// on the way is a `500` `internal-error` problem.
///
/// # Errors
/// A [`Diagnostic`] of type `unsupported-event` when the event is no API Gateway, ALB or function
/// URL event (a direct invocation, say); `internal-error` when the response cannot be serialized
/// (logged).
pub async fn answer_http<S>(
    api: &S,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Box<RawValue>, Diagnostic>
where
    S: HttpService,
{
    let LambdaEvent { payload, context } = event;
    let request_id = context.request_id.clone();
    let Some((request, fault)) = http_event::read(payload.get()) else {
        tracing::error!(
            request_id = %request_id,
            "event not served: not an API Gateway, ALB or function URL event"
        );
        return Err(Diagnostic {
            error_type: "unsupported-event".to_owned(),
            error_message: "this function answers API Gateway, ALB and Lambda function URL events"
                .to_owned(),
        });
    };
    let origin = request.request_origin();
    let serialized = if let Some(part) = fault {
        tracing::info!(
            request_id = %request_id,
            status = 400,
            part = part.name(),
            "request refused"
        );
        let problem = ApiError::BadRequest(part.detail().to_owned()).problem();
        http_event::problem_response(&origin, &problem, &request_id)
    } else {
        let api = api.clone();
        let service = tower::service_fn(move |request| read_response(api.clone(), request));
        let event = LambdaEvent::new(request, context);
        // A body that failed to read is a 500, as a panic is.
        if let Some(Ok(response)) = catch_panic(Adapter::from(service).oneshot(event)).await {
            serde_json::value::to_raw_value(&response)
        } else {
            let problem = ApiError::Panicked.problem();
            http_event::problem_response(&origin, &problem, &request_id)
        }
    };
    serialized.map_err(|error| {
        tracing::error!(request_id = %request_id, error = %error, "response not serialized");
        diagnostic(&ApiError::Serialization(error))
    })
}

/// What [`run_http`] and [`answer_http`] serve: [`crm_http::api`]'s service, or a `Router`
/// (an application that nests [`crm_http::router`] with routes or layers of its own). Implemented
/// for every tower service of that shape; not to be implemented by hand.
pub trait HttpService:
    tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The body of the API's response failed to read: `answer_http` answers it as it answers a panic.
struct BodyUnread;

/// `api`'s response to `request` (with its [`platform_context`]), its body read into memory.
///
/// `lambda_http` reads the whole body into the response document anyway; reading it here, into a
/// body that is `Sync` (axum's is not), is what lets the answer's future move between the threads
/// of a runtime that serves several invocations at once ([`serve`]).
async fn read_response<S: HttpService>(
    api: S,
    request: Request,
) -> Result<lambda_http::http::Response<lambda_http::Body>, BodyUnread> {
    let request = platform_context(request).map(axum::body::Body::new);
    let Ok(response) = api.oneshot(request).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| {
            tracing::error!(error = %error, "response body not read");
            BodyUnread
        })?;
    Ok(lambda_http::http::Response::from_parts(
        parts,
        lambda_http::Body::from(Vec::from(bytes)),
    ))
}

/// Adds what the event knows to `request`, as a [`PlatformContext`]: Lambda's request id (which
/// the request log line and `x-request-id` then carry) and the invocation's deadline (which
/// bounds the request's own), and for API Gateway the path the client sent, which `lambda_http`
/// does not keep in the URI for REST APIs (it puts the stage there, even for clients of a custom
/// domain, who never sent one).
pub fn platform_context(mut request: Request) -> Request {
    let mut context = PlatformContext::new();
    if let Some(lambda) = request.lambda_context_ref() {
        context = invocation(lambda);
    }
    let client_path = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(api)) => api.path.clone(),
        Some(RequestContext::ApiGatewayV2(api)) => api.http.path.clone(),
        _ => None,
    };
    if let Some(path) = client_path {
        context = context.with_client_path(path);
    }
    request.extensions_mut().insert(context);
    request
}

/// Answers one direct invocation of the `DynamoDBManager` envelope: its result, or a function error
/// whose `errorType` is the problem code (`id-taken`, `bad-request`, …) and whose `errorMessage` is
/// the problem's summary. The invocation's one log line is written by `crm-http`. A panic is the
/// `internal-error` function error, never its message (which `lambda_runtime`'s own catch would
/// send back to the caller).
///
/// # Errors
/// Every failure of the envelope, as a [`Diagnostic`].
pub async fn invoke_direct(
    state: &AppState,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Value, Diagnostic> {
    let LambdaEvent { payload, context } = event;
    let platform = invocation(&context);
    match catch_panic(envelope::invoke_direct(state, &platform, payload.get())).await {
        Some(result) => result.map_err(|error| diagnostic(&error)),
        None => Err(diagnostic(&ApiError::Panicked)),
    }
}

/// `error` as a function error: its problem code and summary.
fn diagnostic(error: &ApiError) -> Diagnostic {
    Diagnostic {
        error_type: error.code().to_owned(),
        error_message: error.problem().summary(),
    }
}

/// What an invocation's context tells the router: its request id, and its deadline (none when
/// the context has none, as outside Lambda).
fn invocation(context: &Context) -> PlatformContext {
    let mut platform = PlatformContext::new().with_request_id(context.request_id.clone());
    if let Some(trace) = &context.xray_trace_id {
        platform = platform.with_trace_header(trace.clone());
    }
    if context.deadline > 0 {
        platform = platform.with_deadline(context.deadline());
    }
    platform
}

/// `future`'s output, or `None` when it panics (the panic hook has logged it). Unwind-safe by
/// assertion, as `crm-http`'s panic catcher is: what a request shares with the next (the API,
/// the store) is what that catcher keeps serving after a panic.
async fn catch_panic<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll.map(Some),
            Err(_) => Poll::Ready(None),
        }
    })
    .await
}
