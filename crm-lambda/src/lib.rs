//! The HTTP adapter of `crm`: one router that serves the customers API to API Gateway (REST and HTTP
//! APIs), ALB, Lambda function URLs and a local server alike.
//!
//! This crate is the outer ring of the hexagon. It turns HTTP requests into calls of
//! [`crm_domain::CustomerService`] and their results into responses, and nothing else: validation lives
//! in `crm-domain`, storage in `crm-memory` and `crm-dynamo`.
//!
//! - [`app`] builds the [`axum::Router`]: the routes of DESIGN.md's HTTP API, the compatibility
//!   routes (`/Customers`, `POST /DynamoDBManager`), `GET /health` and `GET /openapi.json`, behind the
//!   layers every request goes through (request log line, CORS, panic catcher, deadline, stage prefix).
//! - [`ApiError`] is the one error type of the edge; [`ApiError::status`] is the one place that decides
//!   status codes, and every error leaves as `application/problem+json` (RFC 9457).
//! - [`envelope`] is the `DynamoDBManager` operation envelope, shared by the HTTP route and the direct
//!   (non-HTTP) Lambda entry point.
//! - [`Config`] is read once at start; [`store::connect`] builds the repository once per cold start;
//!   [`telemetry`] sets up the JSON logs.
//!
//! The binaries `crm-http` (the router, on `lambda_http` inside Lambda, on `CRM_BIND` elsewhere) and
//! `crm-envelope` (the envelope on `lambda_runtime`) are thin `main`s over these.
//!
//! ```
//! use std::sync::Arc;
//! use axum::body::Body;
//! use crm_domain::CustomerService;
//! use crm_lambda::{AppState, Config, app};
//! use crm_memory::InMemoryCustomerRepository;
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_vars([("CRM_REQUEST_DEADLINE_MS", "2000")])?;
//! let service = CustomerService::new(Arc::new(InMemoryCustomerRepository::new()));
//! let router = app(AppState::new(service, &config));
//!
//! let request = http::Request::post("/prod/customers")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"firstName": "Ada", "lastName": "Lovelace"}"#))?;
//! let response = router.oneshot(request).await?;
//! assert_eq!(response.status(), 201);
//! assert_eq!(response.headers()["etag"], "\"1\"");
//! # Ok(()) }
//! ```

pub mod config;
pub mod envelope;
pub mod error;
pub mod openapi;
pub mod store;
pub mod telemetry;

mod compat;
mod customers;
mod extract;
mod middleware;
mod state;

pub use config::{Config, ConfigError, CorsOrigins};
pub use error::{ApiError, Problem};
pub use middleware::BODY_LIMIT;
pub use state::AppState;

use axum::Router;
use axum::routing::{get, post};

/// The first path segments of every route. A request whose path is `/<prefix>/<one of these>/…` is
/// served as `/<one of these>/…`; see [`app`].
pub(crate) const ROUTE_ROOTS: &[&str] = &[
    "customers",
    "Customers",
    "DynamoDBManager",
    "health",
    "openapi.json",
];

/// The customers API as one [`Router`], ready for `axum::serve` or `lambda_http::run`.
///
/// Every request passes, outermost first: the request log line (request id, method, route template,
/// status, latency; never a path, query or body), CORS (from [`Config`]), the panic catcher (a panic
/// becomes a 500 problem), the per-request deadline (a 503 problem with `Retry-After`), and the stage
/// prefix rule: a path `/<prefix>/<route>`, where `<prefix>` is one to four segments, each a valid API
/// Gateway stage name or custom domain base-path segment and none a route root, is served as
/// `/<route>`. That one rule covers API Gateway REST APIs (for which `lambda_http` puts the stage
/// into the path: `/prod/customers`, and behind a custom domain with a base path, whose client path
/// already holds the base path, `/prod/crm/customers` or `/prod/api/v1/customers`), HTTP APIs with a
/// named stage or a base path (whose raw path holds them), and a local server called with a stage.
/// `Location` headers keep the prefix the client used (for a custom domain, its base path and no
/// stage).
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .route("/customers", get(customers::list).post(customers::create))
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
        .route("/DynamoDBManager", post(envelope::route))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn(middleware::record_route))
        .with_state(state.clone());
    middleware::wrap(routes, state)
}
