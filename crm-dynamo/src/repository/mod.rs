//! `DynamoCustomerRepository`: the port implemented with conditional writes and transactions.
//!
//! One file per operation, each readable top to bottom: [`create`], [`get`] (get and find by
//! email), [`update`], [`delete`], [`list`], [`changes`] (the change feed) and [`bulk`] (the bulk
//! import). What more than one of them needs lives apart: [`transaction`] (the actions and the
//! sending of `TransactWriteItems`), [`retry`] (the one loop that retries lost races, with its
//! limit and backoff) and [`merge`] (the merge of the shards of a listing index).
//!
//! Each operation is written unbounded in time; the [`CustomerRepository`] impl below is only a
//! list of delegations that put each within the repository's deadline, so that no operation can
//! forget it.

mod backfill;
mod bulk;
mod changes;
mod claims;
mod create;
mod cursor_key;
pub(crate) use cursor_key::CURSOR_KEY_PK;
mod delete;
mod describe;
mod expression;
mod get;
mod idempotency;
mod list;
mod merge;
mod retry;
mod token;
mod transaction;
mod update;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use crm_domain::idempotency::{KeyLease, KeyState, KeyedWrite, Written};
use crm_domain::{
    BulkReport, Cursor, CursorKey, Customer, CustomerId, CustomerPatch, CustomerRepository, Email,
    Idempotency, Page, PageLimit, RepositoryError, Timestamp, Version,
};
use tokio::sync::OnceCell;

pub use backfill::{
    Backfill, BackfillError, BackfillPosition, BackfillReport, InvalidBackfillPosition,
};
pub use claims::{
    ClaimFinding, ClaimProblem, ClaimRepair, ClaimsCheck, ClaimsError, ClaimsPosition,
    ClaimsReport, InvalidClaimsPosition,
};
pub use describe::{
    IndexDescription, KeySchema, StreamDescription, TableDescription, TableDifference,
    TimeToLiveDescription,
};

use crate::error::{DynamoFailure, RETRY_AFTER};
use crate::item::{customer_pk, key};
use crate::settings::DynamoSettings;

/// The deadline of one repository operation when the caller sets none.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// How long the tombstone of a deleted customer stays when the caller sets nothing: 30 days.
const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_hours(30 * 24);

/// Customers in one DynamoDB table; see the [crate docs](crate) for the layout.
#[derive(Debug, Clone)]
pub struct DynamoCustomerRepository {
    client: Client,
    table: String,
    /// The most one operation may take, all its requests and retries included (for a bulk import:
    /// each chunk of it).
    deadline: Duration,
    /// How long the tombstone of a deleted customer stays before DynamoDB's time to live removes
    /// it.
    tombstone_retention: Duration,
    /// The key that seals listing cursors, read from the table on first use (see [`cursor_key`]);
    /// shared by the clones of this repository.
    cursor_key: Arc<OnceCell<CursorKey>>,
}

impl DynamoCustomerRepository {
    /// A repository on the table of `settings`, with an SDK client built from them. No request is
    /// made: build it once per process (per Lambda cold start) and share it.
    pub async fn connect(settings: &DynamoSettings) -> Self {
        let config = settings.sdk_config().await;
        Self::from_client(Client::from_conf(config), settings.table_name())
            .with_deadline(settings.operation_timeout())
    }

