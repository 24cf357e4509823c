//! Delete: one conditional `DeleteItem` for a customer without an email; for one with an email,
//! that `DeleteItem` fails and returns the item, then one transaction deletes the customer and the
//! claim on its email.
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

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use crm_domain::{CustomerId, RepositoryError, Version};

use super::DynamoCustomerRepository;
use super::retry::{Attempt, retry_races};
use super::transaction::{ForeignClaim, cancelled_unexpectedly, names_another, outcomes};
use crate::error::{ItemOutcome, classify};
use crate::item::{PK, customer_pk, item_email_key, item_version, key, n};

impl DynamoCustomerRepository {
    pub(super) async fn delete_unbounded(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        let foreign = &ForeignClaim::default();
        retry_races("delete", move || async move {
            // First try: a customer without an email goes in one conditional delete. When the
            // condition fails, DynamoDB hands back the item, which says why.
            let mut condition =
                String::from("attribute_exists(#pk) AND attribute_not_exists(emailKey)");
            let mut values = None;
            if let Some(version) = expected {
                condition.push_str(" AND version = :expected");
                values = Some(HashMap::from([(":expected".to_owned(), n(version))]));
            }
            let request = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(customer_pk(id))))
                .condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .set_expression_attribute_values(values)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let old = match request.send().await {
                Ok(_) => return Ok(Attempt::Done(())),
                Err(SdkError::ServiceError(failure))
                    if failure.err().is_conditional_check_failed_exception() =>
                {
                    match failure.into_err() {
                        DeleteItemError::ConditionalCheckFailedException(e) => e.item,
                        _ => None,
                    }
                }
                Err(e) => return Err(classify("DeleteItem", &e)),
            };
            let Some(old) = old else {
                return Err(RepositoryError::NotFound);
            };
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
            self.delete_with_claim(id, current, email, expected, foreign)
                .await
        })
        .await
    }

    /// The second step of deleting a customer that has an email: the customer, as of version
    /// `seen`, and its claim go in one transaction. When the claim turns out to be another
    /// customer's, `foreign` remembers it and the next attempt deletes the customer alone.
    async fn delete_with_claim(
        &self,
        id: &CustomerId,
        seen: Version,
        normalized_email: &str,
        expected: Option<Version>,
        foreign: &ForeignClaim,
    ) -> Result<Attempt<()>, RepositoryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(seen))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        let mut actions = vec![TransactWriteItem::builder().delete(delete).build()];
        if !foreign.is(normalized_email) {
            actions.push(self.delete_claim(normalized_email, id)?);
        }
        let Some(reasons) = self.transact(actions).await? else {
            return Ok(Attempt::Done(()));
        };
        match outcomes(&reasons).as_slice() {
            [ItemOutcome::ConditionFailed, ..] => {
                let old = reasons.first().and_then(|(_, item)| item.as_ref());
                match (old.and_then(item_version), expected) {
                    // The customer was already gone.
                    (None, _) => Err(RepositoryError::NotFound),
                    (Some(current), Some(_)) => Err(RepositoryError::VersionConflict { current }),
                    // Changed by another writer since the first look, and no version was asked
                    // for: look again.
                    (Some(_), None) => Ok(Attempt::Changed),
                }
            }
            // The claim names another customer: not ours to delete.
            [ItemOutcome::Fine, ItemOutcome::ConditionFailed]
                if names_another(reasons.get(1), id) =>
            {
                foreign.found(normalized_email, "delete");
                Ok(Attempt::Changed)
            }
            // Another writer was on the items, or the store throttled.
            o if o.contains(&ItemOutcome::Retry) => Ok(Attempt::Retry),
            _ => Err(cancelled_unexpectedly("delete")),
        }
    }
}
