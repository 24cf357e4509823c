//! The value types a customer is made of.
//!
//! Each type has private insides and one way in: a fallible constructor (`parse` / `TryFrom`). Serde goes
//! through the same constructor (`#[serde(try_from = "String")]`), so a value read from JSON or from
//! storage is exactly as valid as one built in code. Error messages never repeat the rejected value:
//! they end up in logs, and customer data must not.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::validation::FieldError;

/// Why a single value was rejected; [`FieldError`] adds the field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub(crate) String);

impl InvalidValue {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message, ready to be attached to a field.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// Names the field this value belongs to.
    pub fn at(self, field: &str) -> FieldError {
        FieldError::new(field, self.0)
    }
}

/// Defines the boilerplate every string newtype shares: `as_str`, `Display`, `FromStr`, `TryFrom<String>`,
/// `From<T> for String` and the serde round trip: in through `parse` (`#[serde(try_from = "String")]`
/// on the type), out as the string itself, borrowed (serde's `into` would clone it first, an
/// allocation per field of every customer written).
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidValue;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

/// A customer id: 1–64 characters of `A-Z a-z 0-9 _ -`.
///
/// Ids the server makes are UUIDv7 strings, which sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct CustomerId(String);

impl CustomerId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses an id.
    ///
    /// # Errors
    /// When `s` is empty, longer than 64 characters, or holds a character outside `A-Z a-z 0-9 _ -`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue::new("must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("must be at most 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(InvalidValue::new(
                "may hold only the characters A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A new, time-sortable id (UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id of the customer at `position` in the input named `source` (a file's digest, a
    /// feed's name and date): the same arguments give the same id on any machine and in any
    /// version, so that an import run again writes the customers it wrote before under the same
    /// ids, which the store refuses as taken, rather than a second time under new ones. `imp-` and
    /// 32 hex digits of a SHA-256 of both.
    pub fn derived(source: &str, position: u64) -> Self {
        use sha2::{Digest as _, Sha256};
        use std::fmt::Write as _;
        let digest = Sha256::new()
            .chain_update(source.as_bytes())
            .chain_update([0])
            .chain_update(position.to_be_bytes())
            .finalize();
        let mut id = String::from("imp-");
        for byte in &digest[..16] {
            let _ = write!(id, "{byte:02x}");
        }
        Self(id)
    }
}
string_value!(CustomerId);

/// Rejects control characters and returns the trimmed text, checking its length in Unicode scalar values.
/// The bidirectional embedding, override and isolate characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// White space, and the characters of [`is_default_ignorable`].
fn is_invisible(c: char) -> bool {
    c.is_whitespace() || is_default_ignorable(c)
}

