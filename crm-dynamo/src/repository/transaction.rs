//! What the writes that span two items share: the actions of a `TransactWriteItems` and its
//! sending.
//!
//! A customer with an email is two items (the customer and the claim on its email), and they must
//! change together, so create, update, delete and the bulk import all write through here. A
//! cancelled transaction is not an error but an answer: DynamoDB says, per action, whether its
//! condition failed or another writer was on the item, and each operation reads its own meaning
//! into that.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use crm_domain::{CustomerId, RepositoryError, Version};

use super::DynamoCustomerRepository;
use super::retry::Attempt;
use crate::error::{DynamoFailure, ItemOutcome, classify};
use crate::item::{
    Item, KIND_CUSTOMER, PK, customer_pk, email_pk, is_live, item_version, key, n, s,
};

impl DynamoCustomerRepository {
    /// A conditional put of `item`; the old item comes back when the condition fails.
    pub(super) fn put(
        &self,
        item: Item,
        condition: &str,
        values: Option<HashMap<String, AttributeValue>>,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let names = condition
            .contains("#pk")
            .then(|| HashMap::from([("#pk".to_owned(), PK.to_owned())]));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A check that customer `id` is live at `version`, changing nothing; the item comes back when
    /// it is not.
    pub(super) fn customer_at(
        &self,
        id: &CustomerId,
        version: Version,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .condition_expression("kind = :customer AND version = :seen")
            .expression_attribute_values(":customer", s(KIND_CUSTOMER))
            .expression_attribute_values(":seen", n(version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Releases the claim on `normalized_email`: deletes it on the condition that `id` holds it,
    /// or that there is none.
    ///
    /// A missing claim (lost to a bug, a manual edit, a restore) must never block its customer's
    /// delete or email change, so its absence passes. A claim that names another customer fails
    /// the condition: that customer's claim is not this operation's to delete, and the caller
    /// goes on without it ([`integrity_problem`]).
    pub(super) fn delete_claim(
        &self,
        normalized_email: &str,
        id: &CustomerId,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(normalized_email))))
            .condition_expression("attribute_not_exists(#pk) OR customerId = :id")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":id", s(id.as_str()))
            // What the claim says when it is not this customer's: `names_another` reads it.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Sends a transaction; `Ok(None)` when it committed, `Ok(Some(reasons))` when DynamoDB
    /// cancelled it, with one outcome (and the old item, when asked for) per action.
    pub(super) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<(ItemOutcome, Option<Item>)>>, RepositoryError> {
        self.transact_idempotent(actions, None).await
    }

    /// [`transact`](Self::transact) with a client request token: DynamoDB applies a transaction
    /// sent again with the same token (within ten minutes) at most once, and answers it as it
    /// answered the first.
    pub(super) async fn transact_idempotent(
        &self,
        actions: Vec<TransactWriteItem>,
        token: Option<&str>,
    ) -> Result<Option<Vec<(ItemOutcome, Option<Item>)>>, RepositoryError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .set_client_request_token(token.map(str::to_owned))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(failure))
                if matches!(
                    failure.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    failure.into_err()
                else {
                    return Err(RepositoryError::unexpected(DynamoFailure::new(
                        "TransactWriteItems",
                        "cancelled without reasons",
                        None,
                    )));
                };
                Ok(Some(
                    cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| (ItemOutcome::from_code(r.code()), r.item().cloned()))
                        .collect(),
                ))
            }
            Err(e) => Err(classify("TransactWriteItems", &e)),
        }
    }
}

/// The outcome of each action of a cancelled transaction, in the order of the actions.
/// The answer to a write conditioned on the customer as it was read, refused by `old` (the item
/// DynamoDB handed back, when it is not the write's own): the customer is gone, it is at another
/// version than the one `expected`, or, with none expected, it changed in between: read again.
pub(super) fn refused_by<T>(
    old: Option<&Item>,
    expected: Option<Version>,
) -> Result<Attempt<T>, RepositoryError> {
    match (
        old.filter(|old| is_live(old)).and_then(item_version),
        expected,
    ) {
        (None, _) => Err(RepositoryError::NotFound),
        (Some(current), Some(_)) => Err(RepositoryError::VersionConflict { current }),
        (Some(_), None) => Ok(Attempt::Changed),
    }
}

