//! The HTTP adapter of `crm` as a library: the customers API as one tower service ([`api`]),
//! whether behind API Gateway (REST and HTTP APIs), ALB or Lambda function URLs (through
//! `crm-lambda`) or on its own local server (the `crm-server` binary), and as one
//! [`axum::Router`] ([`router`]) to nest in any axum application.
//!
//! This crate is the outer ring of the hexagon. It turns HTTP requests into calls of
//! [`crm_domain::CustomerService`] and their results into responses, and nothing else: validation
//! lives in `crm-domain`, storage in `crm-memory` and `crm-dynamo`. It has no Lambda dependency.
//!
//! - [`router`] builds the [`Router`]: `/customers` (with `POST /customers/search` and
//!   `POST /customers/batch`), the
//!   compatibility routes (`/Customers`, `POST /DynamoDBManager`), `GET /health` and
//!   `GET /openapi.json` (and, with the `docs-viewer` feature, the API docs page at `GET /docs`),
//!   behind the layers every request goes through (request log line, CORS, panic catcher,
//!   deadline, stage prefix). [`api`] is the same API as a plain tower service, without the
//!   `Router` around it, for a host that serves nothing else (`crm-server`, `crm-lambda`).
//! - [`ApiError`] is the one error type of the edge, and one match in it decides the status, code,
//!   title and detail of every error; every error leaves as `application/problem+json` (RFC 9457).
//! - [`envelope`] is the `DynamoDBManager` operation envelope, shared by the HTTP route and direct
//!   (non-HTTP) invocations.
//! - [`Config`] reads every environment variable once, at start; [`store::connect`] builds the
//!   repository once per process; [`telemetry`] sets up the JSON logs; [`metrics`] names the
//!   metrics and serves them to Prometheus; [`server`] runs the local server.
//!
//! # Embedding
//!
//! The router is a plain `Router` with no state left to provide, so an application nests it under
//! a prefix of its own and keeps its listener, its layers and its authentication. `Location`
//! headers and the OpenAPI document's server URL then carry the prefix.
//!
//! ```
//! use std::sync::Arc;
//! use axum::Router;
//! use axum::body::Body;
//! use axum::routing::get;
//! use crm_domain::CustomerService;
//! use crm_http::{AppState, Config, router};
//! use crm_memory::InMemoryCustomerRepository;
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = CustomerService::new(Arc::new(InMemoryCustomerRepository::new()));
//! // Under a mount of its own the router needs no stage prefixes (see `without_stage_prefixes`).
//! let state = AppState::new(service, &Config::default()).without_stage_prefixes();
//! let customers = router(state);
//! let app = Router::new()
//!     .route("/", get(|| async { "the host application" }))
//!     .nest("/crm", customers);
//!
//! let request = http::Request::post("/crm/customers")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"id": "ada", "firstName": "Ada", "lastName": "Lovelace"}"#))?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 201);
//! assert_eq!(response.headers()["location"], "/crm/customers/ada");
//! assert_eq!(response.headers()["etag"], "\"1\"");
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `dynamodb` (default): the DynamoDB store, chosen by `CRM_TABLE_NAME`. Without it the crate
//!   does not depend on the AWS SDK, and only the in-memory store (or a repository of your own,
//!   given to [`AppState::new`]) is available.
//! - `docs-viewer` (default): `GET /docs`, the API docs page: Swagger UI (vendored from npm's
//!   `swagger-ui-dist`, embedded, about 1.9 MB) over `GET /openapi.json`, whose "Try it out" calls
//!   this same router. On when [`Config::docs`] says so (`CRM_DOCS`; by default outside Lambda).
//!   `crm-lambda` leaves it out: its bootstraps do not carry the viewer.
//! - `prometheus` (default): `GET /metrics`, Prometheus text, for a state given a handle with
//!   [`AppState::with_prometheus`] (`crm-server` does when `CRM_METRICS=prometheus`).
//! - `otel` (off by default): OpenTelemetry spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: a server span per request, named by its
//!   route template, continuing the caller's trace, and a client span per DynamoDB call under it
//!   (the `otel` module). [`telemetry::init_with`] (and [`telemetry::init_batched`]) installs it next to the logs; without an endpoint
//!   nothing of it is installed. A build without the feature refuses the variables at start.

pub mod config;
pub mod envelope;
pub mod error;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "otel")]
pub mod otel;
pub mod server;
pub mod store;
pub mod telemetry;

mod batch;
mod compat;
mod customers;
mod distinct;
#[cfg(feature = "docs-viewer")]
mod docs;
mod extract;
mod find;
mod json;
mod middleware;
mod state;

pub use config::{Config, ConfigError, CorsOrigins, MetricsExport, StoreConfig, TracesExport};
pub use error::{ApiError, Problem};
pub use middleware::{BATCH_BODY_LIMIT, BODY_LIMIT, DEADLINE_MARGIN, PlatformContext};
pub use server::serve;
pub use state::AppState;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{get, post};
use tower::ServiceExt as _;
use tower::util::{BoxCloneSyncService, Oneshot};

/// The first path segments of every route. A request whose path is `/<prefix>/<one of these>/…` is
/// served as `/<one of these>/…`; see [`router`].
pub(crate) const ROUTE_ROOTS: &[&str] = &[
    "customers",
    "Customers",
    "DynamoDBManager",
    "health",
    "openapi.json",
];

