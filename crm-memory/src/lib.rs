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

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use crm_domain::{
    BulkRejection, BulkReport, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository,
    Email, Page, PageLimit, RepositoryError, Timestamp, Version, batch_repeats,
};

/// Customers in memory; see the [crate docs](crate).
#[derive(Debug, Default)]
pub struct InMemoryCustomerRepository {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    customers: BTreeMap<CustomerId, Customer>,
    /// Normalized email → the customer that owns it.
    emails: HashMap<String, CustomerId>,
}

impl State {
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
        let mut state = self.write();
        if let Some(conflict) = state.create_conflict(customer) {
            return Err(conflict);
        }
        state.insert(customer.clone());
        Ok(())
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
        let mut state = self.write();
        let current = state.current(id, expected)?;
        let updated = current
            .patched(patch, now)
            .map_err(RepositoryError::InvalidPatch)?;
        let old_email = current.email().map(Email::normalized);
        let new_email = updated.email().map(Email::normalized);
        if let Some(new) = &new_email
            && state.emails.get(new).is_some_and(|owner| owner != id)
        {
            return Err(RepositoryError::EmailTaken);
        }
        if old_email != new_email
            && let Some(old) = old_email
        {
            state.emails.remove(&old);
        }
        state.insert(updated.clone());
        Ok(updated)
    }

    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        let mut state = self.write();
        state.current(id, expected)?;
        if let Some(removed) = state.customers.remove(id)
            && let Some(email) = removed.email()
        {
            state.emails.remove(&email.normalized());
        }
        Ok(())
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
}
