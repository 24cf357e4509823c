//! Reading [`NewCustomer`] and [`CustomerPatch`] from JSON.
//!
//! Serde's derive stops at the first bad field; a client fixing a form wants them all. So inputs are
//! read from a [`serde_json::Value`] field by field, every field through its type's constructor, and
//! every failure is collected with its JSON path. Unknown fields are named, with a suggestion when the
//! client probably mistyped a known one (`Address` → `address`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::customer::{AddressPatch, CustomerPatch, NewCustomer, Patch};
use crate::fields::{
    Address, AddressText, CountryCode, CustomerId, Email, InvalidValue, PersonName, Phone,
};
use crate::validation::{Collector, FieldError, ValidationErrors};

const CUSTOMER_FIELDS: &[&str] = &["id", "firstName", "lastName", "email", "phone", "address"];
const PATCH_FIELDS: &[&str] = &["firstName", "lastName", "email", "phone", "address"];
const SERVER_FIELDS: &[&str] = &["createdAt", "updatedAt", "version"];
const ADDRESS_FIELDS: &[&str] = &["line1", "line2", "city", "region", "postalCode", "country"];

/// A member of a JSON object as merge patch sees it: absent, `null`, or a value.
enum Member<'a> {
    Absent,
    Null,
    Value(&'a Value),
}

fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Member<'a> {
    match object.get(key) {
        None => Member::Absent,
        Some(Value::Null) => Member::Null,
        Some(value) => Member::Value(value),
    }
}

fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn as_object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FieldError> {
    value
        .as_object()
        .ok_or_else(|| FieldError::new(field, "must be a JSON object"))
}

/// Reads a string member through `parse`.
fn parse_string<T>(
    value: &Value,
    field: &str,
    parse: fn(&str) -> Result<T, InvalidValue>,
) -> Result<T, FieldError> {
    let text = value
        .as_str()
        .ok_or_else(|| FieldError::new(field, "must be a string"))?;
    parse(text).map_err(|e| e.at(field))
}

/// How many members of one object that are not fields [`reject_unknown`] names one by one.
///
/// Past it, the next one is named with a count of the rest. Every error a known field can have
/// is still reported, but the members a client may add have no bound but the body's size, and an
/// error costs more bytes than the member it names: a batch of a hundred customers, each with a
/// thousand members of a few bytes, would otherwise be answered with fourteen times its size,
/// past what a Lambda function may answer.
pub(crate) const UNKNOWN_NAMED: usize = 10;