/// The default-ignorable code points of Unicode's `DerivedCoreProperties.txt`, and the blank
/// fillers that render as nothing (Hangul fillers, the blank Braille pattern).
pub(crate) fn is_default_ignorable(c: char) -> bool {
    matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

fn clean_text(s: &str, max_chars: usize) -> Result<&str, InvalidValue> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue::new("must not be empty"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidValue::new("must not contain control characters"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(InvalidValue::new(format!(
            "must be at most {max_chars} characters"
        )));
    }
    Ok(trimmed)
}

/// A first or last name: trimmed, NFC-normalised, 1–100 Unicode characters, no control
/// characters, no bidirectional overrides, and at least one visible character that is not a
/// combining mark.
///
/// NFC gives every name one spelling (`é` as one character, not `e` and a combining accent), so
/// that search and comparison see the same text however a client composed it. Bidirectional
/// override and isolate characters (U+202A–U+202E, U+2066–U+2069) could make a name display as
/// another; a name of only invisible characters (zero-width spaces, fillers) displays as nothing,
/// and one of only combining marks (`\u{301}`) is accents over nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct PersonName(String);

impl PersonName {
    /// The longest name accepted, in Unicode scalar values (after NFC).
    pub const MAX_CHARS: usize = 100;

    /// Parses a name, trimming surrounding whitespace and normalising it to NFC.
    ///
    /// # Errors
    /// When the trimmed name is empty, longer than 100 characters, holds a control character or
    /// a bidirectional override, or holds nothing visible.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        use unicode_normalization::UnicodeNormalization as _;
        let composed: String = s.trim().nfc().collect();
        let name = clean_text(&composed, Self::MAX_CHARS)?;
        if name.chars().any(is_bidi_control) {
            return Err(InvalidValue::new(
                "must not contain bidirectional override characters",
            ));
        }
        // A combining mark alone is an accent over nothing: not a name, and nothing a search by
        // name (which folds accents away) could find.
        if name
            .chars()
            .all(|c| is_invisible(c) || unicode_normalization::char::is_combining_mark(c))
        {
            return Err(InvalidValue::new("must contain a visible character"));
        }
        Ok(Self(name.to_owned()))
    }

    /// Reads back a name a store holds, under the rules it was written by: an earlier version
    /// accepted names that [`parse`](Self::parse) now refuses (bidirectional overrides, nothing
    /// visible), and a stored customer must stay readable, listable and deletable. Input from
    /// clients goes through [`parse`](Self::parse); only repositories call this.
    ///
    /// # Errors
    /// When the trimmed name is empty, longer than 100 characters or holds a control character:
    /// what no version ever stored.
    pub fn from_stored(s: &str) -> Result<Self, InvalidValue> {
        use unicode_normalization::UnicodeNormalization as _;
        let composed: String = s.trim().nfc().collect();
        clean_text(&composed, Self::MAX_CHARS).map(|name| Self(name.to_owned()))
    }
}
string_value!(PersonName);

/// An email address as the customer wrote it (trimmed), at most 254 characters.
///
/// Uniqueness is case-insensitive: [`Email::normalized`] is the key two addresses are compared by.
/// The accepted syntax is the WHATWG HTML one (what browsers accept in `<input type=email>`), with the
/// RFC 5321 limits of 64 characters for the local part and 63 per domain label, and at least one dot in
/// the domain: a customer's address is reachable on the Internet, not on `localhost`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

impl Email {
    /// The longest address accepted.
    pub const MAX_LEN: usize = 254;

    /// Parses an address.
    ///
    /// # Errors
    /// When the trimmed text is not a valid address or is longer than 254 characters.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidValue::new("must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("must be at most 254 characters"));
        }
        let invalid = || InvalidValue::new("must be a valid email address");
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if local_ok && domain_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// The address lower-cased: the key under which uniqueness is decided.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}
string_value!(Email);

/// A phone number in E.164 form: `+`, then 8–15 digits, the first of which (the country code) is not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Phone(String);

impl Phone {
    /// Parses an E.164 number. Spaces, dashes or brackets are not removed: the canonical form is asked
    /// for, so that two spellings of one number cannot coexist.
    ///
    /// # Errors
    /// When `s` is not `+` followed by 8–15 digits with a non-zero first digit.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let digits = s.strip_prefix('+').unwrap_or("");
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "must be an E.164 number: '+' and 8 to 15 digits, not starting with 0",
            ))
        }
    }
}
string_value!(Phone);

/// One line or part of a postal address: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct AddressText(String);

impl AddressText {
    /// The longest part accepted, in Unicode scalar values.
    pub const MAX_CHARS: usize = 200;

    /// Parses an address part, trimming surrounding whitespace.
    ///
    /// # Errors
    /// When the trimmed text is empty, longer than 200 characters, or holds a control character.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        clean_text(s, Self::MAX_CHARS).map(|t| Self(t.to_owned()))
    }
}
string_value!(AddressText);

/// An ISO 3166-1 alpha-2 country code, stored upper-case (`us` is accepted as `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CountryCode([u8; 2]);

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted for binary search.
const COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

