//! Idempotent writes: a client that sends a write again with the same key gets the first
//! request's outcome, never a second write.
//!
//! A client that lost the reply to a write cannot tell whether it was applied; sending it again
//! must be safe. With an [`IdempotencyKey`] (HTTP's `Idempotency-Key` header), the first request
//! that carries it holds the key while it runs ([`KeyState::Fresh`]), and its write records its
//! outcome under the key *in the same atomic step as the change*: a committed change always has
//! its record, and a record always means a committed change. A later request with the key then
//! finds [`KeyState::Done`] and answers that outcome without writing; one that comes while the
//! first still runs finds [`KeyState::Running`]; one that asks for something else with the same
//! key finds [`KeyState::OtherRequest`].
//!
//! A write that was refused (a taken email, a stale version) changed nothing, so it records
//! nothing and gives the key back: sending it again runs it again. A write whose outcome is
//! unknown (the store did not answer) keeps holding the key until the hold runs out, then a retry
//! runs it; if the first did commit, its record is there and the retry is answered from it.
//!
//! Records hold the key's fingerprint, what was written (the kind of write, the customer's id and
//! version) and nothing of the customer's fields; they are kept for 24 hours.

use std::fmt;
use std::time::Duration;

use crate::customer::{Customer, CustomerPatch};
use crate::fields::{CustomerId, Timestamp, Version};
use crate::repository::RepositoryError;

/// How long a record of an idempotent write is kept: a retry within this time is answered from it.
pub const KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// An idempotency key: an opaque string of 1 to 255 visible ASCII characters (`!` to `~`),
/// chosen by the client, unique per write it means.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a string is not an [`IdempotencyKey`]. It quotes nothing of the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key is 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// The longest key.
    pub const MAX_LEN: usize = 255;

    /// `key` as an idempotency key.
    ///
    /// # Errors
    /// When `key` is empty, longer than 255 characters, or holds anything but visible ASCII.
    pub fn parse(key: &str) -> Result<Self, InvalidIdempotencyKey> {
        let valid =
            (1..=Self::MAX_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(key.to_owned()))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keys are the client's text, which may mean something to it: debug output shows their length.
impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({} chars)", self.0.len())
    }
}

/// A digest of everything a request asked for (for HTTP: method, path, `If-Match` and body), made
/// by the adapter that received it: a request with the same key must have the same fingerprint.
/// It holds no customer data in clear; adapters use a cryptographic digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(String);

impl RequestFingerprint {
    /// A fingerprint from its digest, in any text form the adapter chose (hex, base64).
    pub fn new(digest: impl Into<String>) -> Self {
        Self(digest.into())
    }

    /// The digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idempotency key with the fingerprint of the request that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The client's key.
    pub key: IdempotencyKey,
    /// What the request asks for.
    pub fingerprint: RequestFingerprint,
}

impl Idempotency {
    /// The key and fingerprint of the customer at `position` of a batch sent with this key: a key
    /// of its own (`batch-` and the hex SHA-256 of the client's key and the position, so that it
    /// is a valid key whatever the client's length), and a fingerprint made of the whole request's
    /// and the position. Each customer of a batch is then one keyed create, answered from its own
    /// record when the batch is sent again.
    pub(crate) fn for_item(&self, position: u64) -> Self {
        let position = position.to_be_bytes();
        let key = format!(
            "batch-{}",
            hex_digest(&[b"batch item", self.key.as_str().as_bytes(), &position])
        );
        Self {
            key: IdempotencyKey(key),
            fingerprint: RequestFingerprint(hex_digest(&[
                b"batch item",
                self.fingerprint.as_str().as_bytes(),
                &position,
            ])),
        }
    }

    /// The source of the ids [derived](crate::CustomerId::derived) for the customers of a batch
    /// sent with this key that come without one: the key and the request's fingerprint, so that
    /// the same batch sent again names the same customers, and another batch under a key reused
    /// after its record expired names others.
    pub(crate) fn id_source(&self) -> String {
        hex_digest(&[
            b"batch ids",
            self.key.as_str().as_bytes(),
            self.fingerprint.as_str().as_bytes(),
        ])
    }
}

/// The SHA-256 of `parts` (each followed by a 0 byte, so that no two lists of parts run
/// together), in lower-case hex.
fn hex_digest(parts: &[&[u8]]) -> String {
    use sha2::{Digest as _, Sha256};
    use std::fmt::Write as _;
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
        digest.update([0]);
    }
    digest
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// The kind of write an idempotency record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A create.
    Create,
    /// A patch.
    Update,
    /// A delete.
    Delete,
}

impl WriteKind {
    /// Its name in stored records: `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// The kind named `name` by [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "create" => Some(Self::Create),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// What an idempotent write did, as recorded under its key: no customer field, only which
/// customer and which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedOutcome {
    /// The kind of write.
    pub kind: WriteKind,
    /// The customer written.
    pub id: CustomerId,
    /// The version the write made; `None` for a delete.
    pub version: Option<Version>,
}

/// A key held by the request running under it: proof, for the write that records the outcome,
/// that the key is still this request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLease {
    /// The key and the request's fingerprint.
    pub idempotency: Idempotency,
    /// A token of this request, unique to it, minted by the repository.
    pub holder: String,
    /// Until when the key is held; past it, a retry may take the key over.
    pub held_until: Timestamp,
    /// When the key's record expires (24 hours after the key's first use).
    pub expires_at: Timestamp,
}

