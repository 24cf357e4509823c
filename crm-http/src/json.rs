//! JSON text written by hand where serde's generic path costs the most: the log lines
//! (`telemetry`'s formatter) and the customer in a response body.
//!
//! `serde_json` looks at every byte of every string, keys included, one at a time, and reaches
//! each field through serde's per-field calls. What is written here is the same text, byte for
//! byte (the tests hold it to `serde_json`'s output): keys are fixed fragments, a string with
//! nothing to escape is found so in one pass of wide compares and copied whole, integers are
//! written digit by digit, and the values whose types allow nothing to escape (ids, email
//! addresses, phone numbers, country codes) are not looked at at all. A customer in a response
//! costs half the instructions it did through `serde_json` (about 2,700 against 5,500 in the
//! local server's profile, BENCHMARKS.md).

use std::fmt::{self, Write as _};

use crm_domain::{Customer, Page};

/// `text` as a JSON string.
pub(crate) fn string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Writes what it is given with JSON's string escapes: `"`, `\` and the control characters
/// U+0000–U+001F, as `serde_json` escapes them.
pub(crate) struct Escaped<'a, W: ?Sized>(pub(crate) &'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Nearly every value has nothing to escape, and is then written whole.
        if !needs_escape(text) {
            return self.0.write_str(text);
        }
        let mut clean = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Every byte escaped is ASCII, so `at` is a character boundary.
            self.0.write_str(&text[clean..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            clean = at + 1;
        }
        self.0.write_str(&text[clean..])
    }
}

/// The decimal digits of an integer, written into a buffer of their own (`core::fmt`'s integer
/// formatting goes through its padding logic for every value).
pub(crate) struct Digits {
    buffer: [u8; 20],
    start: usize,
}

impl Digits {
    pub(crate) fn new(value: u64) -> Self {
        let mut buffer = [b'0'; 20];
        let start = buffer.len() - write_digits(&mut buffer, value);
        Self { buffer, start }
    }

    pub(crate) fn text(&self) -> &str {
        ascii(&self.buffer[self.start..])
    }
}

/// Writes the decimal digits of `value` into the end of `out`, the lowest last, as many as `out`
/// holds, and stops once no digit is left (what precedes them keeps what it holds: zeros, for a
/// number of fixed width); returns how many it wrote, at least one.
pub(crate) fn write_digits(out: &mut [u8], mut value: u64) -> usize {
    let mut written = 0;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + u8::try_from(value % 10).unwrap_or_default();
        written += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    written
}

/// Bytes written as ASCII (digits, fixed punctuation), as text.
pub(crate) fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// `customer` as JSON, appended to `out`: what `serde_json` writes for its `Serialize`, byte for
/// byte (members in the same order, absent optional fields left out, the same escapes).
pub(crate) fn customer(out: &mut String, customer: &Customer) {
    out.push_str("{\"id\":");
    push_plain(out, customer.id().as_str());
    out.push_str(",\"firstName\":");
    push_string(out, customer.first_name().as_str());
    out.push_str(",\"lastName\":");
    push_string(out, customer.last_name().as_str());
    if let Some(email) = customer.email() {
        out.push_str(",\"email\":");
        push_plain(out, email.as_str());
    }
    if let Some(phone) = customer.phone() {
        out.push_str(",\"phone\":");
        push_plain(out, phone.as_str());
    }
    if let Some(address) = customer.address() {
        out.push_str(",\"address\":{\"line1\":");
        push_string(out, address.line1.as_str());
        let parts = [
            (",\"line2\":", &address.line2),
            (",\"city\":", &address.city),
            (",\"region\":", &address.region),
            (",\"postalCode\":", &address.postal_code),
        ];
        for (key, part) in parts {
            if let Some(part) = part {
                out.push_str(key);
                push_string(out, part.as_str());
            }
        }
        if let Some(country) = &address.country {
            out.push_str(",\"country\":");
            push_plain(out, country.as_str());
        }
        out.push('}');
    }
    // A timestamp's text (`2026-11-22T04:15:20.123Z`) has nothing to escape. Writing to a
    // `String` cannot fail.
    let _ = write!(out, ",\"createdAt\":\"{}\"", customer.created_at());
    let _ = write!(out, ",\"updatedAt\":\"{}\"", customer.updated_at());
    out.push_str(",\"version\":");
    out.push_str(Digits::new(customer.version().get()).text());
    out.push('}');
}

/// A page of customers as JSON, appended to `out`: `{"items":[…],"nextCursor":…}`, what
/// `serde_json` writes for `Page<Customer>`, byte for byte.
pub(crate) fn customer_page(out: &mut String, page: &Page<Customer>) {
    out.push_str("{\"items\":[");
    for (at, item) in page.items.iter().enumerate() {
        if at > 0 {
            out.push(',');
        }
        customer(out, item);
    }
    out.push_str("],\"nextCursor\":");
    match &page.next_cursor {
        // A cursor is URL-safe base64: nothing to escape.
        Some(cursor) => push_plain(out, cursor.as_str()),
        None => out.push_str("null"),
    }
    out.push('}');
}

/// `text` as a JSON string, appended to `out`: in one piece when it has nothing to escape (as
/// nearly every customer's text), through [`Escaped`] otherwise.
fn push_string(out: &mut String, text: &str) {
    if needs_escape(text) {
        // Writing to a `String` cannot fail.
        let _ = string(out, text);
    } else {
        push_plain(out, text);
    }
}