/// Names the members of `object` that are not in `known`: the first [`UNKNOWN_NAMED`] one by
/// one, and when more remain, the next with a count of the others.
fn reject_unknown(
    object: &Map<String, Value>,
    known: &[&str],
    read_only: &[&str],
    parent: &str,
    errors: &mut Collector,
) {
    let message = |key: &str| {
        if read_only.contains(&key) {
            format!("`{key}` is set by the server and cannot be given")
        } else {
            match suggestion(key, known) {
                Some(known) => format!("unknown field `{key}`; did you mean `{known}`?"),
                None => format!(
                    "unknown field `{key}`; expected one of {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let mut unknown = object.keys().filter(|k| !known.contains(&k.as_str()));
    for key in unknown.by_ref().take(UNKNOWN_NAMED) {
        errors.push(FieldError::new(path(parent, key), message(key)));
    }
    if let Some(key) = unknown.next() {
        let message = match unknown.count() {
            0 => message(key),
            1 => format!("unknown field `{key}`, and 1 more not named"),
            more => format!("unknown field `{key}`, and {more} more not named"),
        };
        errors.push(FieldError::new(path(parent, key), message));
    }
}

/// The known field `unknown` was most likely meant to be: the same letters in another case, or a
/// spelling at most two edits away.
fn suggestion<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(unknown)) {
        return Some(same);
    }
    let lower = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance; the inputs are field names, so short.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn required<T>(
    object: &Map<String, Value>,
    key: &str,
    parse: fn(&str) -> Result<T, InvalidValue>,
    errors: &mut Collector,
) -> Option<T> {
    match member(object, key) {
        Member::Absent | Member::Null => {
            errors.push(FieldError::new(key, "is required"));
            None
        }
        Member::Value(v) => errors.take(parse_string(v, key, parse)),
    }
}

fn optional<T>(
    object: &Map<String, Value>,
    parent: &str,
    key: &str,
    parse: fn(&str) -> Result<T, InvalidValue>,
    errors: &mut Collector,
) -> Option<T> {
    match member(object, key) {
        Member::Absent | Member::Null => None,
        Member::Value(v) => errors.take(parse_string(v, &path(parent, key), parse)),
    }
}

fn patch<T>(
    object: &Map<String, Value>,
    parent: &str,
    key: &str,
    parse: fn(&str) -> Result<T, InvalidValue>,
    errors: &mut Collector,
) -> Patch<T> {
    match member(object, key) {
        Member::Absent => Patch::Keep,
        Member::Null => Patch::Clear,
        Member::Value(v) => errors
            .take(parse_string(v, &path(parent, key), parse))
            .map_or(Patch::Keep, Patch::Set),
    }
}

fn replace_only<T>(
    object: &Map<String, Value>,
    parent: &str,
    key: &str,
    parse: fn(&str) -> Result<T, InvalidValue>,
    cleared: &str,
    errors: &mut Collector,
) -> Option<T> {
    match member(object, key) {
        Member::Absent => None,
        Member::Null => {
            errors.push(FieldError::new(path(parent, key), cleared));
            None
        }
        Member::Value(v) => errors.take(parse_string(v, &path(parent, key), parse)),
    }
}

fn address(value: &Value, errors: &mut Collector) -> Option<Address> {
    let object = errors.take(as_object(value, "address"))?;
    reject_unknown(object, ADDRESS_FIELDS, &[], "address", errors);
    let line1 = match member(object, "line1") {
        Member::Absent | Member::Null => {
            errors.push(FieldError::new("address.line1", "is required"));
            None
        }
        Member::Value(v) => errors.take(parse_string(v, "address.line1", AddressText::parse)),
    };
    let line2 = optional(object, "address", "line2", AddressText::parse, errors);
    let city = optional(object, "address", "city", AddressText::parse, errors);
    let region = optional(object, "address", "region", AddressText::parse, errors);
    let postal_code = optional(object, "address", "postalCode", AddressText::parse, errors);
    let country = optional(object, "address", "country", CountryCode::parse, errors);
    Some(Address {
        line1: line1?,
        line2,
        city,
        region,
        postal_code,
        country,
    })
}

fn address_patch(value: &Value, errors: &mut Collector) -> Option<AddressPatch> {
    let object = errors.take(as_object(value, "address"))?;
    reject_unknown(object, ADDRESS_FIELDS, &[], "address", errors);
    Some(AddressPatch {
        line1: replace_only(
            object,
            "address",
            "line1",
            AddressText::parse,
            "is required and cannot be cleared; send \"address\": null to remove the whole address",
            errors,
        ),
        line2: patch(object, "address", "line2", AddressText::parse, errors),
        city: patch(object, "address", "city", AddressText::parse, errors),
        region: patch(object, "address", "region", AddressText::parse, errors),
        postal_code: patch(object, "address", "postalCode", AddressText::parse, errors),
        country: patch(object, "address", "country", CountryCode::parse, errors),
    })
}

impl NewCustomer {
    /// Reads a new customer from a JSON object, reporting every failing field at once.
    ///
    /// `null` on an optional field is the same as leaving it out.
    ///
    /// # Errors
    /// Every invalid, missing or unknown field, each with its JSON path.
    pub fn from_json(value: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = Collector::default();
        let object =
            as_object(value, "$").map_err(|e| ValidationErrors::single(e.field, e.message))?;
        reject_unknown(object, CUSTOMER_FIELDS, SERVER_FIELDS, "", &mut errors);
        let id = optional(object, "", "id", CustomerId::parse, &mut errors);
        let first_name = required(object, "firstName", PersonName::parse, &mut errors);
        let last_name = required(object, "lastName", PersonName::parse, &mut errors);
        let email = optional(object, "", "email", Email::parse, &mut errors);
        let phone = optional(object, "", "phone", Phone::parse, &mut errors);
        let address = match member(object, "address") {
            Member::Absent | Member::Null => None,
            Member::Value(v) => address(v, &mut errors),
        };
        match (first_name, last_name) {
            (Some(first_name), Some(last_name)) if errors.is_empty() => Ok(Self {
                id,
                first_name,
                last_name,
                email,
                phone,
                address,
            }),
            _ => Err(errors
                .finish()
                .err()
                .unwrap_or_else(|| ValidationErrors::single("$", "is not a valid customer"))),
        }
    }
}

impl CustomerPatch {
    /// Reads a JSON Merge Patch (RFC 7396) of a customer, reporting every failing field at once.
    ///
    /// # Errors
    /// Every invalid or unknown field, each with its JSON path; `null` on a required field; any
    /// attempt to change the id or a server-set field.
    pub fn from_json(value: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = Collector::default();
        let object =
            as_object(value, "$").map_err(|e| ValidationErrors::single(e.field, e.message))?;
        if object.contains_key("id") {
            errors.push(FieldError::new("id", "`id` cannot be changed"));
        }
        let known_or_id: Vec<&str> = PATCH_FIELDS.iter().copied().chain(["id"]).collect();
        reject_unknown(object, &known_or_id, SERVER_FIELDS, "", &mut errors);
        let cleared = "is required and cannot be cleared";
        let result = Self {
            first_name: replace_only(
                object,
                "",
                "firstName",
                PersonName::parse,
                cleared,
                &mut errors,
            ),
            last_name: replace_only(
                object,
                "",
                "lastName",
                PersonName::parse,
                cleared,
                &mut errors,
            ),
            email: patch(object, "", "email", Email::parse, &mut errors),
            phone: patch(object, "", "phone", Phone::parse, &mut errors),
            address: match member(object, "address") {
                Member::Absent => Patch::Keep,
                Member::Null => Patch::Clear,
                Member::Value(v) => address_patch(v, &mut errors).map_or(Patch::Keep, Patch::Set),
            },
        };
        errors.finish().map(|()| result)
    }
}

impl<'de> Deserialize<'de> for NewCustomer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for CustomerPatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: &ValidationErrors) -> Vec<&str> {
        errors.errors().iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_complete_customer_is_read() {
        let input = json!({
            "id": "c-1", "firstName": " Ada ", "lastName": "Lovelace", "email": "ada@example.com",
            "phone": "+441234567890",
            "address": {"line1": "12 St James's Sq", "city": "London", "postalCode": "SW1Y 4JH", "country": "gb"}
        });
        let c = NewCustomer::from_json(&input).unwrap();
        assert_eq!(c.first_name.as_str(), "Ada");
        assert_eq!(c.address.unwrap().country.unwrap().as_str(), "GB");
    }

    #[test]
    fn every_failing_field_is_reported_at_once() {
        let input = json!({"firstName": "", "email": "nope", "phone": 7, "address": {"city": "x"}});
        let errors = NewCustomer::from_json(&input).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["firstName", "lastName", "email", "phone", "address.line1"]
        );
    }

    #[test]
    fn unknown_fields_are_named_with_a_suggestion() {
        let input =
            json!({"firstName": "A", "lastName": "B", "Address": "x", "emial": "a@b.co", "zzz": 1});
        let errors = NewCustomer::from_json(&input).unwrap_err();
        let messages: Vec<_> = errors.errors().iter().map(|e| e.message.as_str()).collect();
        assert!(messages.contains(&"unknown field `Address`; did you mean `address`?"));
        assert!(messages.contains(&"unknown field `emial`; did you mean `email`?"));
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("unknown field `zzz`; expected one of"))
        );
    }

    #[test]
    fn past_ten_unknown_members_the_next_is_named_with_a_count_of_the_rest() {
        let mut input = json!({"firstName": "", "lastName": "B", "address": {"line1": "1"}});
        for i in 0..1_300 {
            input[format!("x{i:04}")] = json!(0);
            input["address"][format!("y{i:04}")] = json!(0);
        }
        let errors = NewCustomer::from_json(&input).unwrap_err();
        let errors = errors.errors();
        assert_eq!(errors.len(), 1 + 2 * (UNKNOWN_NAMED + 1), "{errors:#?}");
        assert!(
            errors.iter().any(|e| e.field == "firstName"),
            "known fields still"
        );
        assert_eq!(errors[UNKNOWN_NAMED].field, "x0010");
        assert_eq!(
            errors[UNKNOWN_NAMED].message,
            "unknown field `x0010`, and 1289 more not named"
        );
        assert!(errors.iter().any(|e| e.field == "address.y0010"
            && e.message == "unknown field `y0010`, and 1289 more not named"));

        let mut eleven = json!({"firstName": "A", "lastName": "B"});
        for i in 0..=UNKNOWN_NAMED {
            eleven[format!("x{i:02}")] = json!(0);
        }
        let errors = CustomerPatch::from_json(&eleven).unwrap_err();
        let last = errors.errors().last().unwrap();
        assert_eq!(last.field, "x10");
        assert!(
            last.message
                .starts_with("unknown field `x10`; expected one of"),
            "the eleventh of eleven is named as the others: {}",
            last.message
        );
    }

    #[test]
    fn server_fields_cannot_be_given() {
        let input = json!({"firstName": "A", "lastName": "B", "version": 3});
        let errors = NewCustomer::from_json(&input).unwrap_err();
        assert_eq!(fields(&errors), ["version"]);
    }

    #[test]
    fn a_document_that_is_not_an_object_is_rejected() {
        for input in [json!([]), json!("x"), json!(1), json!(null)] {
            assert_eq!(fields(&NewCustomer::from_json(&input).unwrap_err()), ["$"]);
            assert_eq!(
                fields(&CustomerPatch::from_json(&input).unwrap_err()),
                ["$"]
            );
        }
    }

    #[test]
    fn a_patch_distinguishes_absent_null_and_value() {
        let p = CustomerPatch::from_json(
            &json!({"email": null, "phone": "+12345678901", "address": {"city": null}}),
        )
        .unwrap();
        assert_eq!(p.email, Patch::Clear);
        assert!(matches!(p.phone, Patch::Set(_)));
        let Patch::Set(address) = p.address else {
            panic!("address patch expected")
        };
        assert_eq!(address.city, Patch::Clear);
        assert_eq!(address.line2, Patch::Keep);
        assert!(p.first_name.is_none());
    }

    #[test]
    fn a_patch_cannot_clear_required_fields_or_change_the_id() {
        let errors = CustomerPatch::from_json(
            &json!({"firstName": null, "lastName": null, "id": "x", "address": {"line1": null}, "createdAt": "x"}),
        )
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["id", "createdAt", "firstName", "lastName", "address.line1"]
        );
    }

    #[test]
    fn an_empty_patch_is_empty() {
        assert!(CustomerPatch::from_json(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn serde_goes_through_the_same_reader() {
        let err = serde_json::from_str::<NewCustomer>(r#"{"firstName":"A"}"#).unwrap_err();
        assert!(err.to_string().contains("lastName: is required"));
    }
}