/// What a repository knows of a key when a request with it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// No write with this key committed, and none runs: this request holds the key now.
    Fresh(KeyLease),
    /// A write with this key and this fingerprint committed: its outcome.
    Done(RecordedOutcome),
    /// A request with this key and this fingerprint is still running.
    Running,
    /// The key was used for a request with another fingerprint.
    OtherRequest,
}

/// One write that records its outcome under a key: what
/// [`CustomerRepository::write_keyed`](crate::CustomerRepository::write_keyed) does.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per write, moved once: a box would only add an allocation"
)]
pub enum KeyedWrite {
    /// [`create`](crate::CustomerRepository::create) this customer.
    Create(Customer),
    /// [`update`](crate::CustomerRepository::update) the customer `id`.
    Update {
        /// The customer to patch.
        id: CustomerId,
        /// The patch, never empty.
        patch: CustomerPatch,
        /// The version the customer must be at, if any.
        expected: Option<Version>,
        /// The time of the change.
        now: Timestamp,
    },
    /// [`delete`](crate::CustomerRepository::delete) the customer `id`.
    Delete {
        /// The customer to delete.
        id: CustomerId,
        /// The version the customer must be at, if any.
        expected: Option<Version>,
    },
}

impl KeyedWrite {
    /// The kind of this write.
    pub fn kind(&self) -> WriteKind {
        match self {
            Self::Create(_) => WriteKind::Create,
            Self::Update { .. } => WriteKind::Update,
            Self::Delete { .. } => WriteKind::Delete,
        }
    }
}

/// What a keyed write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The customer as created or patched.
    Customer(Customer),
    /// The customer was deleted.
    Deleted,
}

impl Written {
    /// The customer written, which a create or an update answers; a delete has none.
    ///
    /// # Errors
    /// [`RepositoryError::Unexpected`] for a delete: a repository answered a create or an update
    /// with one.
    pub fn into_customer(self) -> Result<Customer, RepositoryError> {
        match self {
            Self::Customer(customer) => Ok(customer),
            Self::Deleted => Err(RepositoryError::unexpected(
                "a create or an update was answered as a delete",
            )),
        }
    }

    /// The record of this write of customer `id`.
    pub fn outcome(&self, kind: WriteKind, id: &CustomerId) -> RecordedOutcome {
        RecordedOutcome {
            kind,
            id: id.clone(),
            version: match self {
                Self::Customer(customer) => Some(customer.version()),
                Self::Deleted => None,
            },
        }
    }
}

/// The answer of an idempotent operation of the service: what it did now, or what the first
/// request with its key did.
///
/// A replay carries the record, never the customer: the record holds no customer field, and the
/// customer as stored now may not be what that write made (changed since, or deleted and created
/// again under the same id, at the same version). Whoever needs the customer reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Keyed<T> {
    /// The operation ran now.
    Done(T),
    /// An earlier request with the same key and fingerprint ran it; this is its outcome.
    Replayed(RecordedOutcome),
}

impl<T> Keyed<T> {
    /// The same answer, with `f` applied to what ran now.
    ///
    /// # Errors
    /// What `f` returns.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Keyed<U>, E> {
        Ok(match self {
            Self::Done(value) => Keyed::Done(f(value)?),
            Self::Replayed(outcome) => Keyed::Replayed(outcome),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_to_255_visible_ascii_characters() {
        for good in [
            "a",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            &"k".repeat(255),
            "!~\"'",
        ] {
            assert_eq!(IdempotencyKey::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", &"k".repeat(256), "with space", "tab\t", "é", "line\n"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(InvalidIdempotencyKey),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_key_does_not_show_itself_in_debug_output() {
        let key = IdempotencyKey::parse("ada-lovelace-order-1").unwrap();
        assert_eq!(format!("{key:?}"), "IdempotencyKey(20 chars)");
    }

    #[test]
    fn the_keys_of_a_batch_are_valid_distinct_and_tied_to_the_request() {
        let idempotency = |key: &str, fingerprint: &str| Idempotency {
            key: IdempotencyKey::parse(key).unwrap(),
            fingerprint: RequestFingerprint::new(fingerprint),
        };
        let longest = "k".repeat(IdempotencyKey::MAX_LEN);
        let batch = idempotency(&longest, "f1");
        let first = batch.for_item(0);
        assert!(IdempotencyKey::parse(first.key.as_str()).is_ok());
        assert!(!first.key.as_str().contains(&longest));
        assert_eq!(first, batch.for_item(0), "stable");
        assert_ne!(first.key, batch.for_item(1).key);
        assert_ne!(first.fingerprint, batch.for_item(1).fingerprint);
        // The same key with another body: the same item keys, other fingerprints (refused).
        let other_body = idempotency(&longest, "f2").for_item(0);
        assert_eq!(other_body.key, first.key);
        assert_ne!(other_body.fingerprint, first.fingerprint);
        assert_ne!(batch.id_source(), idempotency(&longest, "f2").id_source());
        assert_ne!(batch.id_source(), idempotency("k", "f1").id_source());
    }

    #[test]
    fn write_kinds_round_trip_through_their_names() {
        for kind in [WriteKind::Create, WriteKind::Update, WriteKind::Delete] {
            assert_eq!(WriteKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(WriteKind::parse("upsert"), None);
    }
}
