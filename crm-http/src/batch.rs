//! `POST /customers/batch`: up to [`MAX_CUSTOMERS`] creates in one request, each answered on its
//! own.
//!
//! The body is `{"customers": [...]}`, at most [`BATCH_BODY_LIMIT`](crate::BATCH_BODY_LIMIT)
//! bytes. Its shape is the request's: anything but a JSON object whose one member is `customers`,
//! an array, is a 400; fewer than 1 or more than [`MAX_CUSTOMERS`] customers a 422 on `customers`.
//! Each customer is then read as `POST /customers` reads its body, and written through
//! [`CustomerService::create_batch`](crm_domain::CustomerService::create_batch). The answer is
//! `{"results": [...]}`, one result per customer in input order:
//!
//! - `{"status": 201, "customer": {…}}` for a customer created (`{"id", "version"}` when answered
//!   from the record of an earlier request with the same `Idempotency-Key`, as `POST /customers`
//!   answers a replay);
//! - `{"status": <status>, "problem": {…}}` otherwise: the problem document `POST /customers`
//!   would answer for that customer alone (status, code and text decided by [`ApiError`], like
//!   every error), with `retryAfter` (seconds) where that answer would carry `Retry-After`.
//!
//! The response is 200 when every customer was created, 207 (Multi-Status) otherwise, even when
//! none was. Results carry no headers: a created customer's `Location` is
//! `<prefix>/customers/<id>` and its `ETag` `"<version>"`, both read from its result.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use crm_domain::{BatchOutcome, Customer, FieldError, Keyed, NewCustomer, RepositoryError};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::customers::{mark_replayed, replay_body};
use crate::distinct;
use crate::error::{ApiError, Problem};
use crate::extract::{BatchJson, KeyHeader};
use crate::state::AppState;

/// The most customers of one batch.
pub(crate) const MAX_CUSTOMERS: usize = 100;

/// The one member of the body.
const CUSTOMERS: &str = "customers";

/// `POST /customers/batch` → 200 when every customer was created, else 207; see the module.
pub(crate) async fn create(
    State(state): State<AppState>,
    key: KeyHeader,
    BatchJson(body): BatchJson,
) -> Result<Response, ApiError> {
    let key = key.with_body(Some(&body));
    let items = customers(&body);
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(items.len());
    let mut inputs = Vec::new();
    for (position, item) in items.iter().enumerate() {
        match NewCustomer::from_json(item) {
            Ok(input) => {
                inputs.push((position, input));
                results.push(None);
            }
            Err(errors) => results.push(Some(ItemResult::failed(&ApiError::from(errors)))),
        }
    }
    let mut outcomes = state
        .service()
        .create_batch(inputs, key.as_ref())
        .await?
        .into_iter();
    let mut logged = false;
    let results: Vec<ItemResult> = results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Err(RepositoryError::unexpected(
                        "the service answered fewer outcomes than it was given customers",
                    ))
                });
                ItemResult::of(outcome, &mut logged)
            })
        })
        .collect();
    Ok(answer(results))
}

