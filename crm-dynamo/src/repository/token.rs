//! Write tokens: how a write whose reply was lost learns its own outcome.
//!
//! The SDK sends a request again when an attempt times out or meets a 5xx, and DynamoDB may have
//! applied the first attempt: only the reply was lost. Every write of this repository is
//! conditional, so the second attempt meets a condition that the first one made false: the create
//! finds the id taken, the patch with `If-Match` finds the version moved, the delete finds nothing
//! to delete. Answered as they stand, those are a 409, a 412 and a 404 for operations that
//! succeeded; and a patch without `If-Match`, whose condition the first attempt left true, would
//! be applied twice and skip a version.
//!
//! So every write of a customer item stamps it with a token of its own operation (`writeToken`, a
//! fresh UUID per operation, shared by all its attempts; for a keyed request, see below), every patch is conditioned on the item
//! not already carrying its token, and every condition asks DynamoDB to return the item when it
//! fails (`ReturnValuesOnConditionCheckFailure`, which costs no extra request). When a condition
//! fails and the item carries this operation's token, an earlier attempt of this very operation
//! is what the item shows: the operation succeeded, and its answer is read off that item (the
//! created or patched customer, the tombstone of the delete). Transactions also carry a client
//! request token (the SDK's own), with which DynamoDB answers a resent transaction as it answered
//! the first; the write token covers them as well, past the ten minutes that token lasts.
//!
//! Deletes leave a tombstone (see [`delete`](super::delete)) rather than no item, because "no
//! item" cannot tell whose delete it was.
//!
//! A write under an `Idempotency-Key` is one operation however many times its client sends it:
//! its token is derived from the key and the request's fingerprint, so every send shares it. A
//! send that takes over a key whose earlier holder ran out of time then recognizes that holder's
//! write as its own and answers success (the create of a given id, the patch, the delete) instead
//! of the conflict it meets or a second application. On DynamoDB the holder's write and the key's
//! completion commit together, so a takeover finds no such write; DynamoDB Local killed in the
//! middle of a transaction (the crash test) has left the write without the completion. Known
//! limits of that answer: the key's record is not completed by it (a later send of the request
//! waits out the hold, then is answered the same way again); a recognized create answers the
//! customer as this send made it (its timestamps are this send's); a create without an id gets a
//! new id per send, so it is not recognized. A keyed token counts only on an item written less
//! than a key's life ago, so a request sent again after its key expired is a new operation.
//!
//! What a token cannot cover: another writer changing the same customer between the lost reply
//! and its retry (a few hundred milliseconds at most) replaces the token, and the retry then
//! answers as the other writer left the customer: the conflict it made (a 409 or 412), or, for a
//! patch without `If-Match`, a second application on top of it, as if the client had sent it
//! again. Keeping a history of tokens on the item would close that window at the price of a read
//! before every patch; one token per item closes the case that faults actually produce.

use aws_sdk_dynamodb::types::AttributeValue;

use crm_domain::Timestamp;
use crm_domain::idempotency::{Idempotency, KEY_RETENTION, KeyLease};

use crate::item::{Item, WRITE_TOKEN};

/// The token of one write operation; see the [module docs](self).
#[derive(Debug, Clone)]
pub(super) struct WriteToken(String);

impl WriteToken {
    /// A token for a new operation.
    pub(super) fn new() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// The token of the operation that holds `lease`: one of its key's (see the
    /// [module docs](self)), or a new one for an operation without a key.
    pub(super) fn of(lease: Option<&KeyLease>) -> Self {
        lease.map_or_else(Self::new, |lease| Self::of_key(&lease.idempotency))
    }