/// The first path segment of the docs page's routes, a route root like [`ROUTE_ROOTS`] when the
/// page is on (and only then: without it, `docs` may be a stage).
pub(crate) const DOCS_ROOT: &str = "docs";

/// The customers API as one [`Router`], ready for `axum::serve`, `Router::nest` in a host
/// application, or `crm-lambda`.
///
/// Every request passes, outermost first: the request log line and metrics (request id, method,
/// route template, status, latency; never a path, query or body; see [`metrics`]), CORS (from [`Config`]), the panic catcher (a panic
/// becomes a 500 problem), the per-request deadline (a 503 problem with `Retry-After`), and the stage
/// prefix rule: a path `/<prefix>/<route>`, where `<prefix>` is one to four segments, each a valid API
/// Gateway stage name or custom domain base-path segment and none a route root, is served as
/// `/<route>`. That one rule covers API Gateway REST APIs (for which `lambda_http` puts the stage
/// into the path: `/prod/customers`, and behind a custom domain with a base path, whose client path
/// already holds the base path, `/prod/crm/customers` or `/prod/api/v1/customers`), HTTP APIs with a
/// named stage or a base path (whose raw path holds them), and a local server called with a stage.
/// `Location` headers and the OpenAPI document's `servers` keep the prefix the client used: the
/// stage, a custom domain's base path and no stage (from [`PlatformContext`]), and the prefix under
/// which a host application nests this router.
///
/// With the `prometheus` feature and a handle given to [`AppState::with_prometheus`], `GET /metrics`
/// serves the Prometheus text of the metrics ([`metrics`]); it is no API operation, so the OpenAPI
/// document does not list it.
///
/// With the `docs-viewer` feature and [`AppState::docs`] on, `GET /docs` serves the API docs page
/// (Swagger UI over `GET /openapi.json`) and `/docs/…` its files; otherwise they are 404 like any
/// unknown path.
pub fn router(state: AppState) -> Router {
    Router::new().fallback_service(middleware::wrap(routes(&state), state))
}

/// The customers API as one tower [`Service`](tower::Service): the routes and layers of
/// [`router`], without the `Router` around them.
///
/// A host that serves the API and nothing else serves this: `crm-server` ([`serve`]) and
/// `crm-lambda` do. Its answers are [`router`]'s; what it saves on every request is the outer
/// router's own work, a second match of the path (against its fallback's wildcard) and the
/// parameters it records: about 2,000 instructions a request in the local server's profile
/// (BENCHMARKS.md). To nest the API in an application of your own, use [`router`].
pub fn api(state: AppState) -> Api {
    Api(Arc::new(BoxCloneSyncService::new(middleware::wrap(
        routes(&state),
        state,
    ))))
}

/// The routes that [`router`] and [`api`] serve inside the layers of [`middleware::wrap`].
#[cfg_attr(
    not(any(feature = "prometheus", feature = "docs-viewer")),
    expect(unused_variables, reason = "the state chooses only optional routes")
)]
fn routes(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route("/customers", get(customers::list).post(customers::create))
        // `search` is a valid customer id too: the route that takes its path keeps the customer's
        // methods, and adds the search as its POST (which /customers/{id} does not have).
        .route(
            "/customers/search",
            post(customers::search)
                .get(customers::get_search)
                .patch(customers::update_search)
                .delete(customers::delete_search),
        )
        // `batch` is a valid customer id as well: the same arrangement as `search`.
        .route(
            "/customers/batch",
            post(batch::create)
                .get(customers::get_batch)
                .patch(customers::update_batch)
                .delete(customers::delete_batch),
        )
        .route(
            "/customers/{id}",
            get(customers::get)
                .patch(customers::update)
                .delete(customers::delete),
        )
        .route("/health", get(customers::health))
        .route("/openapi.json", get(openapi::serve))
        .route(
            "/Customers",
            get(compat::list)
                .post(compat::create)
                .patch(compat::update)
                .delete(compat::delete),
        )
        .route("/DynamoDBManager", post(envelope::route));
    #[cfg(feature = "prometheus")]
    let routes = if let Some(handle) = state.prometheus().cloned() {
        routes.route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move { crate::metrics::prometheus::render(&handle) }
            }),
        )
    } else {
        routes
    };
    #[cfg(feature = "docs-viewer")]
    let routes = if state.docs() {
        routes.merge(docs::routes())
    } else {
        routes
    };
    routes
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(middleware::RecordRouteLayer)
}

/// The customers API as a tower [`Service`](tower::Service) of its own (see [`api`]): a pointer
/// to what [`api`] built, cheap to clone and shareable across threads; never failing (every error
/// is a response). Each request is served by a copy of the layers of its own, as a `Router`
/// serves each by a copy of its route.
#[derive(Clone)]
pub struct Api(Arc<BoxCloneSyncService<Request, Response, Infallible>>);

impl tower::Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = Oneshot<BoxCloneSyncService<Request, Response, Infallible>, Request>;

    /// Always ready: the copy that serves a request is made ready on its way.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        BoxCloneSyncService::clone(&self.0).oneshot(request)
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api")
    }
}
