//! The `DynamoDBManager` operation envelope: `{"operation", "tableName", "payload"}`.
//!
//! The legacy `DynamoDBManager` API passed the payload straight to boto3 on a table the caller
//! named. Here the envelope is read into the same service calls as the REST routes, so every rule
//! holds (validation, no overwrite, no write to a missing id) and the caller never picks the table:
//! `tableName`, when given, must be the configured one (the DynamoDB table, or `customers` for the
//! in-memory store), else 403.
//!
//! | operation | payload | result |
//! | --- | --- | --- |
//! | `create` | `Item`: a customer, in the `/Customers` spellings | `{"Item": customer}`; 409 if the id or email is taken |
//! | `read` | `Key`: `{"id"}` | `{"Item": customer}`, or `{}` when there is none |
//! | `update` | `Key`, `UpdateExpression` `SET a = :x, #b = :y` over `firstName`, `lastName`, `email`, `phone` and `address` (or `Address`), `ExpressionAttributeValues`, optional `ExpressionAttributeNames`, optional `ReturnValues` (ignored) | `{"Attributes": customer}` (always the new customer); 404 for an unknown id |
//! | `delete` | `Key` | `{}`; 404 for an unknown id |
//! | `list` | optional `Limit` (≥ 1; above 100 it is served as 100, as DynamoDB may return fewer items than `Limit`), optional `ExclusiveStartKey` | `{"Items", "Count", "ScannedCount", "LastEvaluatedKey"}`, oldest first (the `createdAt` order of `GET /customers`); `LastEvaluatedKey` is `{"cursor": "<opaque>"}`, absent on the last page |
//! | `echo` | anything | the payload |
//! | `ping` | — | `"pong"` |
//!
//! Values in `ExpressionAttributeValues` are plain JSON as the legacy API's boto3 `Table` resource sent them
//! (not DynamoDB's `{"S": …}` form); `null` clears an optional field, as in a merge patch. As in
//! DynamoDB, `SET address = :a` replaces the whole address (a string is its one line, an object its
//! parts, `line1` required): parts not given are cleared, never kept from the old address. An unknown
//! or missing operation, an unknown member, an update expression other than `SET` assignments of
//! placeholders, or one that sets anything but the fields above (`id`, `version`, `createdAt`, an
//! unknown name) is a 400 that says what is supported; a value that is not valid for its field is a
//! 422, as on the REST routes.
//!
//! The same [`invoke`] serves `POST /DynamoDBManager` and, through [`invoke_direct`], a direct
//! Lambda invocation (`crm-lambda`'s envelope function), where a failure is a Lambda function
//! error whose `errorType` is the [code](crate::ApiError::code) and whose `errorMessage` is the
//! problem's [summary](crate::Problem::summary).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use crm_domain::{
    Cursor, Customer, CustomerId, FieldError, Idempotency, Keyed, Listing, PageLimit,
    RepositoryError, SortOrder,
};
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

use crate::compat;
use crate::customers::mark_replayed;
use crate::error::ApiError;
use crate::extract::{AnyJson, KeyHeader};
use crate::middleware::{BODY_LIMIT, PlatformContext};
use crate::state::AppState;

const ENVELOPE_MEMBERS: &[&str] = &["operation", "tableName", "payload"];

const UPDATE_HELP: &str = "UpdateExpression must be `SET <field> = :<value>, …` over firstName, lastName, email, phone and address, where a field may be a #name from ExpressionAttributeNames; REMOVE, ADD, DELETE, functions and arithmetic are not supported";

/// The fields an update may `SET`: the customer fields a client changes (`Address` is the legacy
/// systems' spelling of `address`).
const SETTABLE_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "email",
    "phone",
    "address",
    "Address",
];

/// The parts of an address besides `line1`, which `SET address = :a` clears when `:a` leaves them
/// out.
const OTHER_ADDRESS_PARTS: &[&str] = &["line2", "city", "region", "postalCode", "country"];

/// The operations of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Create,
    Read,
    Update,
    Delete,
    List,
    Echo,
    Ping,
}

