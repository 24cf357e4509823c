//! Pagination: a bounded page size, an opaque cursor, and a page of results.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::fields::InvalidValue;

/// How many items a page may hold: 1–100, 25 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageLimit(u16);

impl PageLimit {
    /// The largest page.
    pub const MAX: Self = Self(100);
    /// The page size used when a client does not ask for one.
    pub const DEFAULT: Self = Self(25);

    /// A page size.
    ///
    /// # Errors
    /// When `n` is not in 1–100.
    pub fn new(n: u64) -> Result<Self, InvalidValue> {
        match u16::try_from(n) {
            Ok(n @ 1..=100) => Ok(Self(n)),
            _ => Err(InvalidValue("must be an integer from 1 to 100".into())),
        }
    }

    /// Parses a page size from a query string value.
    ///
    /// # Errors
    /// When `s` is not an integer in 1–100.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        s.trim()
            .parse::<u64>()
            .map_err(|_| InvalidValue("must be an integer from 1 to 100".into()))
            .and_then(Self::new)
    }

    /// The size as a number.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An opaque position in a listing, handed to clients as `nextCursor` and given back as `cursor`.
///
/// A cursor is URL-safe base64 of a small, versioned payload that only the repository that made it
/// reads. Clients must treat it as opaque; the repository checks it on the way back in, and a cursor
/// that does not decode to a valid position is [`RepositoryError::InvalidCursor`](crate::RepositoryError::InvalidCursor).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Cursor(String);

/// The version tag every cursor payload starts with, so that the format can change safely.
const CURSOR_TAG: &str = "v1:";

impl Cursor {
    /// The longest cursor accepted from a client.
    pub const MAX_LEN: usize = 1024;

    /// A cursor carrying `position`, a repository-defined text.
    pub fn encode(position: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}{position}")))
    }

    /// Takes a cursor string from a client. Only its outer form is checked here; [`Cursor::decode`]
    /// checks the inside.
    ///
    /// # Errors
    /// When `s` is empty, too long, or not URL-safe base64.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let well_formed = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue("is not a cursor this API issued".into()))
        }
    }

    /// The position this cursor carries, if it is one this API issued.
    pub fn decode(&self) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(&self.0).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        text.strip_prefix(CURSOR_TAG).map(str::to_owned)
    }

    /// The cursor as sent to clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One page of a listing: its items and, unless it is the last page, the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page, at most the limit asked for.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_one_to_a_hundred() {
        assert_eq!(PageLimit::parse("1").unwrap().get(), 1);
        assert_eq!(PageLimit::parse("100").unwrap().get(), 100);
        for bad in ["0", "101", "-1", "x", "", "1.5", "99999999999999999999999"] {
            assert!(PageLimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PageLimit::default().get(), 25);
    }

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        let c = Cursor::encode("CUSTOMER#abc");
        let back = Cursor::parse(c.as_str()).unwrap();
        assert_eq!(back.decode().as_deref(), Some("CUSTOMER#abc"));
        assert!(Cursor::parse("not a cursor!").is_err());
        assert!(Cursor::parse("").is_err());
        assert!(Cursor::parse(&"a".repeat(2000)).is_err());
        assert_eq!(Cursor::parse("abc").unwrap().decode(), None);
        assert_eq!(
            Cursor::parse(&URL_SAFE_NO_PAD.encode("v2:x"))
                .unwrap()
                .decode(),
            None
        );
    }
}
