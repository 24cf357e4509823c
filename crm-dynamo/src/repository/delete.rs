//! Delete: the customer item becomes its tombstone, which keeps only the id, the version the
//! delete made and the time, with the time's place in the change feed (`shard` and `updatedKey`:
//! `byUpdated` holds tombstones), until DynamoDB's time to live removes it. For a customer without
//! an email that is one conditional `UpdateItem`; for one with an email, that `UpdateItem` fails
//! and returns the item, then one transaction writes the tombstone and releases the claim on the
//! email.
//!
//! Why a tombstone rather than no item: a resent delete whose first attempt was applied must tell
//! its own delete from another's, and "no item" cannot; the tombstone carries the delete's
//! [`WriteToken`]. It holds no customer data (every data attribute is removed, the order keys
//! made of the names and the creation time with them, so the other listing indexes drop it), it is
//! not a customer to any read, patch or listing, the change feed shows it as a deletion, and a
//! create of the same id replaces it.
//!
//! The claim's key is the email, which only the item knows, and leaving claims behind would keep a
//! trace of every deleted customer's email (we chose erasure). So the first request is the whole
//! delete when it can be, and otherwise the read that names the claim: its failed condition hands
//! back the item. The transaction is conditioned on the version that item had, so a change in
//! between makes the attempt start again, never delete a customer the caller has not seen.
//!
//! A missing claim does not stop the delete (its release passes when there is none); a claim that
//! names another customer is logged as an integrity problem and left alone, and the customer is
//! deleted without it.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use crm_domain::idempotency::{KeyLease, WriteKind, Written};
use crm_domain::{CustomerId, RepositoryError, Timestamp, Version};

use super::DynamoCustomerRepository;
use super::expression::UpdateExpression;
use super::idempotency::lease_lost;
use super::retry::{Attempt, retry_races};
use super::token::WriteToken;
use super::transaction::{
    ForeignClaim, cancelled_unexpectedly, failed_at, names_another, outcomes, refused_by,
};
use crate::error::{ItemOutcome, classify};
use crate::item::{
    EXPIRES_AT, Item, KIND_CUSTOMER, KIND_DELETED, WRITE_TOKEN, customer_pk, data_attributes,
    is_live, item_email_key, item_version, key, n, s,
};

impl DynamoCustomerRepository {
    /// Deletes customer `id`, completing the key of `lease` in the same step when given.
    pub(super) async fn delete_unbounded(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
        lease: Option<&KeyLease>,
    ) -> Result<(), RepositoryError> {
        let token = &WriteToken::of(lease);
        let foreign = &ForeignClaim::default();
        let keyed = &Keyed { token, lease };
        retry_races("delete", move || async move {
            // First try: a customer without an email goes in one conditional update (a
            // transaction with the key's completion under an idempotency key). When the
            // condition fails, DynamoDB hands back the item, which says why.
            let old = match self.first_try(id, expected, token, lease).await? {
                FirstTry::Done => return Ok(Attempt::Done(())),
                FirstTry::Retry => return Ok(Attempt::Retry),
                FirstTry::Refused(old) => old,
            };
            let Some(old) = old else {
                return Err(RepositoryError::NotFound);
            };
            if token.is_on(&old) {
                // An earlier attempt of this delete was applied, its reply lost.
                return Ok(Attempt::Done(()));
            }
            if !is_live(&old) {
                return Err(RepositoryError::NotFound);
            }
            let current = item_version(&old).ok_or_else(|| cancelled_unexpectedly("delete"))?;
            if let Some(version) = expected
                && version != current
            {
                return Err(RepositoryError::VersionConflict { current });
            }
            let Some(email) = item_email_key(&old) else {
                // The email went away between the two looks; start again.
                return Ok(Attempt::Changed);
            };
            self.delete_with_claim(id, current, email, expected, keyed, foreign)
                .await
        })
        .await
    }

