//! Create: one conditional `PutItem` for a customer without an email; with an email, one
//! transaction that writes the customer and claims its email, both only if absent.
//!
//! The claim is what makes emails unique (a condition cannot look at a GSI), so it must be written
//! in the same atomic step as the customer. The transaction is retried only when another writer was
//! on the items; a failed condition is the answer (the id or the email is taken).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use crm_domain::{Customer, Email, RepositoryError};

use super::DynamoCustomerRepository;
use super::retry::{Attempt, retry_races};
use super::transaction::{cancelled_unexpectedly, outcomes};
use crate::error::{ItemOutcome, classify};
use crate::item::{PK, claim_item, customer_item};

impl DynamoCustomerRepository {
    pub(super) async fn create_unbounded(
        &self,
        customer: &Customer,
    ) -> Result<(), RepositoryError> {
        match customer.email() {
            None => self.create_without_email(customer).await,
            Some(email) => self.create_with_email(customer, email).await,
        }
    }

    async fn create_without_email(&self, customer: &Customer) -> Result<(), RepositoryError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(customer_item(customer)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(RepositoryError::AlreadyExists),
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn create_with_email(
        &self,
        customer: &Customer,
        email: &Email,
    ) -> Result<(), RepositoryError> {
        retry_races("create", move || async move {
            let actions = vec![
                self.put(customer_item(customer)?, "attribute_not_exists(#pk)", None)?,
                self.put(
                    claim_item(&email.normalized(), customer.id()),
                    "attribute_not_exists(#pk)",
                    None,
                )?,
            ];
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(Attempt::Done(()));
            };
            match outcomes(&reasons).as_slice() {
                [ItemOutcome::ConditionFailed, _] => Err(RepositoryError::AlreadyExists),
                [_, ItemOutcome::ConditionFailed] => Err(RepositoryError::EmailTaken),
                o if o.contains(&ItemOutcome::Retry) => Ok(Attempt::Retry),
                _ => Err(cancelled_unexpectedly("create")),
            }
        })
        .await
    }
}

fn is_condition_failure<R>(error: &SdkError<PutItemError, R>) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}
