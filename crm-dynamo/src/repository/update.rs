//! Update (a merge patch): one conditional `UpdateItem` when the email is left alone, after a read
//! of the customer when the patch sets one of its names but not the other; a read and a
//! transaction when the email is set or cleared (or the patch runs under an idempotency key).
//!
//! Leaving the email alone, the patch becomes one update expression, conditioned on the customer
//! existing (and on the expected version, and on an address to merge into), and DynamoDB returns
//! the new item. The expression also moves the customer in the `updatedAt` order (`updatedKey`,
//! made of the new time and the id). A patch that sets a name must also rewrite the name keys:
//! `nameKey` is the folded `last first`, `firstNameKey` the folded `first last`, both with the id.
//! Setting both names, the patch holds all they are made of. Setting one, the other is on the
//! stored item, and an update expression cannot join a stored value with a new one: so the
//! customer is read first, and the update is conditioned on the name it did not set being still
//! the one read. Conditioning on that name rather than on the version read keeps concurrent
//! patches from refusing each other: twenty writers renaming one customer at once all go through,
//! each on its own version, as with any other in-place patch; only a change of the other name in
//! between makes the attempt read again.
//!
//! Changing the email must move its claim in the same atomic step, and a transaction returns no
//! item and needs the old email (the old claim's key), so the customer is read first and written
//! whole, every key recomputed, on the condition that its version has not moved since; a change
//! in between makes the attempt start again, never overwrite.
//!
//! A patch that would change no value writes nothing: the `UpdateItem` is also conditioned on one
//! of the fields it sets differing from the stored one, and a failed condition that only this
//! explains answers the customer as it is; a patch that reads first compares the customer it
//! read, and writes nothing (under an idempotency key, only the key's record, with a check that
//! the customer is as read).
//!
//! Every path stamps the customer with the operation's [`WriteToken`]. The `UpdateItem` is
//! conditioned on the customer not carrying it yet, the transaction on the version read, which
//! its own first attempt moved: a resent patch whose first attempt was applied fails its
//! condition, finds its token on the item DynamoDB hands back, and answers the customer that
//! attempt made; it is never applied twice.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use crm_domain::idempotency::{KeyLease, WriteKind, Written};
use crm_domain::{
    AddressPatch, Customer, CustomerId, CustomerPatch, Email, Patch, PersonName, RepositoryError,
    Timestamp, Version,
};

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
    ADDRESS_ATTRIBUTES, ADDRESS_LINE1, Item, KIND_CUSTOMER, WRITE_TOKEN, claim_item,
    customer_from_item, customer_item, customer_pk, is_live, item_has_address, item_version, key,
    n, name_keys, s,
};

impl DynamoCustomerRepository {
    pub(super) async fn update_unbounded(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
        lease: Option<&KeyLease>,
    ) -> Result<Customer, RepositoryError> {
        let token = &WriteToken::of(lease);
        if patch.is_empty() && lease.is_none() {
            // Nothing to set: the customer as it is, at the version expected.
            return self
                .live_customer(id, expected)
                .await
                .map(|(_, current)| current);
        }
        if !patch.email.is_keep() || lease.is_some() {
            return self
                .update_in_transaction(id, patch, expected, now, token, lease)
                .await;
        }
        retry_races("update", move || async move {
            let names = match (&patch.first_name, &patch.last_name) {
                (None, None) => None,
                (Some(first), Some(last)) => Some(Names {
                    keys: name_keys(id, first, last),
                    kept: None,
                }),
                (first, last) => {
                    match self
                        .names_after(id, patch, first.as_ref(), last.as_ref(), expected, now)
                        .await?
                    {
                        Read::Names(names) => Some(names),
                        // What was read is what the patch would make: nothing to write.
                        Read::Unchanged(current) => return Ok(Attempt::Done(current)),
                    }
                }
            };
            self.update_in_place(id, patch, expected, now, token, names.as_ref())
                .await
        })
        .await
    }