pub(super) fn outcomes(reasons: &[(ItemOutcome, Option<Item>)]) -> Vec<ItemOutcome> {
    reasons.iter().map(|(outcome, _)| *outcome).collect()
}

/// Whether the action at `at` of a cancelled transaction failed its condition; `false` when there
/// is no such action (`None`: the optional action was left out).
pub(super) fn failed_at(reasons: &[(ItemOutcome, Option<Item>)], at: Option<usize>) -> bool {
    at.and_then(|at| reasons.get(at))
        .is_some_and(|(outcome, _)| *outcome == ItemOutcome::ConditionFailed)
}

/// Whether the claim DynamoDB handed back from a failed release (`reason`, the cancellation reason
/// of the [`delete_claim`](DynamoCustomerRepository::delete_claim) action) names another customer
/// than `id`: the one case where the release is left out, decided on what the claim itself says.
pub(super) fn names_another(reason: Option<&(ItemOutcome, Option<Item>)>, id: &CustomerId) -> bool {
    let Some((ItemOutcome::ConditionFailed, Some(claim))) = reason else {
        return false;
    };
    claim
        .get("customerId")
        .and_then(|owner| owner.as_s().ok())
        .is_some_and(|owner| owner != id.as_str())
}

/// The email, within one operation, whose claim turned out to name another customer: later
/// attempts leave its release out, as long as the customer they read still has that email. Kept
/// per email, not as a flag, so that an email changed by another writer in between is released
/// as usual.
#[derive(Debug, Default)]
pub(super) struct ForeignClaim(Mutex<Option<String>>);

impl ForeignClaim {
    /// Whether the claim on `normalized_email` is known to be another customer's.
    pub(super) fn is(&self, normalized_email: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            == Some(normalized_email)
    }

    /// Records that the claim on `normalized_email` is another customer's, and logs it.
    pub(super) fn found(&self, normalized_email: &str, operation: &'static str) {
        integrity_problem(operation);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(normalized_email.to_owned());
    }
}

/// Logs that the claim on a customer's email names another customer, which only a bug or a manual
/// edit can bring about: the operation goes on and leaves that claim alone. The line names neither
/// the address nor the customers.
fn integrity_problem(operation: &'static str) {
    tracing::error!(
        operation,
        problem = "email-claim-of-another-customer",
        "integrity problem: the claim on a customer's email names another customer; left alone"
    );
}

/// The answer when a condition failed and the item DynamoDB returned does not say why: a bug, not
/// a state of the store.
pub(super) fn cancelled_unexpectedly(operation: &'static str) -> RepositoryError {
    RepositoryError::unexpected(DynamoFailure::new(
        operation,
        "a condition failed that the repository cannot explain",
        None,
    ))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn claim_of(owner: &str) -> Item {
        HashMap::from([("customerId".to_owned(), AttributeValue::S(owner.to_owned()))])
    }

    #[test]
    fn only_a_failed_release_of_a_claim_naming_someone_else_is_another_customers() {
        let ada = CustomerId::parse("ada").unwrap();
        let failed = |item| Some((ItemOutcome::ConditionFailed, item));
        assert!(names_another(
            failed(Some(claim_of("grace"))).as_ref(),
            &ada
        ));
        // Its own claim, no claim returned, or a release that did not fail: not another's.
        assert!(!names_another(failed(Some(claim_of("ada"))).as_ref(), &ada));
        assert!(!names_another(failed(None).as_ref(), &ada));
        assert!(!names_another(
            Some(&(ItemOutcome::Retry, Some(claim_of("grace")))),
            &ada
        ));
        assert!(!names_another(Some(&(ItemOutcome::Fine, None)), &ada));
        assert!(!names_another(None, &ada));
    }

    #[test]
    fn a_foreign_claim_is_remembered_for_its_email_only() {
        let foreign = ForeignClaim::default();
        assert!(!foreign.is("ada@example.com"));
        foreign.found("ada@example.com", "test");
        assert!(foreign.is("ada@example.com"));
        assert!(!foreign.is("countess@example.com"));
    }
}
