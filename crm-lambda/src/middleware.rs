//! The layers around the routes: request log line, CORS, panic catcher, deadline, stage prefix.
//!
//! Routing happens inside these layers, so the log line cannot read axum's `MatchedPath` from the
//! request it sees. Instead it hands the router a [`RouteSlot`], which [`record_route`] (a layer on the
//! routes themselves) fills with the route template; even a request that panics or runs out of time
//! is logged with its template.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument as _;

use crate::ROUTE_ROOTS;
use crate::config::CorsOrigins;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest request body accepted, in bytes (16 KiB); larger bodies are answered 413 before any
/// parsing, whether or not they announce a `Content-Length`.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The response header that carries the request id.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route template of the request, filled in by [`record_route`] once the router has matched.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// What precedes the routed path in the URL the client used (`/prod`, a custom domain's base path,
/// or nothing), for `Location` headers.
#[derive(Clone, Debug, Default)]
pub(crate) struct StagePrefix(pub(crate) String);

/// Puts the layers around `routes`; see [`crate::app`] for their order and purpose.
pub(crate) fn wrap(inner: Router, state: AppState) -> Router {
    let cors = cors_layer(state.cors_origins());
    let staged = tower::util::MapRequest::new(inner, strip_stage);
    let mut router = Router::new()
        .fallback_service(staged)
        .layer(from_fn_with_state(state, enforce_deadline))
        .layer(CatchPanicLayer::custom(|_panic| {
            // The payload is not logged: a panic message could quote anything.
            ApiError::Panicked.into_response()
        }));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.layer(from_fn(log_request))
}

fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        CorsOrigins::Disabled => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::IF_MATCH])
            .expose_headers([header::ETAG, header::LOCATION, REQUEST_ID])
            .max_age(std::time::Duration::from_mins(10)),
    )
}

/// Serves `/<stage>/<route…>` as `/<route…>` (see [`crate::app`]) and records the client's prefix.
fn strip_stage(mut request: Request) -> Request {
    let mut stripped = String::new();
    if let Some(stage) = stage_prefix(request.uri().path()) {
        let stage = stage.to_owned();
        let rest = &request.uri().path()[stage.len()..];
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
            stripped = stage;
        }
    }
    let prefix = client_path(&request)
        .and_then(|client| client.strip_suffix(request.uri().path()))
        .map_or(stripped, str::to_owned);
    request.extensions_mut().insert(StagePrefix(prefix));
    request
}

/// The path as the client sent it, when API Gateway says. `lambda_http` puts the stage into the
/// path of every REST API event, but a client of a custom domain never sent one; the request
/// context keeps the client's own path (with the stage on `execute-api` URLs, with the base path
/// on custom domains).
fn client_path(request: &Request) -> Option<&str> {
    use lambda_http::RequestExt as _;
    use lambda_http::request::RequestContext;
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(context) => context.path.as_deref(),
        RequestContext::ApiGatewayV2(context) => context.http.path.as_deref(),
        _ => None,
    }
}

/// The `/<stage>` prefix of `path`, when its second segment is a route root and its first is not.
fn stage_prefix(path: &str) -> Option<&str> {
    let after = path.strip_prefix('/')?;
    let (first, rest) = after.split_once('/')?;
    let second = rest.split('/').next()?;
    let is_stage = !first.is_empty()
        && first.len() <= 128
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (is_stage && !ROUTE_ROOTS.contains(&first) && ROUTE_ROOTS.contains(&second))
        .then(|| &path[..=first.len()])
}

async fn enforce_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let deadline = state.request_deadline();
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::DeadlineExceeded(deadline).into_response(),
    }
}

/// Copies the matched route template into the request's [`RouteSlot`].
pub(crate) async fn record_route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    next.run(request).await
}

/// The one log line of every request. It names the route template, never the path (which holds
/// ids) or the query (which can hold an email), and never reads the body.
async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(&request);
    let method = request.method().clone();
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());

    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = next.run(request).instrument(span.clone()).await;

    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let route = slot.0.get().map_or("unmatched", String::as_str);
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            request_id = %request_id,
            method = %method,
            route,
            status,
            latency_ms,
            "request"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The request id: Lambda's (`aws_request_id`), else a well-formed `x-request-id` or
/// `x-amzn-requestid` header from a proxy, else a new UUIDv7.
fn request_id(request: &Request) -> String {
    use lambda_http::RequestExt as _;
    if let Some(context) = request.lambda_context_ref()
        && !context.request_id.is_empty()
    {
        return context.request_id.clone();
    }
    ["x-amzn-requestid", "x-request-id"]
        .iter()
        .filter_map(|name| request.headers().get(*name)?.to_str().ok())
        .find(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// The fallback for a path no route has.
pub(crate) async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// The fallback for a route called with a method it does not have; axum adds `Allow`.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_before_a_route_root_is_a_prefix() {
        assert_eq!(stage_prefix("/prod/customers"), Some("/prod"));
        assert_eq!(stage_prefix("/prod/customers/abc"), Some("/prod"));
        assert_eq!(stage_prefix("/dev-2/Customers"), Some("/dev-2"));
        assert_eq!(stage_prefix("/v1_test/health"), Some("/v1_test"));
        assert_eq!(stage_prefix("/prod/openapi.json"), Some("/prod"));
        assert_eq!(stage_prefix("/prod/DynamoDBManager"), Some("/prod"));
    }

    #[test]
    fn anything_else_is_left_alone() {
        for path in [
            "/customers",
            "/customers/abc",
            "/customers/customers",
            "/prod",
            "/prod/",
            "/prod/unknown",
            "/a/b/customers",
            "//customers",
            "/pr.od/customers",
            "",
            "/",
        ] {
            assert_eq!(stage_prefix(path), None, "{path}");
        }
    }

    #[test]
    fn stripping_keeps_the_query_and_records_the_prefix() {
        let request = Request::builder()
            .uri("https://api.example.com/prod/customers?limit=5")
            .body(axum::body::Body::empty())
            .unwrap();
        let request = strip_stage(request);
        assert_eq!(
            request.uri().to_string(),
            "https://api.example.com/customers?limit=5"
        );
        assert_eq!(
            request.extensions().get::<StagePrefix>().unwrap().0,
            "/prod"
        );
    }

    #[test]
    fn every_documented_path_starts_with_a_route_root_and_every_root_is_documented() {
        let paths = crate::openapi::paths();
        for path in &paths {
            let root = path.trim_start_matches('/').split('/').next().unwrap();
            assert!(ROUTE_ROOTS.contains(&root), "{path}");
        }
        for root in ROUTE_ROOTS {
            assert!(
                paths
                    .iter()
                    .any(|p| p.trim_start_matches('/').split('/').next() == Some(root)),
                "{root}"
            );
        }
    }
}