    /// The first request of a delete: the tombstone, on the condition that the customer has no
    /// email (and is at `expected`).
    async fn first_try(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
        token: &WriteToken,
        lease: Option<&KeyLease>,
    ) -> Result<FirstTry, RepositoryError> {
        let mut tombstone = self.tombstone(id, token);
        let mut condition = String::from("#kind = :customer AND attribute_not_exists(#emailKey)");
        if let Some(version) = expected {
            condition.push_str(" AND #version = :expected");
            tombstone.values.insert(":expected".to_owned(), n(version));
        }
        if let Some(lease) = lease {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(customer_pk(id))))
                .update_expression(tombstone.expression())
                .condition_expression(condition)
                .set_expression_attribute_names(Some(tombstone.names))
                .set_expression_attribute_values(Some(tombstone.values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(RepositoryError::unexpected)?;
            let outcome = Written::Deleted.outcome(WriteKind::Delete, id);
            let actions = vec![
                TransactWriteItem::builder().update(update).build(),
                self.complete_key(lease, &outcome)?,
            ];
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(FirstTry::Done);
            };
            return match outcomes(&reasons).as_slice() {
                [ItemOutcome::ConditionFailed, _] => Ok(FirstTry::Refused(
                    reasons.into_iter().next().and_then(|(_, item)| item),
                )),
                [_, ItemOutcome::ConditionFailed] => Err(lease_lost()),
                o if o.contains(&ItemOutcome::Retry) => Ok(FirstTry::Retry),
                _ => Err(cancelled_unexpectedly("delete")),
            };
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .update_expression(tombstone.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(tombstone.names))
            .set_expression_attribute_values(Some(tombstone.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match request.send().await {
            Ok(_) => Ok(FirstTry::Done),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                Ok(FirstTry::Refused(match failure.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                }))
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }

    /// The update that turns a customer item into its tombstone: the kind changes, the version
    /// goes up by one, the time (`updatedAt`, and `updatedKey`, its place in the change feed) and
    /// this delete's token are set, every data attribute goes (the order keys made of the names and
    /// the creation time with them), and the time to live starts. Conditions may use `#kind`,
    /// `#version` and `#emailKey`, and the value `:customer`.
    fn tombstone(&self, id: &CustomerId, token: &WriteToken) -> UpdateExpression {
        let mut update = UpdateExpression::default();
        update.add_version_bump(id, Timestamp::now());
        update.set("kind", s(KIND_DELETED));
        update.set(WRITE_TOKEN, token.value());
        update.set(EXPIRES_AT, expiry(self.tombstone_retention));
        for attribute in data_attributes() {
            update.remove(attribute);
        }
        update
            .values
            .insert(":customer".to_owned(), s(KIND_CUSTOMER));
        update
    }

    /// The second step of deleting a customer that has an email: the customer, as of version
    /// `seen`, becomes its tombstone and its claim goes, in one transaction. When the claim turns
    /// out to be another customer's, `foreign` remembers it and the next attempt deletes the
    /// customer alone.
    async fn delete_with_claim(
        &self,
        id: &CustomerId,
        seen: Version,
        normalized_email: &str,
        expected: Option<Version>,
        Keyed { token, lease }: &Keyed<'_>,
        foreign: &ForeignClaim,
    ) -> Result<Attempt<()>, RepositoryError> {
        let mut tombstone = self.tombstone(id, token);
        tombstone.values.insert(":seen".to_owned(), n(seen));
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .update_expression(tombstone.expression())
            .condition_expression("#kind = :customer AND #version = :seen")
            .set_expression_attribute_names(Some(tombstone.names))
            .set_expression_attribute_values(Some(tombstone.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        let mut actions = vec![TransactWriteItem::builder().update(update).build()];
        let mut release_at = None;
        if !foreign.is(normalized_email) {
            release_at = Some(actions.len());
            actions.push(self.delete_claim(normalized_email, id)?);
        }
        let mut key_at = None;
        if let Some(lease) = lease {
            key_at = Some(actions.len());
            let outcome = Written::Deleted.outcome(WriteKind::Delete, id);
            actions.push(self.complete_key(lease, &outcome)?);
        }
        let Some(reasons) = self.transact(actions).await? else {
            return Ok(Attempt::Done(()));
        };
        match outcomes(&reasons).as_slice() {
            [ItemOutcome::ConditionFailed, ..] => {
                let old: Option<&Item> = reasons.first().and_then(|(_, item)| item.as_ref());
                if old.is_some_and(|old| token.is_on(old)) {
                    // An earlier attempt of this transaction was applied.
                    return Ok(Attempt::Done(()));
                }
                // Gone, at another version, or changed since the first look: look again.
                refused_by(old, expected)
            }
            // The claim names another customer: not ours to delete.
            [ItemOutcome::Fine, ..]
                if failed_at(&reasons, release_at)
                    && release_at.is_some_and(|at| names_another(reasons.get(at), id)) =>
            {
                foreign.found(normalized_email, "delete");
                Ok(Attempt::Changed)
            }
            [ItemOutcome::Fine, ..] if failed_at(&reasons, key_at) => Err(lease_lost()),
            // Another writer was on the items, or the store throttled.
            o if o.contains(&ItemOutcome::Retry) => Ok(Attempt::Retry),
            _ => Err(cancelled_unexpectedly("delete")),
        }
    }
}

/// The time to live of a tombstone written now: `retention` from now, in epoch seconds.
fn expiry(retention: Duration) -> AttributeValue {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    AttributeValue::N((now + retention).as_secs().to_string())
}

/// The write token of one delete and the idempotency key it completes, if any.
struct Keyed<'a> {
    token: &'a WriteToken,
    lease: Option<&'a KeyLease>,
}

/// What the first request of a delete came to.
enum FirstTry {
    /// The customer is a tombstone now.
    Done,
    /// Another writer was on the items: back off and try again.
    Retry,
    /// The condition failed; the item as DynamoDB returned it, if there was one.
    Refused(Option<Item>),
}