impl Operation {
    const ALL: [(&'static str, Self); 7] = [
        ("create", Self::Create),
        ("read", Self::Read),
        ("update", Self::Update),
        ("delete", Self::Delete),
        ("list", Self::List),
        ("echo", Self::Echo),
        ("ping", Self::Ping),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("unknown", |(n, _)| n)
    }
}

/// `POST /DynamoDBManager` → 200 with the operation's result. Its writes honour `Idempotency-Key`.
pub(crate) async fn route(
    State(state): State<AppState>,
    key: KeyHeader,
    AnyJson(body): AnyJson,
) -> Result<Response, ApiError> {
    let key = key.with_body(Some(&body));
    let (result, replayed) = run(&state, body, key.as_ref()).await?;
    let response = Json(result).into_response();
    Ok(if replayed {
        mark_replayed(response)
    } else {
        response
    })
}

/// Runs one envelope and returns its result.
///
/// # Errors
/// 400 for an envelope that is not as documented (the text says what is supported), 403 for another
/// table, and the errors of the service call: 404, 409, 422, 503, 500.
pub async fn invoke(state: &AppState, envelope: Value) -> Result<Value, ApiError> {
    run(state, envelope, None).await.map(|(result, _)| result)
}

/// Runs one envelope, its write under `key` when given: the result, and whether it was answered
/// from the record of an earlier request with the key.
async fn run(
    state: &AppState,
    envelope: Value,
    key: Option<&Idempotency>,
) -> Result<(Value, bool), ApiError> {
    let (operation, payload) = read_envelope(state, envelope)?;
    let service = state.service();
    match operation {
        Operation::Ping => Ok((json!("pong"), false)),
        Operation::Echo => Ok((payload.unwrap_or(Value::Null), false)),
        Operation::Create => {
            let payload = members(payload, operation, &["Item"], &["Item"])?;
            let input = compat::new_customer(member(&payload, operation, "Item")?)?;
            let created = service.create_idempotent(input, key).await?;
            written("Item", created)
        }
        Operation::Read => {
            let payload = members(payload, operation, &["Key"], &["Key"])?;
            let Some(id) = key_of(member(&payload, operation, "Key")?)? else {
                return Ok((json!({}), false));
            };
            match service.get(&id).await {
                Ok(customer) => Ok((json!({ "Item": item(&customer)? }), false)),
                Err(RepositoryError::NotFound) => Ok((json!({}), false)),
                Err(e) => Err(e.into()),
            }
        }
        Operation::Update => {
            let payload = members(
                payload,
                operation,
                &[
                    "Key",
                    "UpdateExpression",
                    "ExpressionAttributeValues",
                    "ExpressionAttributeNames",
                    "ReturnValues",
                ],
                &["Key", "UpdateExpression", "ExpressionAttributeValues"],
            )?;
            let id = key_of(member(&payload, operation, "Key")?)?.ok_or(ApiError::MalformedId)?;
            let patch = update_patch(update_document(&payload)?)?;
            let updated = service.update_idempotent(&id, &patch, None, key).await?;
            written("Attributes", updated)
        }
        Operation::Delete => {
            let payload = members(payload, operation, &["Key"], &["Key"])?;
            let id = key_of(member(&payload, operation, "Key")?)?.ok_or(ApiError::MalformedId)?;
            let deleted = service.delete_idempotent(&id, None, key).await?;
            Ok((json!({}), matches!(deleted, Keyed::Replayed(_))))
        }
        Operation::List => {
            let payload = members(
                payload.or_else(|| Some(json!({}))),
                operation,
                &["Limit", "ExclusiveStartKey"],
                &[],
            )?;
            let (limit, cursor) = list_arguments(&payload)?;
            let page = service
                .list(&Listing::All(SortOrder::CreatedAt), limit, cursor.as_ref())
                .await?;
            let items = page.items.iter().map(item).collect::<Result<Vec<_>, _>>()?;
            let mut result = json!({
                "Items": items,
                "Count": page.items.len(),
                "ScannedCount": page.items.len(),
            });
            if let (Some(next), Value::Object(result)) = (page.next_cursor, &mut result) {
                result.insert(
                    "LastEvaluatedKey".to_owned(),
                    json!({ "cursor": next.as_str() }),
                );
            }
            Ok((result, false))
        }
    }
}

/// The result of a create (`{"Item"}`) or an update (`{"Attributes"}`): the customer as a
/// plain JSON item; for a replay of an earlier request with the same key, only its id and version
/// (see [`replayed`](crate::customers::replayed)).
fn written(member: &str, written: Keyed<Customer>) -> Result<(Value, bool), ApiError> {
    let (customer, replayed) = match written {
        Keyed::Done(customer) => (item(&customer)?, false),
        Keyed::Replayed(outcome) => (
            json!({ "id": outcome.id, "version": outcome.version }),
            true,
        ),
    };
    Ok((json!({ member: customer }), replayed))
}

/// Runs one envelope that did not come over HTTP (a direct Lambda invocation, which `platform`
/// describes: its request id and deadline), given as the JSON text of the event, as the HTTP route
/// would: at most [`BODY_LIMIT`] bytes, within the request deadline (or the platform's, when it
/// comes sooner). Writes its one log line: `"invocation"` with the request id, operation, status
/// and latency (the deploy's server-error alarm counts these lines); a client error is a status
/// there and nothing more.
///
/// # Errors
/// As [`invoke`]; a 413 for an event over the limit, a 400 for one that is not JSON, and a 503
/// when the deadline passes.
pub async fn invoke_direct(
    state: &AppState,
    platform: &PlatformContext,
    event: &str,
) -> Result<Value, ApiError> {
    let started = Instant::now();
    let payload = if event.len() > BODY_LIMIT {
        Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT })
    } else {
        crate::distinct::from_str(event).map_err(ApiError::MalformedJson)
    };
    let operation = payload
        .as_ref()
        .ok()
        .and_then(|payload| payload.get("operation"))
        .and_then(Value::as_str)
        .and_then(Operation::parse)
        .map_or("unknown", Operation::name);
    let request_id = platform
        .request_id()
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let span = tracing::info_span!("invocation", request_id = %request_id);
    // With spans exported (the feature `otel` and an endpoint), the invocation is a server span in
    // the platform's trace.
    #[cfg(feature = "otel")]
    let exported = crate::otel::enabled().then(|| {
        crate::otel::adopt(&span, platform.remote_parent());
        span.clone()
    });
    let deadline = platform.time_limit(state.request_deadline());
    let result = async {
        let result = match payload {
            Ok(payload) => tokio::time::timeout(deadline, invoke(state, payload))
                .await
                .unwrap_or(Err(ApiError::DeadlineExceeded(deadline))),
            Err(refused) => Err(refused),
        };
        if let Err(error) = &result {
            error.log();
        }
        result
    }
    .instrument(span.clone())
    .await;
    let status = result
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 200);
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    #[cfg(feature = "otel")]
    if let Some(span) = exported {
        crate::otel::invoked(&span, operation, status);
    }
    span.in_scope(|| {
        tracing::info!(
            request_id = %request_id,
            operation,
            status,
            latency_ms,
            "invocation"
        );
    });
    result
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

