//! Update (a merge patch): one conditional `UpdateItem` when the email is left alone; a read and a
//! transaction when it is set or cleared.
//!
//! Leaving the email alone, the patch becomes one update expression, conditioned on the customer
//! existing (and on the expected version, and on an address to merge into), and DynamoDB returns
//! the new item. Changing the email must move its claim in the same atomic step, and a transaction
//! returns no item and needs the old email (the old claim's key), so the customer is read first and
//! written whole, on the condition that its version has not moved since; a change in between makes
//! the attempt start again, never overwrite.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use crm_domain::{
    AddressPatch, Customer, CustomerId, CustomerPatch, Email, Patch, RepositoryError, Timestamp,
    Version,
};

use super::DynamoCustomerRepository;
use super::retry::{Attempt, retry_races};
use super::transaction::{ForeignClaim, cancelled_unexpectedly, names_another, outcomes};
use crate::error::{ItemOutcome, classify};
use crate::item::{
    ADDRESS_ATTRIBUTES, ADDRESS_LINE1, Item, PK, claim_item, customer_from_item, customer_item,
    customer_pk, item_has_address, item_version, key, n, s,
};

impl DynamoCustomerRepository {
    pub(super) async fn update_unbounded(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        if patch.email.is_keep() {
            self.update_in_place(id, patch, expected, now).await
        } else {
            self.update_with_claims(id, patch, expected, now).await
        }
    }

    /// A patch that leaves the email alone: one `UpdateItem` that sets and removes the patched
    /// attributes, bumps the version and returns the new item.
    async fn update_in_place(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        let mut update = UpdateExpression::default();
        update.add_version_bump(now);
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
        let mut condition = String::from("attribute_exists(#pk)");
        update.names.insert("#pk".to_owned(), PK.to_owned());
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
                Err(explain_failed_condition(
                    old.as_ref(),
                    expected,
                    needs_address,
                ))
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }

    /// A patch that sets or clears the email: the uniqueness claims must change in the same atomic
    /// step as the customer, and DynamoDB transactions return no item, so the customer is read
    /// first and written whole, on the condition that its version has not moved since.
    async fn update_with_claims(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        let foreign = &ForeignClaim::default();
        retry_races("update", move || async move {
            let item = self.get_item(id).await?.ok_or(RepositoryError::NotFound)?;
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
            let values = HashMap::from([(":seen".to_owned(), n(current.version()))]);
            let mut actions = vec![self.put(
                customer_item(&next)?,
                "attribute_exists(#pk) AND version = :seen",
                Some(values),
            )?];
            // Where the release of the old claim stands among the actions, and that email.
            let mut release = None;
            if old_email != new_email {
                if let Some(new) = &new_email {
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
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(Attempt::Done(next));
            };
            let outcomes = outcomes(&reasons);
            match outcomes.first() {
                Some(ItemOutcome::ConditionFailed) => {
                    // The customer changed or went away after it was read.
                    let old = reasons.first().and_then(|(_, item)| item.as_ref());
                    match (old.and_then(item_version), expected) {
                        (None, _) => Err(RepositoryError::NotFound),
                        (Some(current), Some(_)) => {
                            Err(RepositoryError::VersionConflict { current })
                        }
                        // No version was asked for: patch the customer as it is now.
                        (Some(_), None) => Ok(Attempt::Changed),
                    }
                }
                _ if new_email.is_some()
                    && outcomes.get(1) == Some(&ItemOutcome::ConditionFailed) =>
                {
                    Err(RepositoryError::EmailTaken)
                }
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
    let Some(old) = old else {
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

/// An update expression under construction: attribute names go through `#name` placeholders
/// (several customer attributes are DynamoDB reserved words) and values through `:name`.
#[derive(Default)]
struct UpdateExpression {
    sets: Vec<String>,
    removes: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateExpression {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        self.values.insert(format!(":{attribute}"), value);
        self.sets.push(format!("{name} = :{attribute}"));
    }

    fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        self.removes.push(name);
    }

    fn patch<T>(
        &mut self,
        attribute: &str,
        patch: &Patch<T>,
        value: impl Fn(&T) -> AttributeValue,
    ) {
        match patch {
            Patch::Keep => {}
            Patch::Clear => self.remove(attribute),
            Patch::Set(v) => self.set(attribute, value(v)),
        }
    }

    fn add_version_bump(&mut self, now: Timestamp) {
        let version = self.name("version");
        self.values
            .insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        self.sets.push(format!("{version} = {version} + :one"));
        self.set("updatedAt", s(&now.to_string()));
    }

    /// Adds an address merge; true when the customer must already have an address (no `line1`).
    fn address(&mut self, patch: &AddressPatch) -> bool {
        let [line1, line2, city, region, postal_code, country] = ADDRESS_ATTRIBUTES;
        if let Some(text) = &patch.line1 {
            self.set(line1, s(text.as_str()));
        }
        self.patch(line2, &patch.line2, |t| s(t.as_str()));
        self.patch(city, &patch.city, |t| s(t.as_str()));
        self.patch(region, &patch.region, |t| s(t.as_str()));
        self.patch(postal_code, &patch.postal_code, |t| s(t.as_str()));
        self.patch(country, &patch.country, |c| s(c.as_str()));
        patch.line1.is_none()
    }

    fn expression(&self) -> String {
        let mut expression = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&self.removes.join(", "));
        }
        expression
    }
}
