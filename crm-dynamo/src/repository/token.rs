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
//! fresh UUID per operation, shared by all its attempts), every patch is conditioned on the item
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
//! What a token cannot cover: another writer changing the same customer between the lost reply
//! and its retry (a few hundred milliseconds at most) replaces the token, and the retry then
//! answers as the other writer left the customer: the conflict it made (a 409 or 412), or, for a
//! patch without `If-Match`, a second application on top of it, as if the client had sent it
//! again. Keeping a history of tokens on the item would close that window at the price of a read
//! before every patch; one token per item closes the case that faults actually produce.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::item::{Item, WRITE_TOKEN};

/// The token of one write operation; see the [module docs](self).
#[derive(Debug, Clone)]
pub(super) struct WriteToken(String);

impl WriteToken {
    /// A token for a new operation.
    pub(super) fn new() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
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

    /// Whether `item` was last written by this operation.
    pub(super) fn is_on(&self, item: &Item) -> bool {
        matches!(item.get(WRITE_TOKEN), Some(AttributeValue::S(token)) if *token == self.0)
    }
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
}