/// Checks the envelope's members, operation and table; returns the operation and payload.
fn read_envelope(
    state: &AppState,
    envelope: Value,
) -> Result<(Operation, Option<Value>), ApiError> {
    let supported = Operation::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    let Value::Object(mut envelope) = envelope else {
        return Err(bad(
            "the body must be a JSON object {\"operation\", \"tableName\", \"payload\"}",
        ));
    };
    if let Some(unknown) = envelope
        .keys()
        .find(|k| !ENVELOPE_MEMBERS.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown member `{unknown}`; the envelope has operation, tableName and payload"
        )));
    }
    let operation = match envelope.get("operation") {
        None => return Err(bad(format!("operation is required: one of {supported}"))),
        Some(Value::String(name)) => Operation::parse(name)
            .ok_or_else(|| bad(format!("unknown operation; supported: {supported}")))?,
        Some(_) => {
            return Err(bad(format!(
                "operation must be a string: one of {supported}"
            )));
        }
    };
    match envelope.get("tableName") {
        None | Some(Value::Null) => {}
        Some(Value::String(table)) if table == state.table_label() => {}
        Some(Value::String(_)) => return Err(ApiError::ForbiddenTable),
        Some(_) => return Err(bad("tableName must be a string")),
    }
    // `"payload": null` is the same as no payload.
    Ok((
        operation,
        envelope.remove("payload").filter(|p| !p.is_null()),
    ))
}

