//! An in-memory [`CustomerRepository`] with the same semantics as the DynamoDB one.
//!
//! It backs the local server, the examples and tests of code that embeds `crm-domain`. The whole
//! store sits behind one [`RwLock`]: every operation takes the lock once, checks its conditions and
//! writes, so each is atomic exactly as a DynamoDB conditional write or transaction is. The lock is
//! never held across an `.await`.
//!
//! Customers are kept in a [`BTreeMap`] by id, so a page is a range read that costs by page size, not
//! by store size; a second map from the normalized email to its owner makes uniqueness and lookup by
//! email O(1)-ish.
//!
//! ```
//! use std::sync::Arc;
//! use crm_domain::CustomerService;
//! use crm_memory::InMemoryCustomerRepository;
//!
//! let service = CustomerService::new(Arc::new(InMemoryCustomerRepository::new()));
//! # let _ = service;
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use crm_domain::idempotency::{
    KEY_RETENTION, KeyLease, KeyState, KeyedWrite, RecordedOutcome, Written,
};
use crm_domain::{
    BulkRejection, BulkReport, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository,
    Email, Idempotency, IdempotencyKey, Page, PageLimit, RepositoryError, RequestFingerprint,
    Timestamp, Version, batch_repeats,
};

/// Customers in memory; see the [crate docs](crate).
#[derive(Debug)]
pub struct InMemoryCustomerRepository {
    state: RwLock<State>,
    /// How long the tombstone of a deleted customer stays in the change feed.
    tombstone_retention: Duration,
}

impl Default for InMemoryCustomerRepository {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
        }
    }
}

/// How long a tombstone stays when the caller sets nothing: 30 days.
const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

#[derive(Debug, Default)]
struct State {
    customers: BTreeMap<CustomerId, Customer>,
    /// Normalized email → the customer that owns it.
    emails: HashMap<String, CustomerId>,
    /// Idempotency keys, with what their requests did.
    keys: HashMap<IdempotencyKey, KeyRecord>,
    /// The keys in the order they expire (all live [`KEY_RETENTION`] from their first use), so
    /// that dropping the expired costs nothing per request.
    key_expiry: VecDeque<(Timestamp, IdempotencyKey)>,
    /// How many keys were handed out: each holder's token is its number.
    holders: u64,
}

/// What the store knows of one idempotency key.
#[derive(Debug)]
struct KeyRecord {
    fingerprint: RequestFingerprint,
    /// The request that holds the key, until when; `None` once the outcome is recorded.
    holder: Option<(String, Timestamp)>,
    expires_at: Timestamp,
    outcome: Option<RecordedOutcome>,
}

impl State {
    fn create(&mut self, customer: &Customer) -> Result<(), RepositoryError> {
        if let Some(conflict) = self.create_conflict(customer) {
            return Err(conflict);
        }
        self.insert(customer.clone());
        Ok(())
    }

    fn update(
        &mut self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        let current = self.current(id, expected)?;
        let updated = current
            .patched(patch, now)
            .map_err(RepositoryError::InvalidPatch)?;
        let old_email = current.email().map(Email::normalized);
        let new_email = updated.email().map(Email::normalized);
        if let Some(new) = &new_email
            && self.emails.get(new).is_some_and(|owner| owner != id)
        {
            return Err(RepositoryError::EmailTaken);
        }
        if old_email != new_email
            && let Some(old) = old_email
        {
            self.emails.remove(&old);
        }
        self.insert(updated.clone());
        Ok(updated)
    }

    fn delete(
        &mut self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.current(id, expected)?;
        if let Some(removed) = self.customers.remove(id)
            && let Some(email) = removed.email()
        {
            self.emails.remove(&email.normalized());
        }
        Ok(())
    }

    /// Drops the records of the keys that expired by `now`.
    fn expire_keys(&mut self, now: Timestamp) {
        while let Some((expires_at, key)) = self.key_expiry.front() {
            if *expires_at > now {
                break;
            }
            if self.keys.get(key).is_some_and(|r| r.expires_at <= now) {
                self.keys.remove(key);
            }
            self.key_expiry.pop_front();
        }
    }

    /// The record of `lease`'s key, if `lease` still holds it.
    fn held(&mut self, lease: &KeyLease) -> Option<&mut KeyRecord> {
        self.keys.get_mut(&lease.idempotency.key).filter(|record| {
            record
                .holder
                .as_ref()
                .is_some_and(|(holder, _)| *holder == lease.holder)
        })
    }

    /// Why `customer` cannot be inserted, if it cannot.
    fn create_conflict(&self, customer: &Customer) -> Option<RepositoryError> {
        if self.customers.contains_key(customer.id()) {
            return Some(RepositoryError::AlreadyExists);
        }
        customer
            .email()
            .filter(|email| self.emails.contains_key(&email.normalized()))
            .map(|_| RepositoryError::EmailTaken)
    }

    fn insert(&mut self, customer: Customer) {
        if let Some(email) = customer.email() {
            self.emails
                .insert(email.normalized(), customer.id().clone());
        }
        self.customers.insert(customer.id().clone(), customer);
    }

