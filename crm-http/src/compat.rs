//! `/Customers`: the `SimpleCRMAPI` routes, kept for its clients, minus its bugs.
//!
//! Its clients send `{id, firstName, lastName, address}` with the id in the body (also on `PATCH`
//! and `DELETE`), spell the address `address` or `Address`, and give it as one string. Here those
//! spellings are turned into the domain's inputs, which then validate them as usual: a string address
//! becomes an address whose `line1` is that string, so it comes back exactly as given
//! ([`one_line`]). Unlike the `SimpleCRMAPI` itself, a duplicate id is
//! 409, an unknown id 404, and errors are problem documents. The same readers serve the `Item`s of
//! the `DynamoDBManager` envelope.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use crm_domain::{
    Address, AddressText, Customer, CustomerId, CustomerPatch, FieldError, Keyed, Listing,
    NewCustomer, PageLimit, SortOrder, ValidationErrors,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::customers::mark_replayed;
use crate::error::ApiError;
use crate::extract::{AnyJson, KeyHeader};
use crate::state::AppState;

/// One customer as `GET /Customers` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LegacyCustomer {
    id: String,
    first_name: String,
    last_name: String,
    /// The address on one line; absent when the customer has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

impl From<&Customer> for LegacyCustomer {
    fn from(customer: &Customer) -> Self {
        Self {
            id: customer.id().to_string(),
            first_name: customer.first_name().to_string(),
            last_name: customer.last_name().to_string(),
            address: customer.address().map(one_line),
        }
    }
}

/// The address on one line, parts joined by `", "`. An address given on one line (which these
/// routes store as its `line1`) comes back exactly as given.
fn one_line(address: &Address) -> String {
    let mut parts: Vec<&str> = vec![address.line1.as_str()];
    parts.extend(
        [
            &address.line2,
            &address.city,
            &address.region,
            &address.postal_code,
        ]
        .into_iter()
        .flatten()
        .map(AddressText::as_str),
    );
    if let Some(country) = &address.country {
        parts.push(country.as_str());
    }
    parts.join(", ")
}

/// The most bytes the body of `GET /Customers` may take inside a Lambda response, whose payload is
/// at most 6 MB (6,291,556 bytes) with the body in it as an escaped JSON string: 5 MiB, which
/// leaves room for the status, the headers and base64 or escaping slack.
pub(crate) const COMPAT_LIST_BUDGET: usize = 5 * 1024 * 1024;

/// `GET /Customers` → 200 with every customer, oldest first (the `createdAt` order of
/// `GET /customers`), walking the pages up to the configured cap; past
/// the cap, or past [`COMPAT_LIST_BUDGET`] as the body would be carried in a Lambda response, the
/// clear problem that points to `/customers` (never a truncated list, never the platform's 5xx).
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<LegacyCustomer>>, ApiError> {
    let cap = state.compat_list_cap();
    let mut customers = Vec::new();
    let mut cursor = None;
    // `[`, `]`, and the commas: the array around the customers, escaped as a Lambda body is.
    let mut carried = 2;
    loop {
        // Ask for one more than the cap allows, so that "exactly cap" and "over cap" differ.
        let wanted = (cap + 1 - customers.len()).min(PageLimit::MAX.get());
        let limit = PageLimit::new(u64::try_from(wanted).unwrap_or(1)).unwrap_or(PageLimit::MAX);
        let page = state
            .service()
            .list(&Listing::All(SortOrder::CreatedAt), limit, cursor.as_ref())
            .await?;
        for customer in &page.items {
            let legacy = LegacyCustomer::from(customer);
            carried += carried_length(&legacy)? + 1;
            customers.push(legacy);
        }
        if customers.len() > cap {
            return Err(ApiError::CompatListTooLong { cap });
        }
        if carried > COMPAT_LIST_BUDGET {
            return Err(ApiError::CompatListTooLarge {
                budget: COMPAT_LIST_BUDGET,
            });
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(Json(customers)),
        }
    }
}

