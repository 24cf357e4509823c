//! The storage port: what any customer store MUST do, stated once.
//!
//! Two adapters implement it (`crm-memory`, `crm-dynamo`) and the contract suite in
//! `testkit` proves that they behave alike.

// mockall's generated mock takes `&Option<&Cursor>`, which clippy would rather not see.
#![cfg_attr(any(test, feature = "mock"), allow(clippy::ref_option_ref))]

use std::collections::HashSet;
use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;

use crate::customer::{Customer, CustomerPatch};
use crate::fields::{CustomerId, Email, Timestamp, Version};
use crate::idempotency::{Idempotency, KeyLease, KeyState, KeyedWrite, Written};
use crate::listing::{Change, Listing};
use crate::page::{Cursor, Page, PageLimit};
use crate::validation::ValidationErrors;

/// An error source kept for logs; never shown to clients.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong in a repository, in the domain's words.
///
/// Storage facts (a failed condition, throttling) are translated into these variants inside the
/// adapter. The `Display` text of a variant never holds customer data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// No customer has the id.
    #[error("no customer has this id")]
    NotFound,
    /// A customer with the id already exists; nothing was written.
    #[error("a customer with this id already exists")]
    AlreadyExists,
    /// Another customer has the email address (compared case-insensitively); nothing was written.
    #[error("another customer has this email address")]
    EmailTaken,
    /// The caller expected another version; nothing was written.
    #[error("the customer is at version {current}, not at the version expected")]
    VersionConflict {
        /// The version the customer is at.
        current: Version,
    },
    /// The patch, applied to the stored customer, would make it invalid; nothing was written.
    #[error("the patch would make the customer invalid: {0}")]
    InvalidPatch(ValidationErrors),
    /// The cursor does not decode to a position of this repository, or was made by a page of
    /// another listing (another order, another search, the change feed).
    #[error("the cursor is not one this service issued for this listing")]
    InvalidCursor,
    /// The store is throttling, down or too slow; the operation may be retried.
    #[error("the customer store is unavailable")]
    Unavailable {
        /// When to try again, if the store said.
        retry_after: Option<Duration>,
        /// What the store reported.
        #[source]
        source: BoxError,
    },
    /// A request with the same idempotency key is still running; nothing was written. Retry after
    /// it: the retry gets its outcome.
    #[error("a request with this idempotency key is still running")]
    KeyInUse,
    /// The idempotency key was used for another request (another method, path or body); nothing
    /// was written.
    #[error("this idempotency key was used for another request")]
    KeyReused,
    /// Anything else: a bug or a store answering what it should not. Details go to logs only.
    #[error("unexpected customer store error")]
    Unexpected(#[source] BoxError),
}

impl RepositoryError {
    /// An [`Unavailable`](Self::Unavailable) error without a retry hint.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            retry_after: None,
            source: source.into(),
        }
    }

    /// An [`Unexpected`](Self::Unexpected) error.
    pub fn unexpected(source: impl Into<BoxError>) -> Self {
        Self::Unexpected(source.into())
    }
}

/// Why one customer of a bulk import was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkRejection {
    /// Its id exists already (or appears twice in the batch).
    AlreadyExists,
    /// Its email belongs to another customer (or appears twice in the batch).
    EmailTaken,
}

/// The outcome of [`CustomerRepository::put_many`]: every customer of the batch is counted in
/// exactly one of `created`, `rejected` and `unconfirmed`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BulkReport {
    /// How many customers were written.
    pub created: usize,
    /// The customers not written, each with its reason, in input order.
    pub rejected: Vec<(CustomerId, BulkRejection)>,
    /// The customers whose write was not confirmed, in input order: the store stopped answering
    /// before or while they were sent, so some of them may be written. Importing them again is
    /// safe: one already written is refused as [`BulkRejection::AlreadyExists`], never written
    /// twice. Empty when the import ran to its end.
    pub unconfirmed: Vec<CustomerId>,
}

impl BulkReport {
    /// True when the store stopped answering before the import's end.
    pub fn interrupted(&self) -> bool {
        !self.unconfirmed.is_empty()
    }
}

/// The customers of a batch that repeat the id or the email (case-insensitively) of an earlier
/// customer of the same batch: `Some(reason)` at their index, `None` elsewhere.
///
/// Every repository rejects these before looking at the store, so that a batch is judged alike
/// everywhere: the first occurrence is written if the store allows, the repeats never are.
pub fn batch_repeats(customers: &[Customer]) -> Vec<Option<BulkRejection>> {
    let mut ids = HashSet::new();
    let mut emails = HashSet::new();
    customers
        .iter()
        .map(|c| {
            if !ids.insert(c.id()) {
                Some(BulkRejection::AlreadyExists)
            } else if c.email().is_some_and(|e| !emails.insert(e.normalized())) {
                Some(BulkRejection::EmailTaken)
            } else {
                None
            }
        })
        .collect()
}

