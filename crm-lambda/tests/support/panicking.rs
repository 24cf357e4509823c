//! A store that panics when asked for the customer [`PANIC_ID`] and is otherwise the store it wraps:
//! a bug in the store, on demand, for the tests of what a panic inside a request does (the probe
//! binary `panic_probe.rs`, and `tests/lambda`).

use std::sync::Arc;

use async_trait::async_trait;
use crm_domain::idempotency::{KeyLease, KeyState, KeyedWrite, Written};
use crm_domain::{
    BulkReport, Change, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository, Email,
    Idempotency, Listing, Page, PageLimit, RepositoryError, Timestamp, Version,
};
use std::time::Duration;

/// The id whose reading panics.
pub(crate) const PANIC_ID: &str = "panic";

/// Words of the panic message, which must never reach a log line or a response.
pub(crate) const PANIC_SECRET: &str = "Zephyrine Quillfeather";

/// `inner`, but for reading [`PANIC_ID`], which panics.
pub(crate) struct PanicOn(pub(crate) Arc<dyn CustomerRepository>);

#[async_trait]
impl CustomerRepository for PanicOn {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.0.create(customer).await
    }

    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        assert!(
            id.as_str() != PANIC_ID,
            "the store broke on purpose, quoting {PANIC_SECRET}"
        );
        self.0.get(id).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        self.0.find_by_email(email).await
    }

    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        self.0.update(id, patch, expected, now).await
    }

    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.0.delete(id, expected).await
    }

    async fn list<'c>(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.0.list(listing, limit, cursor).await
    }

    async fn changes<'c>(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Change>, RepositoryError> {
        self.0.changes(since, limit, cursor).await
    }

    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError> {
        self.0.put_many(customers).await
    }

    async fn begin_keyed(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError> {
        self.0.begin_keyed(idempotency, hold).await
    }

    async fn write_keyed(
        &self,
        write: &KeyedWrite,
        lease: &KeyLease,
    ) -> Result<Written, RepositoryError> {
        self.0.write_keyed(write, lease).await
    }

    async fn release_key(&self, lease: &KeyLease) -> Result<(), RepositoryError> {
        self.0.release_key(lease).await
    }
}