impl CountryCode {
    /// Parses a code, case-insensitively.
    ///
    /// # Errors
    /// When `s` is not one of the 249 assigned ISO 3166-1 alpha-2 codes.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let upper = s.to_ascii_uppercase();
        match (
            COUNTRY_CODES.binary_search(&upper.as_str()),
            upper.as_bytes(),
        ) {
            (Ok(_), &[a, b]) => Ok(Self([a, b])),
            _ => Err(InvalidValue::new(
                "must be an ISO 3166-1 alpha-2 country code such as \"US\" or \"DE\"",
            )),
        }
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // The bytes come from COUNTRY_CODES, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for CountryCode {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CountryCode> for String {
    fn from(value: CountryCode) -> String {
        value.as_str().to_owned()
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A postal address. `line1` is required; every other part is optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// First address line (street and number).
    pub line1: AddressText,
    /// Second address line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<AddressText>,
    /// City or locality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<AddressText>,
    /// State, province or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<AddressText>,
    /// Postal or ZIP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<AddressText>,
    /// ISO 3166-1 alpha-2 country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryCode>,
}

impl Address {
    /// An address of one line.
    pub fn new(line1: AddressText) -> Self {
        Self {
            line1,
            line2: None,
            city: None,
            region: None,
            postal_code: None,
            country: None,
        }
    }
}

/// A point in time, in UTC, with millisecond precision; written as RFC 3339 (`2026-11-22T04:15:20.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        Self::truncated(OffsetDateTime::now_utc())
    }

    /// The time `millis` milliseconds after the Unix epoch.
    ///
    /// # Errors
    /// When the time is outside the years 1–9999.
    pub fn from_unix_millis(millis: i64) -> Result<Self, InvalidValue> {
        let nanos = i128::from(millis) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .filter(|t| (1..=9999).contains(&t.year()))
            .map(Self)
            .ok_or_else(|| InvalidValue::new("must be between the years 1 and 9999"))
    }

    /// The time `duration` later, or the latest time this type holds when that is past it.
    #[must_use]
    pub fn after(&self, duration: std::time::Duration) -> Self {
        /// 9999-12-31T23:59:59.999Z.
        const LATEST: i64 = 253_402_300_799_999;
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self::from_unix_millis(self.unix_millis().saturating_add(millis).min(LATEST))
            .unwrap_or(*self)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        // Years 1–9999 keep this well inside i64.
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Parses an RFC 3339 time with any offset; it is converted to UTC and truncated to milliseconds.
    ///
    /// # Errors
    /// When `s` is not an RFC 3339 date-time.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            // `checked_`: a time just inside year 9999 at a negative offset is in year 10000 in
            // UTC, which `to_offset` would panic on.
            .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
            .filter(|t| (1..=9999).contains(&t.year()))
            .map(Self::truncated)
            .ok_or_else(|| InvalidValue::new("must be an RFC 3339 date-time"))
    }

    fn truncated(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let millis = t.millisecond();
        // Setting a millisecond in 0..1000 cannot fail.
        Self(t.replace_millisecond(millis).unwrap_or(t))
    }

    /// The RFC 3339 text, `YYYY-MM-DDTHH:MM:SS.mmmZ`, written digit by digit into a fixed buffer:
    /// every customer written out carries two, and through `core::fmt`'s padding they were nearly
    /// a quarter of a customer's serialization in the local server's profile.
    fn rfc3339(&self) -> Rfc3339 {
        fn digits<const N: usize>(out: &mut [u8], mut value: u32) {
            for slot in out[..N].iter_mut().rev() {
                // `value % 10` is a single digit.
                *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
                value /= 10;
            }
        }
        let t = self.0;
        let mut text = *b"0000-00-00T00:00:00.000Z";
        // The year is in 1..=9999 (every constructor checks), so it takes four digits.
        digits::<4>(&mut text[0..], u32::try_from(t.year()).unwrap_or(0));
        digits::<2>(&mut text[5..], u32::from(u8::from(t.month())));
        digits::<2>(&mut text[8..], u32::from(t.day()));
        digits::<2>(&mut text[11..], u32::from(t.hour()));
        digits::<2>(&mut text[14..], u32::from(t.minute()));
        digits::<2>(&mut text[17..], u32::from(t.second()));
        digits::<3>(&mut text[20..], u32::from(t.millisecond()));
        Rfc3339(text)
    }
}