/// How many bytes `customer` takes in the body of a Lambda response: its JSON, escaped once more as
/// the string the body is there, so every `"` and `\\` counts twice. (Validation refuses control
/// characters, the only others JSON escapes.) Counted as it is written, without a copy.
fn carried_length(customer: &LegacyCustomer) -> Result<usize, ApiError> {
    /// Counts the bytes written, and once more each byte that escaping doubles.
    struct Carried(usize);

    impl std::io::Write for Carried {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let doubled = bytes.iter().filter(|b| matches!(b, b'"' | b'\\')).count();
            self.0 += bytes.len() + doubled;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let mut carried = Carried(0);
    serde_json::to_writer(&mut carried, customer).map_err(ApiError::Serialization)?;
    Ok(carried.0)
}

/// `POST /Customers` → 200 with the customer created. The id is taken from the body, or generated.
pub(crate) async fn create(
    State(state): State<AppState>,
    key: KeyHeader,
    AnyJson(body): AnyJson,
) -> Result<Response, ApiError> {
    let input = new_customer(&body)?;
    let key = key.with_body(Some(&body));
    let created = state
        .service()
        .create_idempotent(input, key.as_ref())
        .await?;
    Ok(legacy(created))
}

/// `PATCH /Customers` → 200 with the customer; only the fields given change.
pub(crate) async fn update(
    State(state): State<AppState>,
    key: KeyHeader,
    AnyJson(body): AnyJson,
) -> Result<Response, ApiError> {
    let key = key.with_body(Some(&body));
    let (id, rest) = take_id(body)?;
    let patch = patch(Value::Object(rest))?;
    let updated = state
        .service()
        .update_idempotent(&id, &patch, None, key.as_ref())
        .await?;
    Ok(legacy(updated))
}

/// The legacy answer of a create or an update: the customer in the seed's shape; for a replay
/// (see [`replayed`](crate::customers::replayed)), marked as one, only its id.
fn legacy(written: Keyed<Customer>) -> Response {
    match written {
        Keyed::Done(customer) => Json(LegacyCustomer::from(&customer)).into_response(),
        Keyed::Replayed(outcome) => {
            mark_replayed(Json(json!({ "id": outcome.id })).into_response())
        }
    }
}

/// `DELETE /Customers` → 200 with `{"id"}` of the customer deleted. Members other than `id` are
/// ignored: the `SimpleCRMAPI` read only the id, and clients often send the whole customer.
pub(crate) async fn delete(
    State(state): State<AppState>,
    key: KeyHeader,
    AnyJson(body): AnyJson,
) -> Result<Response, ApiError> {
    let key = key.with_body(Some(&body));
    let (id, _) = take_id(body)?;
    let deleted = state
        .service()
        .delete_idempotent(&id, None, key.as_ref())
        .await?;
    let response = Json(json!({ "id": id })).into_response();
    Ok(match deleted {
        Keyed::Done(()) => response,
        Keyed::Replayed(_) => mark_replayed(response),
    })
}

/// Splits `{"id": …, rest…}` into the id and the rest.
fn take_id(body: Value) -> Result<(CustomerId, Map<String, Value>), ApiError> {
    let Value::Object(mut object) = body else {
        return Err(ValidationErrors::single("$", "must be a JSON object").into());
    };
    let id = match object.remove("id") {
        Some(Value::String(id)) => {
            CustomerId::parse(&id).map_err(|e| ValidationErrors::single("id", e.message()))?
        }
        Some(_) => return Err(ValidationErrors::single("id", "must be a string").into()),
        None => return Err(ValidationErrors::single("id", "is required").into()),
    };
    Ok((id, object))
}

/// How the client gave the address, so that errors name the field as the client spelled it.
struct AddressForm {
    key: &'static str,
    was_string: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Patch,
}

/// Reads a new customer in the legacy spellings.
///
/// # Errors
/// 422 with every failing field.
pub(crate) fn new_customer(value: &Value) -> Result<NewCustomer, ApiError> {
    let (normalized, form) = normalize(value.clone(), Mode::Create)?;
    NewCustomer::from_json(&normalized).map_err(|e| ApiError::Validation(respell(e, form.as_ref())))
}

/// Reads a patch in the legacy spellings. A string address replaces the whole address.
///
/// # Errors
/// 422 with every failing field.
pub(crate) fn patch(value: Value) -> Result<CustomerPatch, ApiError> {
    let (normalized, form) = normalize(value, Mode::Patch)?;
    CustomerPatch::from_json(&normalized)
        .map_err(|e| ApiError::Validation(respell(e, form.as_ref())))
}

fn normalize(value: Value, mode: Mode) -> Result<(Value, Option<AddressForm>), ApiError> {
    let Value::Object(mut object) = value else {
        // Not an object: let the domain reader say so in its own words.
        return Ok((value, None));
    };
    let key = match (
        object.contains_key("address"),
        object.contains_key("Address"),
    ) {
        (true, true) => {
            return Err(ValidationErrors::single(
                "Address",
                "give the address as `address` or as `Address`, not both",
            )
            .into());
        }
        (false, true) => "Address",
        (true, false) => "address",
        (false, false) => return Ok((Value::Object(object), None)),
    };
    let address = object.remove(key).unwrap_or(Value::Null);
    let was_string = address.is_string();
    let address = match (address, mode) {
        (Value::String(line), Mode::Create) => json!({ "line1": line }),
        // A one-line address replaces the whole address: every other part is cleared.
        (Value::String(line), Mode::Patch) => json!({
            "line1": line, "line2": null, "city": null, "region": null, "postalCode": null,
            "country": null
        }),
        (other, _) => other,
    };
    object.insert("address".to_owned(), address);
    Ok((Value::Object(object), Some(AddressForm { key, was_string })))
}

/// Names address errors as the client spelled the address.
fn respell(errors: ValidationErrors, form: Option<&AddressForm>) -> Vec<FieldError> {
    let mut errors = errors.into_errors();
    if let Some(form) = form {
        for error in &mut errors {
            if form.was_string && error.field == "address.line1" {
                form.key.clone_into(&mut error.field);
            } else if let Some(rest) = error.field.strip_prefix("address") {
                error.field = format!("{}{rest}", form.key);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_address_comes_back_as_given() {
        let text = "1 Main St, Springfield";
        let address = Address::new(AddressText::parse(text).unwrap());
        assert_eq!(one_line(&address), text);
    }

    #[test]
    fn the_parts_of_an_address_are_joined_in_order() {
        let mut address = Address::new(AddressText::parse("1 Main St").unwrap());
        address.city = Some(AddressText::parse("Springfield").unwrap());
        address.country = Some(crm_domain::CountryCode::parse("US").unwrap());
        assert_eq!(one_line(&address), "1 Main St, Springfield, US");
    }
}
