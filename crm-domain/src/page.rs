//! Pagination: a bounded page size, an opaque cursor, and a page of results.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, Generate as _, KeyInit as _, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
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
    /// When `s` is not an integer in 1–100 written in decimal digits alone: no sign and no space
    /// (a `+` in a query string is a space, so `limit=+5` is refused too), as the JSON form of
    /// the same filter refuses `"+5"`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue("must be an integer from 1 to 100".into()));
        }
        s.parse::<u64>()
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
/// A cursor is a position [sealed](CursorKey::seal) with the store's [`CursorKey`]: encrypted and
/// authenticated, then URL-safe base64. A position may hold personal data (in the name order it is
/// the last name and first name of the last customer of the page), and cursors travel in URLs,
/// which gateways, proxies and browsers record; sealed, they show nothing, and a cursor that was
/// altered or made up does not open: [`RepositoryError::InvalidCursor`](crate::RepositoryError::InvalidCursor).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// The longest cursor accepted from a client: room for the longest position this crate
    /// makes, sealed.
    pub const MAX_LEN: usize = 1024;

    /// Takes a cursor string from a client. Only its outer form is checked here; the store opens
    /// it with its key.
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

    /// The cursor as sent to clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret a store seals its cursors with (`XChaCha20-Poly1305`, a random nonce per cursor).
///
/// Every process that serves the same store MUST use the same key, or a cursor from one does not
/// open in another: the memory store makes one when it is made; the DynamoDB store keeps one in
/// its table. Replacing the key invalidates the cursors already handed out (clients start their
/// walk again); it never exposes anything.
#[derive(Clone)]
pub struct CursorKey(Key);

/// What a sealed cursor is bound to besides its key: this format.
const CURSOR_AAD: &[u8] = b"crm cursor v2";

/// The length of a nonce of `XChaCha20-Poly1305`.
const NONCE_LEN: usize = 24;

impl CursorKey {
    /// The length of a key, in bytes.
    pub const LEN: usize = 32;

    /// A new random key.
    pub fn generate() -> Self {
        Self(Key::generate())
    }

    /// The key made of `bytes` (as stored by [`to_bytes`](Self::to_bytes)).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes.into())
    }

    /// The key's bytes, to store it.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        self.0.into()
    }

    /// The cursor that carries `position`.
    pub fn seal(&self, position: &str) -> Cursor {
        let nonce = XNonce::generate();
        let payload = Payload {
            msg: position.as_bytes(),
            aad: CURSOR_AAD,
        };
        // Encryption fails only for messages of gigabytes; positions are at most a kilobyte.
        let sealed = XChaCha20Poly1305::new(&self.0)
            .encrypt(&nonce, payload)
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(nonce.as_slice());
        bytes.extend_from_slice(&sealed);
        Cursor(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The position `cursor` carries, if this key sealed it and nobody changed it since.
    pub fn open(&self, cursor: &Cursor) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(&cursor.0).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).ok()?;
        let payload = Payload {
            msg: sealed,
            aad: CURSOR_AAD,
        };
        let position = XChaCha20Poly1305::new(&self.0)
            .decrypt(&nonce, payload)
            .ok()?;
        String::from_utf8(position).ok()
    }
}

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(..)")
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
        for bad in [
            "0",
            "101",
            "-1",
            "+5",
            " ",
            "x",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            assert!(PageLimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PageLimit::default().get(), 25);
    }

    #[test]
    fn sealed_cursors_open_with_their_key_only() {
        let key = CursorKey::generate();
        let cursor = key.seal("name|lovelace ada\u{1}c1");
        assert!(!cursor.as_str().contains("lovelace"));
        let back = Cursor::parse(cursor.as_str()).unwrap();
        assert_eq!(key.open(&back).as_deref(), Some("name|lovelace ada\u{1}c1"));
        assert_ne!(key.seal("x"), key.seal("x"), "a nonce per cursor");
        assert_eq!(CursorKey::generate().open(&cursor), None, "another key");
        let same = CursorKey::from_bytes(key.to_bytes());
        assert!(
            same.open(&cursor).is_some(),
            "the key round-trips through its bytes"
        );
        // One flipped character anywhere and the cursor does not open.
        let text = cursor.as_str();
        for at in [0, text.len() / 2, text.len() - 1] {
            let mut altered = text.as_bytes().to_vec();
            altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
            let altered = Cursor::parse(std::str::from_utf8(&altered).unwrap()).unwrap();
            assert_eq!(key.open(&altered), None, "altered at {at}");
        }
        for garbage in ["abc", "AAAA", &"A".repeat(60)] {
            assert_eq!(key.open(&Cursor::parse(garbage).unwrap()), None);
        }
        assert_eq!(format!("{key:?}"), "CursorKey(..)");
    }

    #[test]
    fn cursors_from_clients_are_checked_for_their_outer_form() {
        assert!(Cursor::parse("not a cursor!").is_err());
        assert!(Cursor::parse("").is_err());
        assert!(Cursor::parse(&"a".repeat(Cursor::MAX_LEN + 1)).is_err());
        assert!(Cursor::parse(&"a".repeat(Cursor::MAX_LEN)).is_ok());
    }

    #[test]
    fn the_longest_position_fits_a_cursor() {
        let key = CursorKey::generate();
        let longest = "x".repeat(crate::listing::MAX_POSITION_BYTES);
        let cursor = key.seal(&longest);
        assert!(
            Cursor::parse(cursor.as_str()).is_ok(),
            "{}",
            cursor.as_str().len()
        );
    }
}