/// The payload as an object holding only `allowed` members and every `required` one.
fn members(
    payload: Option<Value>,
    operation: Operation,
    allowed: &[&str],
    required: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let name = operation.name();
    let expected = allowed.join(", ");
    let Some(Value::Object(payload)) = payload else {
        return Err(bad(format!(
            "the payload of `{name}` must be a JSON object with {expected}"
        )));
    };
    if let Some(unknown) = payload.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "`{name}` does not support `{unknown}`; its payload takes {expected}"
        )));
    }
    if let Some(missing) = required.iter().find(|r| !payload.contains_key(**r)) {
        return Err(bad(format!("the payload of `{name}` needs `{missing}`")));
    }
    Ok(payload)
}

/// The member `name` of a payload that [`members`] checked; still a 400 rather than a panic if it is
/// missing, so that no request can panic here whatever the checks before it become.
fn member<'p>(
    payload: &'p Map<String, Value>,
    operation: Operation,
    name: &str,
) -> Result<&'p Value, ApiError> {
    payload.get(name).ok_or_else(|| {
        bad(format!(
            "the payload of `{}` needs `{name}`",
            operation.name()
        ))
    })
}

/// The customer id of a `Key` (`{"id": "<id>"}`); `None` when the id is not well-formed, since such an
/// id names no customer.
fn key_of(key: &Value) -> Result<Option<CustomerId>, ApiError> {
    match key.as_object() {
        Some(object) if object.len() == 1 => match object.get("id") {
            Some(Value::String(id)) => Ok(CustomerId::parse(id).ok()),
            _ => Err(bad("Key must be {\"id\": \"<customer id>\"}")),
        },
        _ => Err(bad("Key must be {\"id\": \"<customer id>\"}")),
    }
}

fn item(customer: &Customer) -> Result<Value, ApiError> {
    serde_json::to_value(customer).map_err(ApiError::Serialization)
}

fn list_arguments(payload: &Map<String, Value>) -> Result<(PageLimit, Option<Cursor>), ApiError> {
    let limit = match payload.get("Limit") {
        None | Some(Value::Null) => PageLimit::default(),
        Some(value) => {
            let n = value
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("Limit must be an integer of at least 1"))?;
            PageLimit::new(n.min(PageLimit::MAX.get() as u64)).unwrap_or(PageLimit::MAX)
        }
    };
    let cursor = match payload.get("ExclusiveStartKey") {
        None | Some(Value::Null) => None,
        Some(Value::Object(key)) if key.len() == 1 => match key.get("cursor") {
            Some(Value::String(c)) => {
                Some(Cursor::parse(c).map_err(|_| ApiError::MalformedCursor)?)
            }
            _ => {
                return Err(bad(
                    "ExclusiveStartKey must be the LastEvaluatedKey of the previous page",
                ));
            }
        },
        Some(_) => {
            return Err(bad(
                "ExclusiveStartKey must be the LastEvaluatedKey of the previous page",
            ));
        }
    };
    Ok((limit, cursor))
}

/// One `target = :value` of a `SET` clause.
struct Assignment<'e> {
    target: &'e str,
    value: &'e str,
}