    /// The token every send of the keyed request `idempotency` shares: a digest of its key and
    /// fingerprint (no client text on the customer's item), marked apart from the UUIDs of
    /// operations without a key.
    fn of_key(idempotency: &Idempotency) -> Self {
        use sha2::{Digest as _, Sha256};
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digest = Sha256::new();
        digest.update(idempotency.key.as_str().as_bytes());
        // A separator no key holds (keys are visible ASCII), so that no two (key, fingerprint)
        // pairs hash the same text.
        digest.update([0]);
        digest.update(idempotency.fingerprint.as_str().as_bytes());
        let mut token = String::from(KEYED);
        for byte in digest.finalize().iter().take(16) {
            token.push(char::from(HEX[usize::from(byte >> 4)]));
            token.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(token)
    }

    /// The token as an attribute value.
    pub(super) fn value(&self) -> AttributeValue {
        AttributeValue::S(self.0.clone())
    }

    /// `item` stamped with this token.
    pub(super) fn stamp(&self, mut item: Item) -> Item {
        item.insert(WRITE_TOKEN.to_owned(), self.value());
        item
    }

    /// Whether `item` was last written by this operation. A keyed request's token counts only on
    /// an item written within a key's life ([`KEY_RETENTION`]) before now: a client that sends the
    /// same request under the same key after its record expired makes a new operation.
    pub(super) fn is_on(&self, item: &Item) -> bool {
        let stamped =
            matches!(item.get(WRITE_TOKEN), Some(AttributeValue::S(token)) if *token == self.0);
        stamped && (!self.0.starts_with(KEYED) || written_lately(item))
    }
}

/// The prefix of a keyed request's token (a UUID's simple form has no `-`).
const KEYED: &str = "key-";

/// Whether `item`'s `updatedAt` is less than [`KEY_RETENTION`] ago.
fn written_lately(item: &Item) -> bool {
    let Some(AttributeValue::S(text)) = item.get("updatedAt") else {
        return false;
    };
    let Ok(written) = Timestamp::parse(text) else {
        return false;
    };
    let age = Timestamp::now()
        .unix_millis()
        .saturating_sub(written.unix_millis());
    u128::try_from(age).is_ok_and(|age| age < KEY_RETENTION.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_carries_the_token_of_the_operation_that_stamped_it_only() {
        let mine = WriteToken::new();
        let other = WriteToken::new();
        let item = mine.stamp(Item::new());
        assert!(mine.is_on(&item));
        assert!(!other.is_on(&item));
        assert!(!mine.is_on(&Item::new()));
        // Each attempt of one operation shares the token; a clone is the same operation.
        assert!(mine.clone().is_on(&item));
    }

    #[test]
    fn every_send_of_a_keyed_request_shares_a_token_and_nothing_else_does() {
        let idempotency = |key: &str, body: &str| Idempotency {
            key: crm_domain::IdempotencyKey::parse(key).unwrap(),
            fingerprint: crm_domain::RequestFingerprint::new(body),
        };
        let written_at = |at: Timestamp| {
            Item::from([("updatedAt".to_owned(), AttributeValue::S(at.to_string()))])
        };
        let first = WriteToken::of_key(&idempotency("k-1", "f-1"));
        let item = first.stamp(written_at(Timestamp::now()));
        assert!(WriteToken::of_key(&idempotency("k-1", "f-1")).is_on(&item));
        assert!(!WriteToken::of_key(&idempotency("k-1", "f-2")).is_on(&item));
        assert!(!WriteToken::of_key(&idempotency("k-2", "f-1")).is_on(&item));
        assert!(!WriteToken::of_key(&idempotency("k-1f", "-1")).is_on(&item));
        assert!(!WriteToken::of(None).is_on(&item));
        assert!(!WriteToken::of(None).is_on(&WriteToken::of(None).stamp(Item::new())));
        // Written longer ago than a key lives, or at no known time: a new operation.
        let day_and_a_bit =
            Timestamp::from_unix_millis(Timestamp::now().unix_millis() - 25 * 60 * 60 * 1000)
                .unwrap();
        assert!(!first.is_on(&first.stamp(written_at(day_and_a_bit))));
        assert!(!first.is_on(&first.stamp(Item::new())));
        // A token without a key does not look at the time.
        let plain = WriteToken::new();
        assert!(plain.is_on(&plain.stamp(written_at(day_and_a_bit))));
    }
}