/// The customers of a body that [`items_of`] read.
fn customers(body: &Value) -> &[Value] {
    body.get(CUSTOMERS)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Reads the body of `POST /customers/batch`: a JSON object whose one member, `customers`, is an
/// array of 1 to [`MAX_CUSTOMERS`] items, each still to be read as a customer. The body as parsed
/// (what the `Idempotency-Key` fingerprint covers).
///
/// # Errors
/// 400 `malformed-json` when the body is not JSON or repeats a member name anywhere; 400 when it
/// is not such an object (another member, `customers` missing or not an array); 422 on
/// `customers` for fewer than 1 or more than [`MAX_CUSTOMERS`] items.
pub(crate) fn items_of(bytes: &[u8]) -> Result<Value, ApiError> {
    let shape = || {
        ApiError::BadRequest(format!(
            "the body must be a JSON object with one member, `{CUSTOMERS}`: an array of 1 to {MAX_CUSTOMERS} customers"
        ))
    };
    let Value::Object(mut members) =
        distinct::from_slice(bytes).map_err(ApiError::MalformedJson)?
    else {
        return Err(shape());
    };
    let customers = members.remove(CUSTOMERS);
    if let Some(name) = members.keys().next() {
        // The name goes back to the client who sent it, never to a log.
        return Err(ApiError::BadRequest(format!(
            "unknown member `{name}`; POST /customers/batch takes only `{CUSTOMERS}`, an array of 1 to {MAX_CUSTOMERS} customers"
        )));
    }
    let Some(Value::Array(items)) = customers else {
        return Err(shape());
    };
    if !(1..=MAX_CUSTOMERS).contains(&items.len()) {
        return Err(ApiError::Validation(vec![FieldError::new(
            CUSTOMERS,
            format!(
                "must hold 1 to {MAX_CUSTOMERS} customers, not {}",
                items.len()
            ),
        )]));
    }
    Ok(Value::Object(Map::from_iter([(
        CUSTOMERS.to_owned(),
        Value::Array(items),
    )])))
}

/// The result of one customer of a batch.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ItemResult {
    /// Created now: 201 and the customer.
    Created { status: u16, customer: Customer },
    /// Answered from the record of an earlier request with the same key: 201 and which customer
    /// and version it made.
    Replayed { status: u16, customer: Value },
    /// Not created: the problem `POST /customers` would answer for it alone.
    Failed {
        status: u16,
        problem: Problem,
        /// Seconds, where that answer would carry `Retry-After`.
        #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

impl ItemResult {
    fn failed(error: &ApiError) -> Self {
        Self::Failed {
            status: error.status().as_u16(),
            problem: error.problem(),
            retry_after: error.retry_after_seconds(),
        }
    }

    /// The result of `outcome`. The first server error of the batch is logged (its chain, as a
    /// request that fails logs its own), unless `logged` says one was.
    fn of(outcome: BatchOutcome, logged: &mut bool) -> Self {
        let created = StatusCode::CREATED.as_u16();
        match outcome {
            Ok(Keyed::Done(customer)) => Self::Created {
                status: created,
                customer,
            },
            Ok(Keyed::Replayed(outcome)) => Self::Replayed {
                status: created,
                customer: replay_body(&outcome),
            },
            Err(error) => {
                let error = ApiError::from(error);
                if !*logged && error.status().is_server_error() {
                    error.log();
                    *logged = true;
                }
                Self::failed(&error)
            }
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Failed { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The body of a batch's answer.
#[derive(Serialize)]
struct Answer {
    results: Vec<ItemResult>,
}

/// The response: 200 when every customer was created, else 207; marked
/// [`IDEMPOTENT_REPLAYED`](crate::customers::IDEMPOTENT_REPLAYED) when a result was answered
/// from a record, and with the longest `Retry-After` a result asks for.
fn answer(results: Vec<ItemResult>) -> Response {
    let all_created = results
        .iter()
        .all(|result| !matches!(result, ItemResult::Failed { .. }));
    let replayed = results
        .iter()
        .any(|result| matches!(result, ItemResult::Replayed { .. }));
    let retry_after = results.iter().filter_map(ItemResult::retry_after).max();
    let status = if all_created {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut response = (status, Json(Answer { results })).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if replayed {
        response = mark_replayed(response);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<usize, (u16, String)> {
        items_of(body.as_bytes())
            .map(|body| customers(&body).len())
            .map_err(|e| (e.status().as_u16(), e.code().to_owned()))
    }

    #[test]
    fn a_batch_is_an_object_with_one_to_a_hundred_customers() {
        assert_eq!(read(r#"{"customers": [{}]}"#), Ok(1));
        let hundred = format!(r#"{{"customers": [{}]}}"#, vec!["1"; 100].join(","));
        assert_eq!(read(&hundred), Ok(100));
        for (body, status, code) in [
            (r#"{"customers": []}"#, 422, "validation-failed"),
            ("{}", 400, "bad-request"),
            (r#"{"customers": null}"#, 400, "bad-request"),
            (r#"{"customers": {}}"#, 400, "bad-request"),
            (r#"{"customers": [], "extra": 1}"#, 400, "bad-request"),
            (
                r#"{"customers": [{}], "customers": [{}]}"#,
                400,
                "malformed-json",
            ),
            ("[]", 400, "bad-request"),
            ("{", 400, "malformed-json"),
            (r#"{"customers": [{}]} x"#, 400, "malformed-json"),
        ] {
            assert_eq!(read(body), Err((status, code.to_owned())), "{body}");
        }
        let over = format!(r#"{{"customers": [{}]}}"#, vec!["1"; 101].join(","));
        assert_eq!(read(&over), Err((422, "validation-failed".to_owned())));
    }

    #[test]
    fn the_limit_is_named_when_a_batch_holds_too_many() {
        let over = format!(r#"{{"customers": [{}]}}"#, vec!["{}"; 101].join(","));
        let problem = items_of(over.as_bytes()).unwrap_err().problem();
        let errors = problem.errors.unwrap();
        assert_eq!(errors[0].field, "customers");
        assert!(errors[0].message.contains("1 to 100"), "{}", errors[0]);
    }
}
