//! The handlers of `/customers`, `/customers/search`, `/customers/{id}` (and the methods of
//! `/customers/batch` that are the customer `batch`'s) and `/health`: parse, call the service,
//! shape the response.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use crm_domain::idempotency::RecordedOutcome;
use crm_domain::{
    Customer, CustomerId, CustomerPatch, Idempotency, Keyed, NewCustomer, Page, Version,
};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{
    CreateJson, FindQuery, IdPath, IfMatch, KeyHeader, PatchJson, Prefix, SearchJson,
};
use crate::find::Find;
use crate::state::AppState;

/// `POST /customers` → 201 with the customer, `Location` and `ETag`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Prefix(prefix): Prefix,
    key: KeyHeader,
    CreateJson(body): CreateJson,
) -> Result<Response, ApiError> {
    let input = NewCustomer::from_json(&body)?;
    let key = key.with_body(Some(&body));
    let created = state
        .service()
        .create_idempotent(input, key.as_ref())
        .await?;
    let (id, mut response) = match created {
        Keyed::Done(customer) => (
            customer.id().clone(),
            with_etag(StatusCode::CREATED, &customer),
        ),
        Keyed::Replayed(outcome) => (outcome.id.clone(), replayed(StatusCode::CREATED, &outcome)),
    };
    let location = format!("{prefix}/customers/{id}");
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

/// `GET /customers` → a page of a listing, of a name search or of the change feed, or the match
/// of an email lookup, all in the shape `{"items", "nextCursor"}`.
pub(crate) async fn list(
    State(state): State<AppState>,
    FindQuery(find): FindQuery,
) -> Result<Response, ApiError> {
    found(&state, find).await
}

/// `POST /customers/search` → the same as [`list`], with the filters in a JSON body, out of URLs.
/// A read: no `Idempotency-Key`, 200.
pub(crate) async fn search(
    State(state): State<AppState>,
    SearchJson(find): SearchJson,
) -> Result<Response, ApiError> {
    found(&state, find).await
}

/// The page `find` asks for.
async fn found(state: &AppState, find: Find) -> Result<Response, ApiError> {
    let service = state.service();
    Ok(match find {
        Find::Email(email) => page_json(&Page {
            items: service.find_by_email(&email).await?.into_iter().collect(),
            next_cursor: None,
        }),
        Find::Listing {
            listing,
            limit,
            cursor,
        } => page_json(&service.list(&listing, limit, cursor.as_ref()).await?),
        Find::Changes {
            since,
            limit,
            cursor,
        } => Json(service.changes(since, limit, cursor.as_ref()).await?).into_response(),
    })
}

/// A fixed id that is also the last segment of a route of its own (`search`, `batch`): a valid
/// customer id, whose path `/customers/<id>` is also the route of [`search`] or of
/// [`batch::create`](crate::batch::create) (for `POST`). The other methods of that path are the
/// customer's.
fn fixed_id(id: &'static str) -> Result<IdPath, ApiError> {
    CustomerId::parse(id)
        .map(IdPath)
        .map_err(|_| ApiError::MalformedId)
}

/// `GET /customers/search`: [`get`] of the customer whose id is `search`.
pub(crate) async fn get_search(state: State<AppState>) -> Result<Response, ApiError> {
    get(state, fixed_id("search")?).await
}

/// `PATCH /customers/search`: [`update`] of the customer whose id is `search`.
pub(crate) async fn update_search(
    state: State<AppState>,
    if_match: IfMatch,
    key: KeyHeader,
    body: PatchJson,
) -> Result<Response, ApiError> {
    update(state, fixed_id("search")?, if_match, key, body).await
}

/// `DELETE /customers/search`: [`delete`] of the customer whose id is `search`.
pub(crate) async fn delete_search(
    state: State<AppState>,
    if_match: IfMatch,
    key: KeyHeader,
) -> Result<Response, ApiError> {
    delete(state, fixed_id("search")?, if_match, key).await
}

/// `GET /customers/batch`: [`get`] of the customer whose id is `batch`.
pub(crate) async fn get_batch(state: State<AppState>) -> Result<Response, ApiError> {
    get(state, fixed_id("batch")?).await
}

/// `PATCH /customers/batch`: [`update`] of the customer whose id is `batch`.
pub(crate) async fn update_batch(
    state: State<AppState>,
    if_match: IfMatch,
    key: KeyHeader,
    body: PatchJson,
) -> Result<Response, ApiError> {
    update(state, fixed_id("batch")?, if_match, key, body).await
}

/// `DELETE /customers/batch`: [`delete`] of the customer whose id is `batch`.
pub(crate) async fn delete_batch(
    state: State<AppState>,
    if_match: IfMatch,
    key: KeyHeader,
) -> Result<Response, ApiError> {
    delete(state, fixed_id("batch")?, if_match, key).await
}

/// `PATCH /customers/{id}` → 200 with the customer and its new `ETag`.
pub(crate) async fn update(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    if_match: IfMatch,
    key: KeyHeader,
    PatchJson(body): PatchJson,
) -> Result<Response, ApiError> {
    let patch = CustomerPatch::from_json(&body)?;
    let key = key.with_body(Some(&body));
    let expected = match if_match.expected_version(state.service(), &id).await {
        Err(refused) => {
            let outcome = recorded(&state, key.as_ref(), refused).await?;
            return Ok(replayed(StatusCode::OK, &outcome));
        }
        Ok(expected) => expected,
    };
    let updated = state
        .service()
        .update_idempotent(&id, &patch, expected, key.as_ref())
        .await?;
    Ok(match updated {
        Keyed::Done(customer) => with_etag(StatusCode::OK, &customer),
        Keyed::Replayed(outcome) => replayed(StatusCode::OK, &outcome),
    })
}

/// `DELETE /customers/{id}` → 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    if_match: IfMatch,
    key: KeyHeader,
) -> Result<Response, ApiError> {
    let key = key.with_body(None);
    let expected = match if_match.expected_version(state.service(), &id).await {
        Err(refused) => {
            recorded(&state, key.as_ref(), refused).await?;
            return Ok(mark_replayed(StatusCode::NO_CONTENT.into_response()));
        }
        Ok(expected) => expected,
    };
    let deleted = state
        .service()
        .delete_idempotent(&id, expected, key.as_ref())
        .await?;
    let response = StatusCode::NO_CONTENT.into_response();
    Ok(match deleted {
        Keyed::Done(()) => response,
        Keyed::Replayed(_) => mark_replayed(response),
    })
}