/// `text`, which has nothing to escape by its type's rules, as a JSON string appended to `out`:
/// an id (`A-Z a-z 0-9 _ -`), an email address (ASCII letters, digits and
/// ``.!#$%&'*+/=?^_`{|}~-@``), a phone number (`+` and digits), a country code (two letters), a
/// page's cursor (URL-safe base64).
/// Test builds check it.
fn push_plain(out: &mut String, text: &str) {
    debug_assert!(!needs_escape(text), "a value with something to escape");
    out.reserve(text.len() + 2);
    out.push('"');
    out.push_str(text);
    out.push('"');
}

/// Whether `text` holds a character JSON escapes: `"`, `\` or one of U+0000–U+001F.
fn needs_escape(text: &str) -> bool {
    // One pass without an early exit, which the compiler turns into wide compares: nearly every
    // text has nothing to escape, and is then read once.
    text.bytes().fold(0_u8, |any, b| {
        any | u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\')
    }) != 0
}

#[cfg(test)]
mod tests {
    use crm_domain::{
        Address, AddressText, CountryCode, Cursor, CustomerId, CustomerParts, Email, PersonName,
        Phone, Timestamp, Version,
    };
    use proptest::prelude::*;
    use proptest::strategy::Strategy;

    use super::*;

    fn written(customer: &Customer) -> String {
        let mut out = String::new();
        super::customer(&mut out, customer);
        out
    }

    /// Any text `parse` accepts, from printable characters of every kind, with JSON's specials
    /// (`"`, `\`, `/`) and characters from outside ASCII often among them.
    fn text<T: fmt::Debug>(
        parse: fn(&str) -> Result<T, crm_domain::InvalidValue>,
    ) -> impl Strategy<Value = T> {
        prop_oneof![
            "[a-zA-Z \"\\\\/'éß漢😀\u{7f}\u{a0}\u{200b}]{1,24}",
            "\\PC{1,24}",
        ]
        .prop_filter_map("accepted by the field's parser", move |s| parse(&s).ok())
    }

    fn address() -> impl Strategy<Value = Address> {
        let part = || proptest::option::of(text(AddressText::parse));
        (
            text(AddressText::parse),
            part(),
            part(),
            part(),
            part(),
            proptest::option::of(
                "[A-Z]{2}".prop_filter_map("an assigned code", |s| CountryCode::parse(&s).ok()),
            ),
        )
            .prop_map(|(line1, line2, city, region, postal_code, country)| {
                let mut address = Address::new(line1);
                address.line2 = line2;
                address.city = city;
                address.region = region;
                address.postal_code = postal_code;
                address.country = country;
                address
            })
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        // From 1970 to the last millisecond of 9999.
        (0_i64..=253_402_300_799_999)
            .prop_map(|millis| Timestamp::from_unix_millis(millis).unwrap())
    }

    prop_compose! {
        fn customers()(
            id in "[A-Za-z0-9_-]{1,64}",
            first_name in text(PersonName::parse),
            last_name in text(PersonName::parse),
            email in proptest::option::of(
                "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}@[a-z0-9-]{1,10}\\.[a-z]{2,6}"
                    .prop_filter_map("a valid address", |s| Email::parse(&s).ok()),
            ),
            phone in proptest::option::of(
                "\\+[1-9][0-9]{7,14}".prop_filter_map("E.164", |s| Phone::parse(&s).ok()),
            ),
            address in proptest::option::of(address()),
            created_at in timestamp(),
            updated_at in timestamp(),
            version in 1..=u64::MAX,
        ) -> Customer {
            Customer::from_parts(CustomerParts {
                id: CustomerId::parse(&id).unwrap(),
                first_name,
                last_name,
                email,
                phone,
                address,
                created_at,
                updated_at,
                version: Version::try_from(version).unwrap(),
            })
        }
    }

    proptest! {
        #[test]
        fn a_customer_is_written_as_serde_json_writes_it(customer in customers()) {
            prop_assert_eq!(written(&customer), serde_json::to_string(&customer).unwrap());
        }

        #[test]
        fn a_page_of_customers_is_written_as_serde_json_writes_it(
            items in proptest::collection::vec(customers(), 0..4),
            next_cursor in proptest::option::of(
                "[A-Za-z0-9_-]{1,60}".prop_map(|s| Cursor::parse(&s).unwrap()),
            ),
        ) {
            let page = Page { items, next_cursor };
            let mut out = String::new();
            super::customer_page(&mut out, &page);
            prop_assert_eq!(out, serde_json::to_string(&page).unwrap());
        }
    }

    #[test]
    fn a_customer_with_every_field_and_one_with_none_are_written_as_serde_json_writes_them() {
        let full: Customer = serde_json::from_value(serde_json::json!({
            "id": "c-1",
            "firstName": "Zoë \"Z\"",
            "lastName": "O\\Brien",
            "email": "zoe+crm@example.com",
            "phone": "+4915112345678",
            "address": {
                "line1": "Hauptstraße 1",
                "line2": "Hinterhaus",
                "city": "Köln",
                "region": "NRW",
                "postalCode": "50667",
                "country": "DE"
            },
            "createdAt": "2026-11-22T04:15:20.123Z",
            "updatedAt": "2026-11-23T00:00:00.000Z",
            "version": 18_446_744_073_709_551_615_u64
        }))
        .unwrap();
        let bare: Customer = serde_json::from_value(serde_json::json!({
            "id": "c-2",
            "firstName": "A",
            "lastName": "B",
            "createdAt": "1970-01-01T00:00:00.000Z",
            "updatedAt": "1970-01-01T00:00:00.000Z",
            "version": 1
        }))
        .unwrap();
        for customer in [full, bare] {
            assert_eq!(
                written(&customer),
                serde_json::to_string(&customer).unwrap()
            );
        }
    }
}
