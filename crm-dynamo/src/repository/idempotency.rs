//! Idempotency keys: one item per key, held by a request while it runs, and completed in the very
//! transaction that makes the request's change.
//!
//! `begin` is one conditional `PutItem` of a *held* record (the key is new, or its record expired,
//! or the request that held it ran past its hold and the fingerprint is the same); when the
//! condition fails, the record DynamoDB hands back says what the key is: done (its outcome),
//! running, or used for another request. The keyed write then runs as a transaction with one more
//! action: the *done* record, conditioned on this request still holding the key. So a change never
//! commits without its record, a record never exists without its change, and a request that lost
//! its hold (it ran past it and a retry took the key over) writes nothing at all. A refused write
//! deletes the held record, on the same condition, so that the request can run again.
//!
//! The record holds no customer field: the key's SHA-256 (as its `pk`), the request's
//! fingerprint, the holder's token and hold, and once done the kind of write, the customer's id
//! and the version it made. DynamoDB's time to live removes it 24 hours after the key's first
//! use; until then an expired record counts as absent.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use crm_domain::idempotency::{KEY_RETENTION, KeyLease, KeyState, RecordedOutcome, WriteKind};
use crm_domain::{CustomerId, Idempotency, RepositoryError, Timestamp, Version};

use super::DynamoCustomerRepository;
use crate::error::{DynamoFailure, RETRY_AFTER, classify};
use crate::item::{EXPIRES_AT, Item, PK, key, key_pk, s};

/// The kind of a key's record.
const KIND_KEY: &str = "idempotency";
const HELD: &str = "held";
const DONE: &str = "done";

impl DynamoCustomerRepository {
    pub(super) async fn begin_keyed_unbounded(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError> {
        let now = Timestamp::now();
        let lease = KeyLease {
            idempotency: idempotency.clone(),
            holder: uuid::Uuid::now_v7().simple().to_string(),
            held_until: now.after(hold),
            expires_at: now.after(KEY_RETENTION),
        };
        let mut item = record(&lease, HELD);
        item.insert("holder".to_owned(), s(&lease.holder));
        item.insert("heldUntil".to_owned(), millis(lease.held_until));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // A new key, an expired record, or a hold that ran out on this same request.
            .condition_expression(
                "attribute_not_exists(#pk) OR #expiresAt < :nowSeconds \
                 OR (#state = :held AND heldUntil < :now AND fingerprint = :fingerprint)",
            )
            .set_expression_attribute_names(Some(HashMap::from([
                ("#pk".to_owned(), PK.to_owned()),
                ("#expiresAt".to_owned(), EXPIRES_AT.to_owned()),
                ("#state".to_owned(), "state".to_owned()),
            ])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":nowSeconds".to_owned(), seconds(now)),
                (":held".to_owned(), s(HELD)),
                (":now".to_owned(), millis(now)),
                (
                    ":fingerprint".to_owned(),
                    s(idempotency.fingerprint.as_str()),
                ),
            ])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(KeyState::Fresh(lease)),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                match failure.into_err() {
                    PutItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                }
            }
            Err(e) => return Err(classify("PutItem", &e)),
        };
        let old = old.ok_or_else(|| unreadable("a failed condition returned no record"))?;
        if text(&old, "holder") == Some(lease.holder.as_str()) {
            // This very request's put, sent again after its reply was lost: the key is ours.
            return Ok(KeyState::Fresh(lease));
        }
        if text(&old, "fingerprint") != Some(idempotency.fingerprint.as_str()) {
            return Ok(KeyState::OtherRequest);
        }
        if text(&old, "state") == Some(DONE) {
            return outcome_of(&old).map(KeyState::Done);
        }
        Ok(KeyState::Running)
    }

    /// The action that completes `lease`'s record with `outcome`, on the condition that the
    /// request still holds the key: the last action of a keyed write's transaction.
    pub(super) fn complete_key(
        &self,
        lease: &KeyLease,
        outcome: &RecordedOutcome,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let mut item = record(lease, DONE);
        item.insert("write".to_owned(), s(outcome.kind.as_str()));
        item.insert("customerId".to_owned(), s(outcome.id.as_str()));
        if let Some(version) = outcome.version {
            item.insert("version".to_owned(), crate::item::n(version));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("holder = :holder AND #state = :held")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":held", s(HELD))
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) async fn release_key_unbounded(
        &self,
        lease: &KeyLease,
    ) -> Result<(), RepositoryError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(key_pk(lease.idempotency.key.as_str()))))
            .condition_expression("holder = :holder AND #state = :held")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":held", s(HELD))
            .send()
            .await;
        match delete {
            // Not held by this request any more: not this request's to give back.
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                Ok(())
            }
            Err(e) => Err(classify("DeleteItem", &e)),
            Ok(_) => Ok(()),
        }
    }
}

