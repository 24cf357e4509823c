//! Reads of one customer: by id, one consistent `GetItem`; by email, one `Query` on the `byEmail`
//! index.
//!
//! The read by id is consistent because it is what a client does right after a write, and what an
//! email change reads before its transaction. The lookup by email cannot be: a GSI read never is,
//! which the port allows (uniqueness never depends on it; the email claims do).

use crm_domain::{Customer, CustomerId, Email, RepositoryError};

use super::DynamoCustomerRepository;
use crate::error::classify;
use crate::item::{Item, customer_from_item, customer_pk, is_live, key, s};
use crate::table::EMAIL_INDEX;

impl DynamoCustomerRepository {
    pub(super) async fn get_unbounded(
        &self,
        id: &CustomerId,
    ) -> Result<Option<Customer>, RepositoryError> {
        self.get_item(id)
            .await?
            .filter(is_live)
            .map(customer_from_item)
            .transpose()
    }

    /// The stored item of customer `id`, read consistently, tombstone or not; also the first step
    /// of an email change.
    pub(super) async fn get_item(&self, id: &CustomerId) -> Result<Option<Item>, RepositoryError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(output.item)
    }

    pub(super) async fn find_by_email_unbounded(
        &self,
        email: &Email,
    ) -> Result<Option<Customer>, RepositoryError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(EMAIL_INDEX)
            .key_condition_expression("emailKey = :email")
            .expression_attribute_values(":email", s(&email.normalized()))
            .limit(1)
            .send()
            .await
            .map_err(|e| classify("Query", &e))?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(customer_from_item)
            .transpose()
    }
}