/// Parses `SET a = :x, #b = :y` (the keyword in any case, any spacing).
fn parse_set(expression: &str) -> Result<Vec<Assignment<'_>>, ApiError> {
    let expression = expression.trim();
    let rest = expression
        .get(..3)
        .filter(|kw| kw.eq_ignore_ascii_case("SET"))
        .and_then(|_| expression.get(3..))
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .ok_or_else(|| bad(UPDATE_HELP))?;
    let is_word = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    rest.split(',')
        .map(|assignment| {
            let (target, value) = assignment.split_once('=').ok_or_else(|| bad(UPDATE_HELP))?;
            let (target, value) = (target.trim(), value.trim());
            let target_ok = is_word(target.strip_prefix('#').unwrap_or(target));
            let value_ok = value.strip_prefix(':').is_some_and(|v| {
                !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if target_ok && value_ok {
                Ok(Assignment { target, value })
            } else {
                Err(bad(UPDATE_HELP))
            }
        })
        .collect()
}

/// The merge patch an update payload describes: `{field: value, …}`. Every name and value
/// placeholder must be defined and used, as DynamoDB itself requires, and no field set twice.
fn update_document(payload: &Map<String, Value>) -> Result<Value, ApiError> {
    let expression = payload
        .get("UpdateExpression")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("UpdateExpression must be a string"))?;
    let values = payload
        .get("ExpressionAttributeValues")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("ExpressionAttributeValues must be an object of :placeholders"))?;
    let names: BTreeMap<&str, &str> = match payload.get("ExpressionAttributeNames") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(names)) => names
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.as_str(), v))
                    .ok_or_else(|| bad("ExpressionAttributeNames must map #names to field names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("ExpressionAttributeNames must be an object of #names")),
    };
    let mut document = Map::new();
    let (mut names_used, mut values_used) = (BTreeSet::new(), BTreeSet::new());
    let mut unsettable = Vec::new();
    for Assignment { target, value } in parse_set(expression)? {
        let field = if target.starts_with('#') {
            names_used.insert(target);
            *names.get(target).ok_or_else(|| {
                bad(format!(
                    "{target} is not defined in ExpressionAttributeNames"
                ))
            })?
        } else {
            target
        };
        if !SETTABLE_FIELDS.contains(&field) {
            unsettable.push(format!("`{field}`"));
        }
        let value_json = values.get(value).ok_or_else(|| {
            bad(format!(
                "{value} is not defined in ExpressionAttributeValues"
            ))
        })?;
        values_used.insert(value);
        if document
            .insert(field.to_owned(), value_json.clone())
            .is_some()
        {
            return Err(bad(format!("`{field}` is set more than once")));
        }
    }
    if !unsettable.is_empty() {
        return Err(bad(format!(
            "UpdateExpression can SET firstName, lastName, email, phone and address only, not {}",
            unsettable.join(", ")
        )));
    }
    if let Some(unused) = names.keys().find(|n| !names_used.contains(*n)) {
        return Err(bad(format!(
            "{unused} in ExpressionAttributeNames is not used"
        )));
    }
    if let Some(unused) = values.keys().find(|v| !values_used.contains(v.as_str())) {
        return Err(bad(format!(
            "{unused} in ExpressionAttributeValues is not used"
        )));
    }
    Ok(Value::Object(document))
}