    fn current(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<&Customer, RepositoryError> {
        let current = self.customers.get(id).ok_or(RepositoryError::NotFound)?;
        match expected {
            Some(version) if version != current.version() => {
                Err(RepositoryError::VersionConflict {
                    current: current.version(),
                })
            }
            _ => Ok(current),
        }
    }
}

impl InMemoryCustomerRepository {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store keeping the tombstones of deleted customers for `retention` (30 days unless
    /// set) in the change feed.
    #[must_use]
    pub fn with_tombstone_retention(mut self, retention: Duration) -> Self {
        self.tombstone_retention = retention;
        self
    }

    /// How many customers the store holds.
    pub fn len(&self) -> usize {
        self.read().customers.len()
    }

    /// True when the store holds no customer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while the lock is held cannot leave the state half-written (every write happens after
    // all checks), so a poisoned lock is still sound to use.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl CustomerRepository for InMemoryCustomerRepository {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.write().create(customer)
    }

    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        Ok(self.read().customers.get(id).cloned())
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        let state = self.read();
        Ok(state
            .emails
            .get(&email.normalized())
            .and_then(|id| state.customers.get(id))
            .cloned())
    }

    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        self.write().update(id, patch, expected, now)
    }

    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.write().delete(id, expected)
    }

    async fn list<'c>(
        &self,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        let start = match cursor {
            None => Bound::Unbounded,
            Some(cursor) => {
                let position = cursor.decode().ok_or(RepositoryError::InvalidCursor)?;
                let id =
                    CustomerId::parse(&position).map_err(|_| RepositoryError::InvalidCursor)?;
                Bound::Excluded(id)
            }
        };
        let state = self.read();
        // One more than the page tells whether a next page exists.
        let mut items: Vec<Customer> = state
            .customers
            .range((start, Bound::Unbounded))
            .take(limit.get() + 1)
            .map(|(_, c)| c.clone())
            .collect();
        let next_cursor = if items.len() > limit.get() {
            items.truncate(limit.get());
            items.last().map(|c| Cursor::encode(c.id().as_str()))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError> {
        let repeats = batch_repeats(customers);
        let mut state = self.write();
        let mut report = BulkReport::default();
        for (customer, repeat) in customers.iter().zip(repeats) {
            let rejection = repeat.or_else(|| match state.create_conflict(customer)? {
                RepositoryError::EmailTaken => Some(BulkRejection::EmailTaken),
                _ => Some(BulkRejection::AlreadyExists),
            });
            match rejection {
                None => {
                    state.insert(customer.clone());
                    report.created += 1;
                }
                Some(reason) => report.rejected.push((customer.id().clone(), reason)),
            }
        }
        Ok(report)
    }

    async fn begin_keyed(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError> {
        let now = Timestamp::now();
        let mut state = self.write();
        state.expire_keys(now);
        state.holders += 1;
        let holder = state.holders.to_string();
        let held_until = now.after(hold);
        let expires_at = match state.keys.get_mut(&idempotency.key) {
            None => {
                let expires_at = now.after(KEY_RETENTION);
                state.keys.insert(
                    idempotency.key.clone(),
                    KeyRecord {
                        fingerprint: idempotency.fingerprint.clone(),
                        holder: Some((holder.clone(), held_until)),
                        expires_at,
                        outcome: None,
                    },
                );
                state
                    .key_expiry
                    .push_back((expires_at, idempotency.key.clone()));
                expires_at
            }
            Some(record) if record.fingerprint != idempotency.fingerprint => {
                return Ok(KeyState::OtherRequest);
            }
            Some(KeyRecord {
                outcome: Some(outcome),
                ..
            }) => return Ok(KeyState::Done(outcome.clone())),
            Some(KeyRecord {
                holder: Some((_, until)),
                ..
            }) if *until > now => return Ok(KeyState::Running),
            // Held by a request whose hold ran out: this request takes it over, and the record
            // is kept 24 hours from now, as a new one (DynamoDB's record is written anew too).
            Some(record) => {
                let expires_at = now.after(KEY_RETENTION);
                record.holder = Some((holder.clone(), held_until));
                record.expires_at = expires_at;
                state
                    .key_expiry
                    .push_back((expires_at, idempotency.key.clone()));
                expires_at
            }
        };
        Ok(KeyState::Fresh(KeyLease {
            idempotency: idempotency.clone(),
            holder,
            held_until,
            expires_at,
        }))
    }

    async fn write_keyed(
        &self,
        write: &KeyedWrite,
        lease: &KeyLease,
    ) -> Result<Written, RepositoryError> {
        let mut state = self.write();
        if state.held(lease).is_none() {
            return Err(RepositoryError::unavailable(
                "the idempotency key is no longer held by this request",
            ));
        }
        let (id, written) = match write {
            KeyedWrite::Create(customer) => {
                state.create(customer)?;
                (customer.id(), Written::Customer(customer.clone()))
            }
            KeyedWrite::Update {
                id,
                patch,
                expected,
                now,
            } => (
                id,
                Written::Customer(state.update(id, patch, *expected, *now)?),
            ),
            KeyedWrite::Delete { id, expected } => {
                state.delete(id, *expected)?;
                (id, Written::Deleted)
            }
        };
        let outcome = written.outcome(write.kind(), id);
        if let Some(record) = state.held(lease) {
            record.holder = None;
            record.outcome = Some(outcome);
        }
        Ok(written)
    }

    async fn release_key(&self, lease: &KeyLease) -> Result<(), RepositoryError> {
        let mut state = self.write();
        if state.held(lease).is_some() {
            state.keys.remove(&lease.idempotency.key);
        }
        Ok(())
    }
}