    /// A repository on `table` through an SDK client the caller configured, with a deadline of 3 s
    /// per operation. The caller's client should carry the timeouts and retry rules of
    /// [`DynamoSettings::sdk_config`], which [`connect`](Self::connect) uses.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            deadline: DEFAULT_DEADLINE,
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
            cursor_key: Arc::default(),
        }
    }

    /// The same repository sealing its cursors with `key` instead of the key kept in the table
    /// (which it then never reads or writes). Every process serving the table must use the same
    /// key.
    #[must_use]
    pub fn with_cursor_key(mut self, key: CursorKey) -> Self {
        self.cursor_key = Arc::new(OnceCell::new_with(Some(key)));
        self
    }

    /// The same repository with another deadline for one operation, every request and retry
    /// included; past it the operation is [`Unavailable`](RepositoryError::Unavailable).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The same repository keeping the tombstones of deleted customers for `retention` (30 days
    /// unless set) before DynamoDB's time to live removes them (within about two days of expiry).
    #[must_use]
    pub fn with_tombstone_retention(mut self, retention: Duration) -> Self {
        self.tombstone_retention = retention;
        self
    }

    /// Runs one operation within the deadline. The SDK's own timeouts bound each request; this
    /// bounds the whole, which may take several requests (races retried, pages topped up).
    async fn within<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(RepositoryError::Unavailable {
                    retry_after: Some(RETRY_AFTER),
                    source: Box::new(DynamoFailure::new(
                        operation,
                        "gave up at the operation deadline",
                        None,
                    )),
                })
            })
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates this repository's table with [`TABLE`](crate::TABLE)'s layout (local use and tests).
    ///
    /// # Errors
    /// When DynamoDB refuses (the table exists, the endpoint is down).
    pub async fn create_table(&self) -> Result<(), RepositoryError> {
        crate::TABLE.create(&self.client, &self.table).await
    }

    /// Opens a connection to the endpoint (TLS and TCP set-up) so that the first request does not
    /// pay for it. A failure is ignored: the first real request reports it.
    pub async fn warm_up(&self) {
        let _ = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(&warm_up_id()))))
            .send()
            .await;
    }
}

#[async_trait]
impl CustomerRepository for DynamoCustomerRepository {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.within("create", self.create_unbounded(customer, None))
            .await
    }

    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        self.within("get", self.get_unbounded(id)).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        self.within("find by email", self.find_by_email_unbounded(email))
            .await
    }

    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        self.within(
            "update",
            self.update_unbounded(id, patch, expected, now, None),
        )
        .await
    }

    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.within("delete", self.delete_unbounded(id, expected, None))
            .await
    }

    async fn list<'c>(
        &self,
        listing: &crm_domain::Listing,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.within("list", self.list_unbounded(listing, limit, cursor))
            .await
    }

    async fn changes<'c>(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<crm_domain::Change>, RepositoryError> {
        self.within("changes", self.changes_unbounded(since, limit, cursor))
            .await
    }

    /// Bulk imports are bounded per chunk of 50 customers, not as a whole: an import of thousands
    /// takes as long as it takes, but no chunk hangs.
    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError> {
        self.put_many_unbounded(customers).await
    }

    async fn begin_keyed(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError> {
        self.within("begin keyed", self.begin_keyed_unbounded(idempotency, hold))
            .await
    }

    async fn write_keyed(
        &self,
        write: &KeyedWrite,
        lease: &KeyLease,
    ) -> Result<Written, RepositoryError> {
        let lease = Some(lease);
        match write {
            KeyedWrite::Create(customer) => self
                .within("create", self.create_unbounded(customer, lease))
                .await
                .map(|()| Written::Customer(customer.clone())),
            KeyedWrite::Update {
                id,
                patch,
                expected,
                now,
            } => self
                .within(
                    "update",
                    self.update_unbounded(id, patch, *expected, *now, lease),
                )
                .await
                .map(Written::Customer),
            KeyedWrite::Delete { id, expected } => self
                .within("delete", self.delete_unbounded(id, *expected, lease))
                .await
                .map(|()| Written::Deleted),
        }
    }

    async fn release_key(&self, lease: &KeyLease) -> Result<(), RepositoryError> {
        self.within("release key", self.release_key_unbounded(lease))
            .await
    }
}

/// The id the warm-up reads. Any id does: the read only opens the connection, and its answer is
/// dropped.
fn warm_up_id() -> CustomerId {
    CustomerId::parse("__warm-up__").unwrap_or_else(|_| CustomerId::generate())
}
