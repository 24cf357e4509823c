//! Property tests: no input makes parsing panic, and every valid customer survives a JSON round trip.

#![allow(clippy::expect_used)]

use crm_domain::{
    Address, AddressText, CountryCode, Cursor, CursorKey, Customer, CustomerId, CustomerParts,
    CustomerPatch, Email, NewCustomer, PageLimit, PersonName, Phone, Timestamp, Version,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// The last millisecond of year 9999.
const MAX_MILLIS: i64 = 253_402_300_799_999;

/// Any JSON value, with object keys biased towards the field names the readers look for.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("firstName".to_owned()),
        Just("lastName".to_owned()),
        Just("email".to_owned()),
        Just("phone".to_owned()),
        Just("address".to_owned()),
        Just("line1".to_owned()),
        Just("country".to_owned()),
        Just("version".to_owned()),
        ".{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Strings from `pattern` that `parse` accepts, parsed.
fn valid<T: std::fmt::Debug, E>(
    pattern: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> impl Strategy<Value = T> {
    pattern.prop_filter_map("valid value", move |s: String| parse(&s).ok())
}

fn address() -> impl Strategy<Value = Address> {
    let part = || proptest::option::of(valid("\\PC{1,200}", AddressText::parse));
    (
        valid("\\PC{1,200}", AddressText::parse),
        part(),
        part(),
        part(),
        part(),
        proptest::option::of(valid("[A-Z]{2}", CountryCode::parse)),
    )
        .prop_map(
            |(line1, line2, city, region, postal_code, country)| Address {
                line1,
                line2,
                city,
                region,
                postal_code,
                country,
            },
        )
}

fn customer() -> impl Strategy<Value = Customer> {
    (
        valid("[A-Za-z0-9_-]{1,64}", CustomerId::parse),
        valid("\\PC{1,100}", PersonName::parse),
        valid("\\PC{1,100}", PersonName::parse),
        proptest::option::of(valid(
            "[A-Za-z0-9.+_-]{1,30}@[a-z0-9-]{1,20}\\.[a-z]{2,8}",
            Email::parse,
        )),
        proptest::option::of(valid("\\+[1-9][0-9]{7,14}", Phone::parse)),
        proptest::option::of(address()),
        (0..MAX_MILLIS, 0i64..1_000_000_000, 1u64..u64::MAX),
    )
        .prop_map(
            |(id, first_name, last_name, email, phone, address, (created, delta, version))| {
                let time =
                    |ms: i64| Timestamp::from_unix_millis(ms.min(MAX_MILLIS)).expect("in range");
                Customer::from_parts(CustomerParts {
                    id,
                    first_name,
                    last_name,
                    email,
                    phone,
                    address,
                    created_at: time(created),
                    updated_at: time(created.saturating_add(delta)),
                    version: Version::try_from(version).expect("not zero"),
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_rfc3339_shaped_time_makes_the_parser_panic(
        s in "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    ) {
        let _ = Timestamp::parse(&s);
    }

    #[test]
    fn no_string_makes_a_field_parser_panic(s in "\\PC*|.*") {
        let _ = CustomerId::parse(&s);
        let _ = PersonName::parse(&s);
        let _ = Email::parse(&s);
        let _ = Phone::parse(&s);
        let _ = AddressText::parse(&s);
        let _ = CountryCode::parse(&s);
        let _ = Timestamp::parse(&s);
        let _ = PageLimit::parse(&s);
        if let Ok(cursor) = Cursor::parse(&s) {
            let _ = CursorKey::generate().open(&cursor);
        }
    }

    #[test]
    fn no_json_value_makes_the_input_readers_panic(value in any_json()) {
        let _ = NewCustomer::from_json(&value);
        let _ = CustomerPatch::from_json(&value);
        let _ = serde_json::from_value::<Customer>(value);
    }

    #[test]
    fn every_valid_customer_round_trips_through_json(c in customer()) {
        let text = serde_json::to_string(&c).expect("serializes");
        let back: Customer = serde_json::from_str(&text).expect("deserializes");
        prop_assert_eq!(back, c);
    }

    #[test]
    fn what_a_parser_accepts_it_accepts_again_unchanged(s in "\\PC{0,120}") {
        // Stored values are parsed again when read back: they must not drift.
        if let Ok(name) = PersonName::parse(&s) {
            prop_assert_eq!(PersonName::parse(name.as_str()), Ok(name));
        }
        if let Ok(email) = Email::parse(&s) {
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email));
        }
        if let Ok(text) = AddressText::parse(&s) {
            prop_assert_eq!(AddressText::parse(text.as_str()), Ok(text));
        }
    }
}
