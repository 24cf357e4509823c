//! The handlers of `/customers` and `/health`: parse, call the service, shape the response.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use crm_domain::{Customer, CustomerPatch, NewCustomer, Page, Version};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{CreateJson, IdPath, IfMatch, ListQuery, PatchJson, Prefix};
use crate::state::AppState;

/// `POST /customers` → 201 with the customer, `Location` and `ETag`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Prefix(prefix): Prefix,
    CreateJson(body): CreateJson,
) -> Result<Response, ApiError> {
    let input = NewCustomer::from_json(&body)?;
    let customer = state.service().create(input).await?;
    let location = format!("{prefix}/customers/{}", customer.id());
    let mut response = with_etag(StatusCode::CREATED, &customer);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /customers/{id}` → 200 with the customer and its `ETag`.
pub(crate) async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let customer = state.service().get(&id).await?;
    Ok(with_etag(StatusCode::OK, &customer))
}

/// `GET /customers?limit=&cursor=` → a page; `GET /customers?email=` → the same shape with the match.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: ListQuery,
) -> Result<Json<Page<Customer>>, ApiError> {
    let page = match query {
        ListQuery::Page { limit, cursor } => state.service().list(limit, cursor.as_ref()).await?,
        ListQuery::Email(email) => Page {
            items: state
                .service()
                .find_by_email(&email)
                .await?
                .into_iter()
                .collect(),
            next_cursor: None,
        },
    };
    Ok(Json(page))
}

/// `PATCH /customers/{id}` → 200 with the customer and its new `ETag`.
pub(crate) async fn update(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    if_match: IfMatch,
    PatchJson(body): PatchJson,
) -> Result<Response, ApiError> {
    let patch = CustomerPatch::from_json(&body)?;
    let expected = if_match.expected_version(state.service(), &id).await?;
    let customer = state.service().update(&id, &patch, expected).await?;
    Ok(with_etag(StatusCode::OK, &customer))
}

/// `DELETE /customers/{id}` → 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let expected = if_match.expected_version(state.service(), &id).await?;
    state.service().delete(&id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /health` → 200. It does not touch the store: it says the function runs, and a store outage
/// shows as 503s on the routes that need it.
pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The `ETag` of a customer at `version`: the version in double quotes, a strong entity tag
/// (RFC 9110 §8.8.3). `If-Match` is read back by [`IfMatch`], which compares strongly.
pub(crate) fn etag(version: Version) -> String {
    format!("\"{version}\"")
}

fn with_etag(status: StatusCode, customer: &Customer) -> Response {
    let mut response = (status, Json(customer)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&etag(customer.version())) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_is_the_version_in_double_quotes() {
        assert_eq!(etag(Version::FIRST), "\"1\"");
        assert_eq!(etag(Version::FIRST.next()), "\"2\"");
    }
}