/// A [`Timestamp`]'s text, ASCII by construction.
struct Rfc3339([u8; 24]);

impl Rfc3339 {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("0000-00-00T00:00:00.000Z")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rfc3339().as_str())
    }
}

impl TryFrom<String> for Timestamp {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_string()
    }
}

/// A customer's version: 1 at creation, +1 on every change; the optimistic-concurrency token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Version(u64);

impl Version {
    /// The version of a customer just created.
    pub const FIRST: Self = Self(1);

    /// The version after one more change.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The version as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Version {
    type Error = InvalidValue;
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        if n == 0 {
            Err(InvalidValue::new("must be at least 1"))
        } else {
            Ok(Self(n))
        }
    }
}

impl From<Version> for u64 {
    fn from(v: Version) -> u64 {
        v.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_only() {
        assert!(CustomerId::parse("abc_DEF-123").is_ok());
        assert!(CustomerId::parse(&"a".repeat(64)).is_ok());
        assert!(CustomerId::parse(&"a".repeat(65)).is_err());
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse("a b").is_err());
        assert!(CustomerId::parse("a#b").is_err());
        assert!(CustomerId::parse("é").is_err());
    }

    #[test]
    fn derived_ids_are_valid_stable_and_distinct() {
        let id = CustomerId::derived("customers.csv sha256:ab12", 7);
        assert!(CustomerId::parse(id.as_str()).is_ok());
        // Fixed for ever: an import run by another version must find the same ids.
        assert_eq!(
            id.as_str(),
            CustomerId::derived("customers.csv sha256:ab12", 7).as_str()
        );
        assert_eq!(id.as_str().len(), 36);
        assert_ne!(id, CustomerId::derived("customers.csv sha256:ab12", 8));
        assert_ne!(id, CustomerId::derived("other.csv", 7));
        // The separator keeps ("a", 1) and ("a\0…", …) apart.
        assert_ne!(
            CustomerId::derived("a", 1),
            CustomerId::derived("a\0\0\0\0\0\0\0\0", 1)
        );
    }

    #[test]
    fn generated_ids_are_valid_and_sort_by_creation() {
        let a = CustomerId::generate();
        let b = CustomerId::generate();
        assert!(CustomerId::parse(a.as_str()).is_ok());
        assert!(a < b);
    }

    #[test]
    fn names_are_stored_in_nfc() {
        let decomposed = PersonName::parse("E\u{301}mile").unwrap();
        assert_eq!(decomposed, PersonName::parse("\u{c9}mile").unwrap());
        assert_eq!(decomposed.as_str().chars().count(), 5);
        // 100 decomposed characters are 100 characters once composed.
        assert!(PersonName::parse(&"e\u{301}".repeat(100)).is_ok());
    }