/// The answer of a keyed write whose request no longer holds its key: nothing was written, and
/// the retry that took the key over answers for it.
pub(super) fn lease_lost() -> RepositoryError {
    RepositoryError::Unavailable {
        retry_after: Some(RETRY_AFTER),
        source: Box::new(DynamoFailure::new(
            "keyed write",
            "the idempotency key's hold ran out; nothing was written",
            None,
        )),
    }
}

/// The attributes every record of `lease`'s key has, in `state`.
fn record(lease: &KeyLease, state: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), s(&key_pk(lease.idempotency.key.as_str()))),
        ("kind".to_owned(), s(KIND_KEY)),
        ("state".to_owned(), s(state)),
        (
            "fingerprint".to_owned(),
            s(lease.idempotency.fingerprint.as_str()),
        ),
        (EXPIRES_AT.to_owned(), seconds(lease.expires_at)),
    ])
}

/// The outcome a done record holds.
fn outcome_of(record: &Item) -> Result<RecordedOutcome, RepositoryError> {
    let kind = text(record, "write")
        .and_then(WriteKind::parse)
        .ok_or_else(|| unreadable("a done record without its kind of write"))?;
    let id = text(record, "customerId")
        .and_then(|id| CustomerId::parse(id).ok())
        .ok_or_else(|| unreadable("a done record without its customer"))?;
    let version = match record.get("version") {
        None => None,
        Some(AttributeValue::N(n)) => Some(
            n.parse::<u64>()
                .ok()
                .and_then(|n| Version::try_from(n).ok())
                .ok_or_else(|| unreadable("a done record with an invalid version"))?,
        ),
        Some(_) => return Err(unreadable("a done record with an invalid version")),
    };
    Ok(RecordedOutcome { kind, id, version })
}

fn text<'i>(item: &'i Item, attribute: &str) -> Option<&'i str> {
    item.get(attribute)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn millis(time: Timestamp) -> AttributeValue {
    AttributeValue::N(time.unix_millis().to_string())
}

fn seconds(time: Timestamp) -> AttributeValue {
    AttributeValue::N((time.unix_millis() / 1000).to_string())
}

fn unreadable(what: &'static str) -> RepositoryError {
    RepositoryError::unexpected(DynamoFailure::new("idempotency record", what, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_done_record_gives_back_its_outcome_and_no_key_in_clear() {
        let lease = KeyLease {
            idempotency: Idempotency {
                key: crm_domain::IdempotencyKey::parse("order-1").unwrap(),
                fingerprint: crm_domain::RequestFingerprint::new("f"),
            },
            holder: "h".to_owned(),
            held_until: Timestamp::now(),
            expires_at: Timestamp::now(),
        };
        let outcome = RecordedOutcome {
            kind: WriteKind::Update,
            id: CustomerId::parse("c1").unwrap(),
            version: Some(Version::FIRST.next()),
        };
        let mut item = record(&lease, DONE);
        item.insert("write".to_owned(), s("update"));
        item.insert("customerId".to_owned(), s("c1"));
        item.insert("version".to_owned(), AttributeValue::N("2".to_owned()));
        assert_eq!(outcome_of(&item).unwrap(), outcome);
        assert!(!format!("{item:?}").contains("order-1"));
    }
}
