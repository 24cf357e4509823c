//! JSON read with every object's member names distinct.
//!
//! RFC 8259 leaves a repeated member name to the parser, and `serde_json`'s `Value` keeps the last
//! one: `{"email": "a@x.co", "email": "b@x.co"}` would be taken as `b@x.co`, while a proxy, a log
//! or a client library in front of this API may have read `a@x.co`. I-JSON (RFC 7493) forbids
//! the repeat, and this API refuses it wherever it reads a JSON body, at any depth: a 400
//! `malformed-json` that names the member.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// A JSON value in which no object repeats a member name.
pub(crate) struct Distinct(pub(crate) Value);

/// Parses `bytes` as JSON, refusing a repeated member name anywhere in it.
///
/// # Errors
/// When `bytes` is not JSON, or an object in it repeats a member name.
pub(crate) fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Distinct>(bytes).map(|Distinct(value)| value)
}

/// Parses `text` as JSON, as [`from_slice`] does.
///
/// # Errors
/// As [`from_slice`].
pub(crate) fn from_str(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str::<Distinct>(text).map(|Distinct(value)| value)
}

impl<'de> Deserialize<'de> for Distinct {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DistinctVisitor).map(Self)
    }
}

struct DistinctVisitor;

impl<'de> Visitor<'de> for DistinctVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity: `serde_json` refuses a number out of range itself.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Distinct(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            match object.entry(name) {
                Entry::Vacant(slot) => {
                    let Distinct(value) = map.next_value()?;
                    slot.insert(value);
                }
                // The name goes back to the client who sent it, never to a log.
                Entry::Occupied(taken) => {
                    return Err(A::Error::custom(format_args!(
                        "member `{}` is given more than once",
                        taken.key()
                    )));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_without_repeats_reads_as_serde_json_reads_it() {
        for text in [
            r#"{"a": 1, "b": [true, null, -2, 3.5, "x\u00e9"], "c": {"d": {}}}"#,
            "[]",
            "\"text\"",
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
        ] {
            assert_eq!(
                from_str(text).unwrap(),
                serde_json::from_str::<Value>(text).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_repeated_member_is_refused_at_any_depth_and_named() {
        for (text, member) in [
            (r#"{"email": "a@x.co", "email": "b@x.co"}"#, "email"),
            (r#"{"address": {"line1": "1", "line1": "2"}}"#, "line1"),
            (r#"{"customers": [{}, {"id": "a", "id": "b"}]}"#, "id"),
        ] {
            let error = from_slice(text.as_bytes()).unwrap_err();
            assert!(error.is_data(), "{text}: {error}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("member `{member}` is given more than once")),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn the_same_name_in_different_objects_is_no_repeat() {
        let value = from_str(r#"{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}"#).unwrap();
        assert_eq!(value["b"][1]["a"], 3);
    }

    #[test]
    fn nesting_stays_bounded_by_serde_json() {
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        let error = from_str(&deep).unwrap_err();
        assert!(error.to_string().contains("recursion limit"), "{error}");
        let within = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_str(&within).is_ok());
    }
}