/// A store of customers.
///
/// Implementations MUST be safe to share between tasks (`Arc<dyn CustomerRepository>`) and MUST keep
/// every rule below under concurrent use. The contract suite in `testkit` checks each.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CustomerRepository: Send + Sync {
    /// Stores a new customer.
    ///
    /// MUST NOT overwrite anything: the id and the (case-insensitive) email are claimed atomically,
    /// in one step that either writes everything or nothing.
    ///
    /// # Errors
    /// [`AlreadyExists`](RepositoryError::AlreadyExists) when the id is taken,
    /// [`EmailTaken`](RepositoryError::EmailTaken) when another customer has the email,
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError>;

    /// The customer with `id`, or `None`. Reads MUST see every write that completed before them.
    ///
    /// # Errors
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError>;

    /// The customer whose email equals `email` case-insensitively, or `None`. MUST NOT scan the store.
    ///
    /// Unlike [`get`](Self::get), this lookup MAY lag the writes before it by a moment: a store may
    /// answer it from an eventually consistent index (DynamoDB's global secondary indexes typically
    /// catch up within a second). It MUST never return a customer whose stored email differs from
    /// `email` except during that moment, and uniqueness itself never lags: it is enforced by
    /// [`create`](Self::create) and [`update`](Self::update), not by this lookup.
    ///
    /// # Errors
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError>;

    /// Applies `patch` to the customer with `id` in one atomic step, bumping its version by one and
    /// setting `updatedAt` to `now`; returns the customer as stored.
    ///
    /// When `expected` is given, the patch MUST apply only if the customer is at that version. Two
    /// concurrent patches MUST NOT lose either's change. A new email MUST be claimed atomically with
    /// the change; the old one is released. A patch that changes no value
    /// ([`Customer::has_same_fields_as`] the customer it would make) MUST write nothing and
    /// return the customer as stored: no new version, no new `updatedAt`, no change event. The
    /// service answers empty patches itself; a store answers one as such a patch.
    ///
    /// # Errors
    /// [`NotFound`](RepositoryError::NotFound),
    /// [`VersionConflict`](RepositoryError::VersionConflict) when `expected` is stale,
    /// [`EmailTaken`](RepositoryError::EmailTaken),
    /// [`InvalidPatch`](RepositoryError::InvalidPatch) when the patch sets address parts of a customer
    /// without an address and gives no `line1`,
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError>;

    /// Deletes the customer with `id` (at version `expected`, when given) and releases its email.
    ///
    /// # Errors
    /// [`NotFound`](RepositoryError::NotFound),
    /// [`VersionConflict`](RepositoryError::VersionConflict) when `expected` is stale,
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError>;

    /// One page of at most `limit` customers of `listing`, in its order (see
    /// [`listing`](crate::listing)), starting after `cursor` (from the start when `None`).
    ///
    /// Walking from no cursor until `next_cursor` is `None` MUST return every customer of the
    /// listing that existed and did not change throughout the walk exactly once, in order, however
    /// many other customers are written meanwhile. A customer that changes during the walk may
    /// be missed or seen again at its new place when the change moves it (a rename in the name
    /// order, any change in the `updatedAt` order); in the `createdAt` orders, which no change
    /// moves, it appears at most once. A call MUST cost a number of requests and read a number of entries
    /// bounded by `limit`, whatever the store's size: no scan.
    ///
    /// # Errors
    /// [`InvalidCursor`](RepositoryError::InvalidCursor) when `cursor` was not made by a page of
    /// the same listing (another order, another search text, a forged position),
    /// [`Unavailable`](RepositoryError::Unavailable) or
    /// [`Unexpected`](RepositoryError::Unexpected).
    async fn list<'c>(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError>;

    /// One page of at most `limit` changes at or after `since`, in `updatedAt` order (ties by id),
    /// starting after `cursor`: the customers created or changed, and the [tombstones] of those
    /// deleted, as they are now.
    ///
    /// Every change MUST be seen by a walk that starts at or before its time: a customer changed
    /// during a walk moves to its new place and is seen again there. A tombstone is kept for the
    /// repository's retention (30 days unless configured), then dropped; creating the id again
    /// replaces it. Cost is bounded as for [`list`](Self::list).
    ///
    /// [tombstones]: crate::listing::Tombstone
    ///
    /// # Errors
    /// As [`list`](Self::list).
    async fn changes<'c>(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Change>, RepositoryError>;

    /// Stores many new customers, each with [`create`](Self::create)'s rules, in as few round trips as
    /// the store allows. A customer that conflicts is reported in the [`BulkReport`], not written,
    /// and does not stop the others.
    ///
    /// When the store keeps refusing writes after bounded retries, the import stops and the report
    /// says what was written, what was refused and what is [unconfirmed](BulkReport::unconfirmed):
    /// a failure part-way never loses the account of what was committed.
    ///
    /// # Errors
    /// [`Unexpected`](RepositoryError::Unexpected) only.
    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError>;

    /// Begins a write under an idempotency key (see [`idempotency`](crate::idempotency)): what the
    /// store knows of the key, and when it is free, the key held for this request until `hold`
    /// from now.
    ///
    /// A key MUST be held by at most one request at a time; a key whose hold ran out without a
    /// recorded outcome MAY be taken over by a request with the same fingerprint. Records expire
    /// [`KEY_RETENTION`](crate::idempotency::KEY_RETENTION) after the key's first use.
    ///
    /// # Errors
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn begin_keyed(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError>;

    /// Makes `write`, with the rules of [`create`](Self::create), [`update`](Self::update) or
    /// [`delete`](Self::delete), and records its outcome under the key of `lease` in the same
    /// atomic step: either both happen or neither.
    ///
    /// # Errors
    /// Those of the write; [`Unavailable`](RepositoryError::Unavailable) also when the key is no
    /// longer held by `lease` (its hold ran out and another request took it over), in which case
    /// nothing was written.
    async fn write_keyed(
        &self,
        write: &KeyedWrite,
        lease: &KeyLease,
    ) -> Result<Written, RepositoryError>;

    /// Gives back the key of `lease` after its write was refused and changed nothing, so that the
    /// same request sent again runs again. A key no longer held by `lease` is left alone.
    ///
    /// # Errors
    /// [`Unavailable`](RepositoryError::Unavailable) or [`Unexpected`](RepositoryError::Unexpected).
    async fn release_key(&self, lease: &KeyLease) -> Result<(), RepositoryError>;
}
