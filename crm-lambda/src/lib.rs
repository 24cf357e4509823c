//! The AWS Lambda entry points of `crm`, over `crm-http`: nothing here but what only Lambda needs.
//!
//! - [`run_http`] serves API Gateway (REST and HTTP APIs), ALB and function URL events with
//!   [`crm_http::router`] through `lambda_http`, after [`platform_context`] has told the router
//!   what the event knows and the HTTP request does not (Lambda's request id, the path the client
//!   sent).
//! - [`invoke_direct`] answers a direct (non-HTTP) invocation of the `DynamoDBManager` envelope with
//!   [`crm_http::envelope::invoke_direct`], turning a failure into a Lambda function error whose
//!   `errorType` is the problem code.
//!
//! The binaries `crm-lambda-http` and `crm-lambda-envelope` are a few lines each over these, and
//! build configuration, logs and repository with `crm-http`'s [`Config`](crm_http::Config),
//! [`telemetry`](crm_http::telemetry) and [`store`](crm_http::store), once per cold start.
//!
//! ```no_run
//! use crm_domain::CustomerService;
//! use crm_http::{AppState, Config, router, store};
//!
//! # #[tokio::main] async fn main() -> Result<(), lambda_http::Error> {
//! let config = Config::from_env()?;
//! let (repository, _) = store::connect(&config).await;
//! let state = AppState::new(CustomerService::new(repository), &config);
//! crm_lambda::run_http(router(state)).await?;
//! # Ok(()) }
//! ```

use axum::Router;
use crm_http::{AppState, PlatformContext, envelope};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt as _};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;
use serde_json::value::RawValue;

/// Serves `router` to the Lambda Runtime API until the runtime stops.
///
/// # Errors
/// When the runtime cannot be reached or stops.
pub async fn run_http(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(tower::util::MapRequest::new(router, platform_context)).await
}

/// Adds what the event knows to `request`, as a [`PlatformContext`]: Lambda's request id (which
/// the router's log line and `x-request-id` then carry) and the invocation's deadline (which
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
/// the problem's summary. The invocation's one log line is written by `crm-http`.
///
/// # Errors
/// Every failure of the envelope, as a [`Diagnostic`].
pub async fn invoke_direct(
    state: &AppState,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Value, Diagnostic> {
    let LambdaEvent { payload, context } = event;
    envelope::invoke_direct(state, &invocation(&context), payload.get())
        .await
        .map_err(|error| Diagnostic {
            error_type: error.code().to_owned(),
            error_message: error.problem().summary(),
        })
}

/// What an invocation's context tells the router: its request id, and its deadline (none when
/// the context has none, as outside Lambda).
fn invocation(context: &Context) -> PlatformContext {
    let mut platform = PlatformContext::new().with_request_id(context.request_id.clone());
    if context.deadline > 0 {
        platform = platform.with_deadline(context.deadline());
    }
    platform
}