    #[test]
    fn names_of_invisible_characters_or_with_bidi_overrides_are_invalid() {
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{2060}\u{FEFF}",
            "\u{3164}",
            "\u{2800}\u{2800}",
            "\u{00AD}",
            "\u{E0041}",
            "\u{200E}",
            "\u{301}\u{301}",
            " \u{301}\u{200B}\u{308} ",
            "\u{94D}",
        ] {
            let err = PersonName::parse(invisible).unwrap_err();
            assert!(err.message().contains("visible"), "{invisible:?}: {err:?}");
        }
        for trojan in ["Ada\u{202E}ecalevol", "\u{2066}Ada\u{2069}", "A\u{202A}da"] {
            let err = PersonName::parse(trojan).unwrap_err();
            assert!(err.message().contains("bidirectional"), "{trojan:?}");
        }
        // Invisible characters inside a visible name are the writer's business.
        assert!(PersonName::parse("Ada\u{200D}Lovelace").is_ok());
        assert!(PersonName::parse("\u{5d0}\u{5d3}\u{5d4}").is_ok());
        // Marks on a letter are the letter's: Devanagari's vowel signs, Hebrew points.
        assert!(PersonName::parse("\u{915}\u{93F}").is_ok());
        assert!(PersonName::parse("\u{5d0}\u{5b8}").is_ok());
    }

    #[test]
    fn names_are_trimmed_and_counted_in_characters() {
        assert_eq!(
            PersonName::parse("  Ada ").map(String::from),
            Ok("Ada".into())
        );
        assert!(PersonName::parse(&"é".repeat(100)).is_ok());
        assert!(PersonName::parse(&"é".repeat(101)).is_err());
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("Ada\u{7}").is_err());
        assert!(PersonName::parse("Ada\nLovelace").is_err());
    }

    #[test]
    fn emails_follow_the_html_rule_with_rfc_limits() {
        for ok in [
            "ada@example.com",
            "Ada.Lovelace+crm@Example.co.uk",
            "a!#$%&'*+/=?^_`{|}~-@x-y.io",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a..b@example.com",
            ".a@example.com",
            "ada@-example.com",
            "ada@example..com",
            "ada lovelace@example.com",
            "ädä@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        let long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert!(long.len() > 254 && Email::parse(&long).is_err());
    }

    #[test]
    fn emails_compare_case_insensitively_through_their_normal_form() {
        let a = Email::parse("Ada@Example.COM").unwrap();
        assert_eq!(a.as_str(), "Ada@Example.COM");
        assert_eq!(a.normalized(), "ada@example.com");
    }

    #[test]
    fn phones_are_e164() {
        assert!(Phone::parse("+14155552671").is_ok());
        assert!(Phone::parse("+12345678").is_ok());
        assert!(Phone::parse("+123456789012345").is_ok());
        for bad in [
            "14155552671",
            "+1234567",
            "+1234567890123456",
            "+0123456789",
            "+1 415 555 2671",
            "+",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn countries_are_assigned_iso_codes() {
        assert_eq!(CountryCode::parse("de").unwrap().as_str(), "DE");
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("USA").is_err());
        assert!(CountryCode::parse("").is_err());
        assert!(COUNTRY_CODES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn timestamps_print_rfc3339_utc_with_milliseconds() {
        let t = Timestamp::parse("2026-11-22T05:15:20.123456+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T04:15:20.123Z");
        assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        assert_eq!(Timestamp::from_unix_millis(t.unix_millis()), Ok(t));
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn timestamps_print_as_core_fmt_pads_them_across_years_1_to_9999() {
        const FIRST: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00.000Z
        const LAST: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        // The ends, and 200,000 points between them at a stride that is no round number of
        // seconds, days or years, so every digit position takes many values; the stride is
        // coprime with 1,000, so the milliseconds take all their values.
        let stride = (LAST - FIRST) / 200_000 + 7_920;
        assert_eq!(stride % 1_000, 407);
        let points = (0..)
            .map(|i| FIRST + i * stride)
            .take_while(|millis| *millis <= LAST)
            .chain([FIRST, FIRST + 999, 0, LAST]);
        for millis in points {
            let t = Timestamp::from_unix_millis(millis).unwrap();
            let inner = t.0;
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                inner.year(),
                u8::from(inner.month()),
                inner.day(),
                inner.hour(),
                inner.minute(),
                inner.second(),
                inner.millisecond()
            );
            assert_eq!(t.to_string(), expected);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{expected}\"")
            );
            assert_eq!(Timestamp::parse(&expected), Ok(t));
        }
    }

    #[test]
    fn times_outside_the_years_1_to_9999_in_utc_are_refused_not_a_panic() {
        // Inside year 9999 at their own offset, outside it in UTC.
        assert!(Timestamp::parse("9999-12-31T23:30:00-01:00").is_err());
        assert!(Timestamp::parse("0001-01-01T00:30:00+01:00").is_err());
        assert!(Timestamp::parse("0000-06-01T00:00:00Z").is_err());
        assert!(Timestamp::parse("9999-12-31T23:59:59.999Z").is_ok());
        assert!(Timestamp::parse("0001-01-01T00:00:00Z").is_ok());
    }
}
