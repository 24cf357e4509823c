//! Update (a merge patch): one conditional `UpdateItem` when the email is left alone; a read and a
//! transaction when it is set or cleared.
//!
//! Leaving the email alone, the patch becomes one update expression, conditioned on the customer
//! existing (and on the expected version, and on an address to merge into), and DynamoDB returns
//! the new item. Changing the email must move its claim in the same atomic step, and a transaction
//! returns no item and needs the old email (the old claim's key), so the customer is read first and
//! written whole, on the condition that its version has not moved since; a change in between makes
//! the attempt start again, never overwrite.
//!
//! Both stamp the customer with the operation's [`WriteToken`], and the single `UpdateItem` is
//! conditioned on the customer not carrying it yet: a resent patch whose first attempt was applied
//! fails its condition and answers the customer that attempt made, never applies twice.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use crm_domain::idempotency::{KeyLease, WriteKind, Written};
use crm_domain::{
    AddressPatch, Customer, CustomerId, CustomerPatch, Email, Patch, RepositoryError, Timestamp,
    Version,
};

use super::DynamoCustomerRepository;
use super::expression::UpdateExpression;
use super::idempotency::lease_lost;
use super::retry::{Attempt, retry_races};
use super::token::WriteToken;
use super::transaction::{
    ForeignClaim, cancelled_unexpectedly, failed_at, names_another, outcomes,
};
use crate::error::{ItemOutcome, classify};
use crate::item::{
    ADDRESS_ATTRIBUTES, ADDRESS_LINE1, Item, KIND_CUSTOMER, WRITE_TOKEN, claim_item,
    customer_from_item, customer_item, customer_pk, is_live, item_has_address, item_version, key,
    n, s,
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
        let token = &WriteToken::new();
        if patch.email.is_keep() && lease.is_none() {
            self.update_in_place(id, patch, expected, now, token).await
        } else {
            self.update_in_transaction(id, patch, expected, now, token, lease)
                .await
        }
    }

    /// A patch that leaves the email alone: one `UpdateItem` that sets and removes the patched
    /// attributes, bumps the version, stamps the token and returns the new item.
    async fn update_in_place(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
        token: &WriteToken,
    ) -> Result<Customer, RepositoryError> {
        let mut update = UpdateExpression::default();
        update.add_version_bump(now);
        update.set(WRITE_TOKEN, token.value());
        if let Some(name) = &patch.first_name {
            update.set("firstName", s(name.as_str()));
        }
        if let Some(name) = &patch.last_name {
            update.set("lastName", s(name.as_str()));
        }
        update.patch("phone", &patch.phone, |p| s(p.as_str()));
        let needs_address = match &patch.address {
            Patch::Keep => false,
            Patch::Clear => {
                for attribute in ADDRESS_ATTRIBUTES {
                    update.remove(attribute);
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
        if needs_address {
            condition.push_str(" AND attribute_exists(#addressLine1)");
            update
                .names
                .insert("#addressLine1".to_owned(), ADDRESS_LINE1.to_owned());
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
            Ok(output) => customer_from_item(output.attributes.unwrap_or_default()),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let old = match failure.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                if let Some(old) = old.as_ref().filter(|old| token.is_on(old)) {
                    // An earlier attempt of this patch was applied: this is its customer.
                    return customer_from_item(old.clone());
                }
                Err(explain_failed_condition(
                    old.as_ref(),
                    expected,
                    needs_address,
                ))
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }

    /// A patch that sets or clears the email, or runs under an idempotency key: the uniqueness
    /// claims (and the key's record) must change in the same atomic step as the customer, and
    /// DynamoDB transactions return no item, so the customer is read first and written whole, on
    /// the condition that its version has not moved since.
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
            let old_email = current.email().map(Email::normalized);
            let new_email = next.email().map(Email::normalized);
            let values = HashMap::from([
                (":seen".to_owned(), n(current.version())),
                (":customer".to_owned(), s(KIND_CUSTOMER)),
            ]);
            let mut actions = vec![self.put(
                token.stamp(customer_item(&next)?),
                "kind = :customer AND version = :seen",
                Some(values),
            )?];
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
                let outcome = Written::Customer(next.clone()).outcome(WriteKind::Update, id);
                key_at = Some(actions.len());
                actions.push(self.complete_key(lease, &outcome)?);
            }
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(Attempt::Done(next));
            };
            let outcomes = outcomes(&reasons);
            match outcomes.first() {
                Some(ItemOutcome::ConditionFailed) => {
                    // The customer changed or went away after it was read, or an earlier attempt
                    // of this transaction was applied.
                    let old = reasons.first().and_then(|(_, item)| item.as_ref());
                    if let Some(old) = old.filter(|old| token.is_on(old)) {
                        return Ok(Attempt::Done(customer_from_item(old.clone())?));
                    }
                    match (
                        old.filter(|old| is_live(old)).and_then(item_version),
                        expected,
                    ) {
                        (None, _) => Err(RepositoryError::NotFound),
                        (Some(current), Some(_)) => {
                            Err(RepositoryError::VersionConflict { current })
                        }
                        // No version was asked for: patch the customer as it is now.
                        (Some(_), None) => Ok(Attempt::Changed),
                    }
                }
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

/// Why a conditional `UpdateItem` failed, from the old item DynamoDB returned.
fn explain_failed_condition(
    old: Option<&Item>,
    expected: Option<Version>,
    needs_address: bool,
) -> RepositoryError {
    let Some(old) = old.filter(|old| is_live(old)) else {
        return RepositoryError::NotFound;
    };
    let current = item_version(old);
    match (current, expected) {
        (Some(current), Some(expected)) if current != expected => {
            RepositoryError::VersionConflict { current }
        }
        _ if needs_address && !item_has_address(old) => {
            RepositoryError::InvalidPatch(AddressPatch::line1_required())
        }
        _ => cancelled_unexpectedly("update"),
    }
}