/// What to answer when `If-Match` refused a request before its write: a list of tags is resolved
/// against the customer as it is now, which this very request, sent before, may have changed (or
/// deleted). With a key, the key's record says: that earlier outcome is the answer. Otherwise, or
/// when no write with the key committed, the refusal is.
async fn recorded(
    state: &AppState,
    key: Option<&Idempotency>,
    refused: ApiError,
) -> Result<RecordedOutcome, ApiError> {
    let Some(key) = key else {
        return Err(refused);
    };
    match state.service().recorded(key).await? {
        Some(recorded) => Ok(recorded),
        None => Err(refused),
    }
}

/// Marks a response answered from the record of an earlier request with the same
/// `Idempotency-Key`, without a write (Stripe's name, which clients already know).
pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The answer to a request whose `Idempotency-Key` an earlier request used: that request's status
/// and `ETag`, marked [`IDEMPOTENT_REPLAYED`], with a body that says which customer and which
/// version that request made (or found, for a patch that changed no value). Not the customer: the record holds no copy of it, and the customer
/// stored now may not be what that request made (changed since, or deleted and created again).
pub(crate) fn replayed(status: StatusCode, outcome: &RecordedOutcome) -> Response {
    let mut response = (status, Json(replay_body(outcome))).into_response();
    if let Some(version) = outcome.version
        && let Ok(etag) = HeaderValue::try_from(etag(version))
    {
        response.headers_mut().insert(header::ETAG, etag);
    }
    mark_replayed(response)
}

/// The body of an answer from a key's record: `{"id", "version"}`.
pub(crate) fn replay_body(outcome: &RecordedOutcome) -> serde_json::Value {
    json!({"id": outcome.id, "version": outcome.version})
}

/// `response`, marked [`IDEMPOTENT_REPLAYED`].
pub(crate) fn mark_replayed(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// `GET /health` → 200. It does not touch the store: it says the function runs, and a store outage
/// shows as 503s on the routes that need it.
pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The `ETag` of a customer at `version`: the version in double quotes, a strong entity tag
/// (RFC 9110 §8.8.3). `If-Match` is read back by [`IfMatch`], which compares strongly.
pub(crate) fn etag(version: Version) -> String {
    let digits = crate::json::Digits::new(version.get());
    let mut tag = String::with_capacity(digits.text().len() + 2);
    tag.push('"');
    tag.push_str(digits.text());
    tag.push('"');
    tag
}

fn with_etag(status: StatusCode, customer: &Customer) -> Response {
    let mut response = (status, customer_json(customer)).into_response();
    // The tag's own buffer becomes the header's (`from_str` would copy it).
    if let Ok(etag) = HeaderValue::try_from(etag(customer.version())) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// What a customer's JSON usually takes: a few hundred bytes (axum's `Json` starts at 128 and
/// grows twice on the way; the largest customer, every field at its limit, takes a few KiB).
const CUSTOMER_JSON_CAPACITY: usize = 512;

/// `customer` as an `application/json` body, written once into a buffer of its usual size by
/// [`crate::json::customer`], the text `serde_json` would write at a fraction of the cost.
fn customer_json(customer: &Customer) -> Response {
    let mut body = String::with_capacity(CUSTOMER_JSON_CAPACITY);
    crate::json::customer(&mut body, customer);
    json_body(body)
}

/// A page of customers as an `application/json` body, written as [`customer_json`] writes one.
fn page_json(page: &Page<Customer>) -> Response {
    let mut body = String::with_capacity(64 + page.items.len() * CUSTOMER_JSON_CAPACITY);
    crate::json::customer_page(&mut body, page);
    json_body(body)
}

/// `body`, JSON text, as an `application/json` response body.
fn json_body(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into_bytes(),
    )
        .into_response()
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