    /// The name keys of customer `id` once it has the one name the patch sets (`first` or `last`)
    /// and the stored other one, which the update will be conditioned on; or the customer as read,
    /// when `patch` would change none of its values.
    async fn names_after(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        first: Option<&PersonName>,
        last: Option<&PersonName>,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Read, RepositoryError> {
        let (item, current) = self.live_customer(id, expected).await?;
        if current
            .patched(patch, now)
            .is_ok_and(|next| next.has_same_fields_as(&current))
        {
            return Ok(Read::Unchanged(current));
        }
        let (first, last, kept) = match (first, last) {
            (Some(first), None) => (first, current.last_name(), "lastName"),
            (None, Some(last)) => (current.first_name(), last, "firstName"),
            // Both or neither: the caller reads nothing then.
            _ => return Err(cancelled_unexpectedly("update")),
        };
        let seen = item
            .get(kept)
            .cloned()
            .ok_or_else(|| cancelled_unexpectedly("update"))?;
        Ok(Read::Names(Names {
            keys: name_keys(id, first, last),
            kept: Some((kept, seen)),
        }))
    }

    /// Customer `id` as stored (its item, and the customer), when it is live and at the version
    /// `expected`, if any: known stale, nothing is written.
    async fn live_customer(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(Item, Customer), RepositoryError> {
        let item = self.get_item(id).await?.ok_or(RepositoryError::NotFound)?;
        if !is_live(&item) {
            return Err(RepositoryError::NotFound);
        }
        let current = customer_from_item(item.clone())?;
        if let Some(version) = expected
            && version != current.version()
        {
            return Err(RepositoryError::VersionConflict {
                current: current.version(),
            });
        }
        Ok((item, current))
    }

    /// A patch that leaves the email alone: one `UpdateItem` that sets and removes the patched
    /// attributes, bumps the version (with `updatedKey`), sets the name keys when it sets a name,
    /// stamps the token and returns the new item; [`Attempt::Changed`] when the name that `names`
    /// kept changed since it was read.
    async fn update_in_place(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
        token: &WriteToken,
        names: Option<&Names>,
    ) -> Result<Attempt<Customer>, RepositoryError> {
        let mut update = UpdateExpression::default();
        update.add_version_bump(id, now);
        update.set(WRITE_TOKEN, token.value());
        if let Some(name) = &patch.first_name {
            update.change("firstName", s(name.as_str()));
        }
        if let Some(name) = &patch.last_name {
            update.change("lastName", s(name.as_str()));
        }
        update.patch("phone", &patch.phone, |p| s(p.as_str()));
        let needs_address = match &patch.address {
            Patch::Keep => false,
            Patch::Clear => {
                for attribute in ADDRESS_ATTRIBUTES {
                    update.change_remove(attribute);
                }
                false
            }
            Patch::Set(address) => update.address(address),
        };
        // A live customer, not yet patched by this operation.
        let mut condition = String::from(
            "kind = :customer AND (attribute_not_exists(#writeToken) OR #writeToken <> :writeToken)",
        );
        update
            .values
            .insert(":customer".to_owned(), s(KIND_CUSTOMER));
        if let Some(version) = expected {
            condition.push_str(" AND #version = :expected");
            update.values.insert(":expected".to_owned(), n(version));
        }
        // A patch of values the customer has already writes nothing: no version, no event.
        if let Some(changes) = update.changes_something() {
            condition.push_str(" AND ");
            condition.push_str(&changes);
        }
        if needs_address {
            condition.push_str(" AND attribute_exists(#addressLine1)");
            update
                .names
                .insert("#addressLine1".to_owned(), ADDRESS_LINE1.to_owned());
        }
        // A name written without its keys would leave the customer at its old place in the name
        // order and search.
        debug_assert_eq!(
            names.is_some(),
            patch.first_name.is_some() || patch.last_name.is_some()
        );
        if let Some(names) = names {
            for (attribute, value) in &names.keys {
                update.set(attribute, s(value));
            }
            if let Some((kept, seen)) = &names.kept {
                let name = update.name(kept);
                condition.push_str(" AND ");
                condition.push_str(&name);
                condition.push_str(" = :keptName");
                update.values.insert(":keptName".to_owned(), seen.clone());
            }
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .update_expression(update.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Attempt::Done(customer_from_item(
                output.attributes.unwrap_or_default(),
            )?)),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let old = match failure.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                if let Some(old) = old.as_ref().filter(|old| token.is_on(old)) {
                    // An earlier attempt of this patch was applied: this is its customer.
                    return Ok(Attempt::Done(customer_from_item(old.clone())?));
                }
                explain_failed_condition(
                    old.as_ref(),
                    expected,
                    needs_address,
                    names.and_then(|n| n.kept.as_ref()),
                    (patch, now),
                )
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }

    /// A patch that sets or clears the email, or runs under an idempotency key: the uniqueness
    /// claims (and the key's record) must change in the same atomic step as the customer, and
    /// DynamoDB transactions return no item, so the customer is read first, patched here, and
    /// written whole with every key recomputed, on the condition that its version has not moved
    /// since.
    async fn update_in_transaction(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
        token: &WriteToken,
        lease: Option<&KeyLease>,
    ) -> Result<Customer, RepositoryError> {
        let foreign = &ForeignClaim::default();
        retry_races("update", move || async move {
            let item = self.get_item(id).await?.ok_or(RepositoryError::NotFound)?;
            if token.is_on(&item) {
                // An earlier attempt of this patch was applied, its reply lost.
                return Ok(Attempt::Done(customer_from_item(item)?));
            }
            if !is_live(&item) {
                return Err(RepositoryError::NotFound);
            }
            let current = customer_from_item(item)?;
            if let Some(version) = expected
                && version != current.version()
            {
                return Err(RepositoryError::VersionConflict {
                    current: current.version(),
                });
            }
            let next = current
                .patched(patch, now)
                .map_err(RepositoryError::InvalidPatch)?;
            // A patch that changes no value writes no customer. Under a key it still completes
            // the key's record, so that the same request sent again is answered from it (not run
            // again on a customer changed since), with a check that the customer is as read.
            let unchanged = next.has_same_fields_as(&current);
            if unchanged && lease.is_none() {
                return Ok(Attempt::Done(current));
            }
            let old_email = current.email().map(Email::normalized);
            let new_email = next.email().map(Email::normalized);
            let mut actions = vec![if unchanged {
                self.customer_at(id, current.version())?
            } else {
                let values = HashMap::from([
                    (":seen".to_owned(), n(current.version())),
                    (":customer".to_owned(), s(KIND_CUSTOMER)),
                ]);
                self.put(
                    token.stamp(customer_item(&next)?),
                    "kind = :customer AND version = :seen",
                    Some(values),
                )?
            }];
            let answer = if unchanged { current } else { next };
            // Where the new claim, the release of the old claim (with that email) and the
            // completion of the idempotency key stand among the actions.
            let (mut claim_at, mut release, mut key_at) = (None, None, None);
            if old_email != new_email {
                if let Some(new) = &new_email {
                    claim_at = Some(actions.len());
                    actions.push(self.put(
                        claim_item(new, id),
                        "attribute_not_exists(#pk)",
                        None,
                    )?);
                }
                if let Some(old) = old_email.as_deref().filter(|old| !foreign.is(old)) {
                    release = Some((actions.len(), old));
                    actions.push(self.delete_claim(old, id)?);
                }
            }
            if let Some(lease) = lease {
                let outcome = Written::Customer(answer.clone()).outcome(WriteKind::Update, id);
                key_at = Some(actions.len());
                actions.push(self.complete_key(lease, &outcome)?);
            }
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(Attempt::Done(answer));
            };
            let outcomes = outcomes(&reasons);
            match outcomes.first() {
                // The customer changed or went away after it was read, or an earlier attempt of
                // this transaction was applied.
                Some(ItemOutcome::ConditionFailed) => after_refused_write(
                    reasons.first().and_then(|(_, item)| item.as_ref()),
                    token,
                    expected,
                ),
                _ if failed_at(&reasons, claim_at) => Err(RepositoryError::EmailTaken),
                _ if failed_at(&reasons, key_at) => Err(lease_lost()),
                // The release of the old claim failed, and the claim names another customer: not
                // ours to delete. Change the email without it.
                Some(ItemOutcome::Fine)
                    if release.is_some_and(|(at, _)| names_another(reasons.get(at), id)) =>
                {
                    if let Some((_, old)) = release {
                        foreign.found(old, "update");
                    }
                    Ok(Attempt::Changed)
                }
                _ if outcomes.contains(&ItemOutcome::Retry) => Ok(Attempt::Retry),
                _ => Err(cancelled_unexpectedly("update")),
            }
        })
        .await
    }
}

/// What the read before a one-name patch found.
enum Read {
    /// The name keys to write, and the name to condition the write on.
    Names(Names),
    /// The customer, which the patch would not change.
    Unchanged(Customer),
}

/// The name keys an in-place patch that sets a name writes, and the name it did not set, with its
/// stored value, which the update is conditioned on.
struct Names {
    keys: [(&'static str, String); 2],
    kept: Option<(&'static str, AttributeValue)>,
}

/// The answer of a transaction after a read whose customer's condition failed, from the item
/// DynamoDB handed back: this patch's own earlier attempt (its reply lost), a customer gone, a
/// version moved past the one expected, or, with no version expected, a change in between: read
/// again.
fn after_refused_write(
    old: Option<&Item>,
    token: &WriteToken,
    expected: Option<Version>,
) -> Result<Attempt<Customer>, RepositoryError> {
    if let Some(old) = old.filter(|old| token.is_on(old)) {
        return Ok(Attempt::Done(customer_from_item(old.clone())?));
    }
    // With no version asked for, a change in between means: patch the customer as it is now.
    refused_by(old, expected)
}

/// Why a conditional `UpdateItem` failed, from the old item DynamoDB returned: the patch's answer,
/// [`Attempt::Changed`] when the name it was conditioned on (`kept`) changed since it was read,
/// or, when the patch (with its time) would change no value of the customer, the customer as it
/// is.
fn explain_failed_condition(
    old: Option<&Item>,
    expected: Option<Version>,
    needs_address: bool,
    kept: Option<&(&str, AttributeValue)>,
    (patch, now): (&CustomerPatch, Timestamp),
) -> Result<Attempt<Customer>, RepositoryError> {
    let Some(old) = old.filter(|old| is_live(old)) else {
        return Err(RepositoryError::NotFound);
    };
    let current = item_version(old);
    match (current, expected) {
        (Some(current), Some(expected)) if current != expected => {
            Err(RepositoryError::VersionConflict { current })
        }
        _ if kept.is_some_and(|(name, seen)| old.get(*name) != Some(seen)) => Ok(Attempt::Changed),
        _ if needs_address && !item_has_address(old) => {
            Err(RepositoryError::InvalidPatch(AddressPatch::line1_required()))
        }
        _ => {
            let current = customer_from_item(old.clone())?;
            match current.patched(patch, now) {
                Ok(next) if next.has_same_fields_as(&current) => Ok(Attempt::Done(current)),
                _ => Err(cancelled_unexpectedly("update")),
            }
        }
    }
}