/// The patch an update document makes. `SET address = :a` replaces the whole address, as `SET` of
/// a map does in DynamoDB: the parts `:a` leaves out are cleared, and it must give `line1` (a string
/// `:a` is one line, which [`compat::patch`] already turns into a whole address).
fn update_patch(mut document: Value) -> Result<crm_domain::CustomerPatch, ApiError> {
    let mut missing_line1 = None;
    if let Value::Object(fields) = &mut document {
        for key in ["address", "Address"] {
            if let Some(Value::Object(address)) = fields.get_mut(key) {
                for part in OTHER_ADDRESS_PARTS {
                    address.entry(*part).or_insert(Value::Null);
                }
                if !address.contains_key("line1") {
                    missing_line1 = Some(FieldError::new(
                        format!("{key}.line1"),
                        "is required: SET replaces the whole address",
                    ));
                }
            }
        }
    }
    match (compat::patch(document), missing_line1) {
        (Ok(patch), None) => Ok(patch),
        (Ok(_), Some(error)) => Err(ApiError::Validation(vec![error])),
        (Err(ApiError::Validation(mut errors)), Some(error)) => {
            errors.push(error);
            Err(ApiError::Validation(errors))
        }
        (Err(error), _) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(payload: &Value) -> Result<Value, ApiError> {
        update_document(payload.as_object().unwrap())
    }

    #[test]
    fn set_clauses_become_a_merge_patch() {
        let patch = document(&json!({
            "UpdateExpression": "set firstName = :f,#l=:l ,  email = :e",
            "ExpressionAttributeValues": {":f": "Ada", ":l": "King", ":e": null},
            "ExpressionAttributeNames": {"#l": "lastName"}
        }))
        .unwrap();
        assert_eq!(
            patch,
            json!({"firstName": "Ada", "lastName": "King", "email": null})
        );
    }

    #[test]
    fn anything_but_set_assignments_of_placeholders_is_refused() {
        for expression in [
            "REMOVE email",
            "SET",
            "SETfirstName = :f",
            "SET firstName = :f REMOVE email",
            "SET firstName = if_not_exists(firstName, :f)",
            "SET n = n + :f",
            "SET a.b = :f",
            "SET firstName = 'Ada'",
            "SET firstName = :",
        ] {
            let result = document(&json!({
                "UpdateExpression": expression,
                "ExpressionAttributeValues": {":f": "Ada"}
            }));
            assert!(
                matches!(&result, Err(ApiError::BadRequest(m)) if m.starts_with("UpdateExpression must be")),
                "{expression}"
            );
        }
    }

    #[test]
    fn only_customer_fields_can_be_set_and_the_400_names_them() {
        for (expression, names, named) in [
            ("SET id = :v", json!({}), "`id`"),
            ("SET number = :v", json!({}), "`number`"),
            ("SET version = :v", json!({}), "`version`"),
            ("SET #c = :v", json!({"#c": "createdAt"}), "`createdAt`"),
            (
                "SET #a = :v",
                json!({"#a": "address.city"}),
                "`address.city`",
            ),
        ] {
            let result = document(&json!({
                "UpdateExpression": expression,
                "ExpressionAttributeValues": {":v": "x"},
                "ExpressionAttributeNames": names,
            }));
            let Err(ApiError::BadRequest(message)) = &result else {
                panic!("{expression}: {result:?}");
            };
            assert!(
                message.contains("firstName, lastName, email, phone and address")
                    && message.contains(named),
                "{message}"
            );
        }
        let both = document(&json!({
            "UpdateExpression": "SET id = :i, firstName = :f, number = :n",
            "ExpressionAttributeValues": {":i": "2", ":f": "A", ":n": 5}
        }));
        assert!(
            matches!(&both, Err(ApiError::BadRequest(m)) if m.ends_with("not `id`, `number`")),
            "{both:?}"
        );
    }

    #[test]
    fn setting_an_address_object_clears_the_parts_it_leaves_out() {
        let patch =
            update_patch(json!({"address": {"line1": "2 Site Ave", "city": "Leeds"}})).unwrap();
        let address = match patch.address {
            crm_domain::Patch::Set(address) => address,
            other => panic!("{other:?}"),
        };
        assert_eq!(address.line1.unwrap().as_str(), "2 Site Ave");
        assert_eq!(
            address.city,
            crm_domain::Patch::Set("Leeds".parse().unwrap())
        );
        assert_eq!(address.country, crm_domain::Patch::Clear);
        assert_eq!(address.postal_code, crm_domain::Patch::Clear);
    }

    #[test]
    fn setting_an_address_object_without_line1_is_a_422_on_line1() {
        let Err(ApiError::Validation(errors)) =
            update_patch(json!({"Address": {"city": "Leeds", "country": "XX"}}))
        else {
            panic!("accepted");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["Address.country", "Address.line1"]);
    }

    #[test]
    fn placeholders_must_be_defined_used_and_distinct() {
        let cases = [
            json!({"UpdateExpression": "SET firstName = :x", "ExpressionAttributeValues": {}}),
            json!({"UpdateExpression": "SET #n = :f", "ExpressionAttributeValues": {":f": "A"}}),
            json!({"UpdateExpression": "SET firstName = :f", "ExpressionAttributeValues": {":f": "A", ":g": "B"}}),
            json!({"UpdateExpression": "SET firstName = :f", "ExpressionAttributeValues": {":f": "A"},
                   "ExpressionAttributeNames": {"#n": "lastName"}}),
            json!({"UpdateExpression": "SET firstName = :f, #n = :f", "ExpressionAttributeValues": {":f": "A"},
                   "ExpressionAttributeNames": {"#n": "firstName"}}),
        ];
        for case in cases {
            assert!(
                matches!(document(&case), Err(ApiError::BadRequest(_))),
                "{case}"
            );
        }
    }
}
