//! The host application of the embedding example: an axum service of its own (its routes, its
//! authentication, its layers) that nests the customers API under `/crm`.
//!
//! The customers API is one `Router` with no state left to provide, so the host decides everything
//! around it: where it is mounted, who may call it, what wraps it. `crm-http` only makes sure that
//! what it answers stays true under the prefix (`Location` headers, the OpenAPI server URL).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The header the host puts on every response it serves, nested routes included.
pub const SERVED_BY: &str = "x-served-by";

/// The host application: `GET /` and `GET /status` of its own, open to anyone, and `customers`
/// under `/crm`, open only to requests that carry `Authorization: Bearer <token>`.
pub fn app(customers: Router, token: &str) -> Router {
    let bearer = format!("Bearer {token}");
    let protected = customers.layer(middleware::from_fn_with_state(bearer, require_bearer));
    Router::new()
        .route("/", get(|| async { "the host application" }))
        .route("/status", get(|| async { "ok" }))
        .nest("/crm", protected)
        .layer(middleware::map_response(served_by))
}

/// The host's own authentication: a 401 of its own making, before the customers API sees the
/// request.
async fn require_bearer(State(expected): State<String>, request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|given| given.as_bytes() == expected.as_bytes());
    if authorized {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required",
        )
            .into_response()
    }
}

async fn served_by(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static("host-app"));
    response
}
