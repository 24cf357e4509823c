//! Create: one conditional `PutItem` for a customer without an email; with an email, one
//! transaction that writes the customer and claims its email, both only if absent (and, under an
//! idempotency key, completes the key's record in the same transaction).
//!
//! The claim is what makes emails unique (a condition cannot look at a GSI), so it must be written
//! in the same atomic step as the customer. The transaction is retried only when another writer was
//! on the items; a failed condition is the answer (the id or the email is taken), unless the item
//! in the way carries this create's own [`WriteToken`]: then an earlier attempt, whose reply was
//! lost, created it, and the create succeeded. The tombstone of a deleted customer does not hold
//! its id: the id can be created again; the put replaces it whole, the tombstone's place in the
//! change feed with it.
//!
//! The item is [`customer_item`]'s: the customer with its listing keys (`shard`, `createdKey`,
//! `updatedKey`, `nameKey`, `firstNameKey`), so that every listing index holds it from the start.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use crm_domain::idempotency::{KeyLease, WriteKind, Written};
use crm_domain::{Customer, RepositoryError};

use super::DynamoCustomerRepository;
use super::idempotency::lease_lost;
use super::retry::{Attempt, retry_races};
use super::token::WriteToken;
use super::transaction::{cancelled_unexpectedly, failed_at, outcomes};
use crate::error::{ItemOutcome, classify};
use crate::item::{KIND_DELETED, PK, claim_item, customer_item, s};

/// The condition of a create: no customer holds the id (none ever did, or it was deleted).
pub(super) const ID_FREE: &str = "attribute_not_exists(#pk) OR kind = :deleted";

/// The values [`ID_FREE`] refers to.
pub(super) fn id_free_values() -> HashMap<String, AttributeValue> {
    HashMap::from([(":deleted".to_owned(), s(KIND_DELETED))])
}

impl DynamoCustomerRepository {
    /// Creates `customer`, completing the key of `lease` in the same step when given.
    pub(super) async fn create_unbounded(
        &self,
        customer: &Customer,
        lease: Option<&KeyLease>,
    ) -> Result<(), RepositoryError> {
        let token = &WriteToken::of(lease);
        if customer.email().is_none() && lease.is_none() {
            self.create_without_email(customer, token).await
        } else {
            self.create_in_transaction(customer, token, lease).await
        }
    }

    async fn create_without_email(
        &self,
        customer: &Customer,
        token: &WriteToken,
    ) -> Result<(), RepositoryError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(token.stamp(customer_item(customer)?)))
            .condition_expression(ID_FREE)
            .expression_attribute_names("#pk", PK)
            .set_expression_attribute_values(Some(id_free_values()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let old = match failure.into_err() {
                    PutItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                if old.is_some_and(|old| token.is_on(&old)) {
                    Ok(())
                } else {
                    Err(RepositoryError::AlreadyExists)
                }
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    /// A create as one transaction: the customer, the claim on its email if it has one, and the
    /// completion of the idempotency key it runs under if any.
    async fn create_in_transaction(
        &self,
        customer: &Customer,
        token: &WriteToken,
        lease: Option<&KeyLease>,
    ) -> Result<(), RepositoryError> {
        retry_races("create", move || async move {
            let mut actions = vec![self.put(
                token.stamp(customer_item(customer)?),
                ID_FREE,
                Some(id_free_values()),
            )?];
            // Where the claim and the key's completion stand among the actions.
            let mut claim_at = None;
            if let Some(email) = customer.email() {
                claim_at = Some(actions.len());
                actions.push(self.put(
                    claim_item(&email.normalized(), customer.id()),
                    "attribute_not_exists(#pk)",
                    None,
                )?);
            }
            let mut key_at = None;
            if let Some(lease) = lease {
                let outcome =
                    Written::Customer(customer.clone()).outcome(WriteKind::Create, customer.id());
                key_at = Some(actions.len());
                actions.push(self.complete_key(lease, &outcome)?);
            }
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(Attempt::Done(()));
            };
            let customer_in_the_way = reasons.first().and_then(|(_, old)| old.as_ref());
            if failed_at(&reasons, Some(0))
                && customer_in_the_way.is_some_and(|old| token.is_on(old))
            {
                // An earlier attempt of this create wrote the customer (and the rest).
                Ok(Attempt::Done(()))
            } else if failed_at(&reasons, Some(0)) {
                Err(RepositoryError::AlreadyExists)
            } else if failed_at(&reasons, claim_at) {
                Err(RepositoryError::EmailTaken)
            } else if failed_at(&reasons, key_at) {
                Err(lease_lost())
            } else if outcomes(&reasons).contains(&ItemOutcome::Retry) {
                Ok(Attempt::Retry)
            } else {
                Err(cancelled_unexpectedly("create"))
            }
        })
        .await
    }
}
