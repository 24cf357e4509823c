//! An in-memory [`CustomerRepository`] with the same semantics as the DynamoDB one.
//!
//! It backs the local server, the examples and tests of code that embeds `crm-domain`. The whole
//! store sits behind one [`RwLock`]: every operation takes the lock once, checks its conditions and
//! writes, so each is atomic exactly as a DynamoDB conditional write or transaction is. The lock is
//! never held across an `.await`.
//!
//! # Indexes and what they cost
//!
//! Customers are kept in a [`HashMap`] by id, beside a map from the normalized email to its owner
//! (uniqueness and lookup by email). Each order of [`crm_domain::listing`] has an ordered index, a
//! [`BTreeMap`] from the order's key to the customer, changed in the same step as the customer by
//! every write (create, update, delete, bulk import, keyed write):
//!
//! | index | key | answers |
//! | --- | --- | --- |
//! | created | [`created_key`](crm_domain::listing::created_key) | `createdAt`, `-createdAt` |
//! | updated | [`updated_key`] of each customer | `updatedAt`, the change feed |
//! | name | [`name_key`](crm_domain::listing::name_key) | `name`, search by last name |
//! | first name | [`first_name_key`](crm_domain::listing::first_name_key) | search by first name |
//! | deleted | `updated_key` of each tombstone | the change feed |
//!
//! A customer is stored once, with its keys, and shared ([`Arc`](std::sync::Arc)) by the map by id
//! and its four index entries, so that a page reads the customers straight from the index it
//! walks. With `n` customers, a read by id or by email costs O(1); a create or a delete O(log n),
//! one descent of each index (and of the two of tombstones); a patch O(log n) too, but only for
//! the entries whose keys it changes: the version it makes is put in place, inside the value the
//! entries already point to, so a patch that renames nobody moves its `updatedAt` entry and
//! touches no other index. A page of a listing, a name search or the change feed costs
//! O(log n + page): one descent to the key after the cursor, then the next entries in order,
//! whatever the store's size. A name search merges the prefix ranges of the two name indexes by
//! key and passes over the entries of customers found under their other, smaller key; a page
//! passes over at most 1,000 of them before it ends early with a cursor, so even a search whose
//! every match matches twice stays bounded. Tombstones have an index of their own, so the
//! `updatedAt` order never passes over one.
//!
//! Each customer's keys are computed once, when it is written (a patch keeps those whose inputs it
//! did not change): its index entries are removed by the very keys inserted, and a search does not
//! fold names again. A key's text is allocated once and shared by the customer and its entry, and
//! its first 32 bytes are also held inline, as integers, which is what a B-tree compares: a time
//! key's whole time to the millisecond, a name key's folded names and most often enough of the id.
//! A write's descent then compares integers inside the B-tree's nodes, and reads a key's text
//! only to tell two keys apart that share their first 32 bytes, so the two or three levels that a
//! tree of 1,000,000 keys has more than one of 10,000 cost few instructions. What they cost in
//! memory is another matter: at a million customers, an operation on a customer the caches do not
//! hold waits for memory at each level of each index it descends, and for the customer itself
//! (`benches/src/bin/memory-flat.rs` measures it; `BENCHMARKS.md` records the point operations
//! at both sizes).
//!
//! # Tombstones
//!
//! A delete leaves a [`Tombstone`] in the change feed: the id, the version after the delete (one
//! more than the customer's last) and the time, never earlier than the customer's `updatedAt` so that
//! the feed's order stays the order of changes. A tombstone is kept for the store's retention (30
//! days unless set with [`with_tombstone_retention`](InMemoryCustomerRepository::with_tombstone_retention)),
//! then dropped in expiry order (an ordered set of expiry times) by the next write or change-feed
//! read, at a cost per tombstone dropped, never by a scan; no read returns an expired one. Creating the id again removes its
//! tombstone. Reading, changing or deleting a deleted id finds nothing, and
//! [`len`](InMemoryCustomerRepository::len) counts customers only.
//!
//! # Change events
//!
//! [`subscribe`](InMemoryCustomerRepository::subscribe) hands out a [`Subscription`] to the store's
//! [`CustomerEvent`]s: one per committed change (create, update, delete, each customer of a bulk
//! import, keyed writes), none for a refused write. Each write sends its event to every
//! subscriber while it still holds the store's lock, so subscribers see the events in commit
//! order: per customer, in version order, the same rules as the DynamoDB table's stream. A
//! subscription's queue is unbounded, so that no event is ever dropped; a subscriber that stops
//! reading should drop its subscription, which ends the sending. A store without subscribers
//! does not even make the events.
//!
//! ```
//! use std::sync::Arc;
//! use crm_domain::CustomerService;
//! use crm_memory::InMemoryCustomerRepository;
//!
//! let service = CustomerService::new(Arc::new(InMemoryCustomerRepository::new()));
//! # let _ = service;
//! ```

mod events;
mod index;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use crm_domain::events::CustomerEvent;
use crm_domain::idempotency::{
    KEY_RETENTION, KeyLease, KeyState, KeyedWrite, RecordedOutcome, Written,
};
use crm_domain::listing::{ChangeFeed, updated_key};
use crm_domain::{
    BulkRejection, BulkReport, Change, Cursor, CursorKey, Customer, CustomerId, CustomerPatch,
    CustomerRepository, Email, Idempotency, IdempotencyKey, Listing, Page, PageLimit,
    RepositoryError, RequestFingerprint, SortOrder, Timestamp, Tombstone, Version, batch_repeats,
};

use crate::events::Subscribers;
pub use crate::events::Subscription;
use crate::index::{Indexes, Key, Record, Stored, between, from, merged, walk};

/// Customers in memory; see the [crate docs](crate).
#[derive(Debug)]
pub struct InMemoryCustomerRepository {
    state: RwLock<State>,
    /// How long the tombstone of a deleted customer stays in the change feed.
    tombstone_retention: Duration,
    /// What this store seals its cursors with: made with the store, which lives in one process,
    /// so its cursors open only in the store that issued them.
    cursor_key: CursorKey,
}

impl Default for InMemoryCustomerRepository {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
            cursor_key: CursorKey::generate(),
        }
    }
}

/// How long a tombstone stays when the caller sets nothing: 30 days.
const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

#[derive(Debug, Default)]
struct State {
    /// The customers by id, each shared with the indexes.
    customers: HashMap<CustomerId, Record>,
    /// Normalized email → the customer that owns it.
    emails: HashMap<String, CustomerId>,
    /// The orders of the customers.
    indexes: Indexes,
    /// The id of each deleted customer whose tombstone is kept → the tombstone's key in `deleted`.
    tombstones: HashMap<CustomerId, Key>,
    /// The tombstones in change-feed order, by their `updated_key`.
    ///
    /// Boxed, to keep the tree's nodes under 1 KiB: a node holds 11 entries, and with the 64 bytes
    /// of a tombstone inline it would take more, the size from which glibc's `malloc` first
    /// consolidates its free small chunks. Not measured apart: the box costs a delete one
    /// allocation, and the change feed a pointer to follow per tombstone.
    deleted: BTreeMap<Key, Box<Buried>>,
    /// The tombstones in the order they expire, so that dropping the expired reads only them.
    ///
    /// Ordered and not a queue (as `key_expiry` is): a tombstone goes early when its id is created
    /// again, and a queue would keep its entry until it expired, so that an id deleted and created
    /// again and again would grow the queue by one entry each time for the whole retention. Each
    /// entry holds the tombstone's key in `deleted` (shared, and fast to compare).
    tombstone_expiry: BTreeSet<(Timestamp, Key)>,
    /// Idempotency keys, with what their requests did.
    keys: HashMap<IdempotencyKey, KeyRecord>,
    /// The keys in the order they expire (all live [`KEY_RETENTION`] from their first use), so
    /// that dropping the expired costs nothing per request.
    key_expiry: VecDeque<(Timestamp, IdempotencyKey)>,
    /// How many keys were handed out: each holder's token is its number.
    holders: u64,
    /// Who hears of each committed change.
    subscribers: Subscribers,
}

/// A tombstone as stored: with when it expires.
#[derive(Debug)]
struct Buried {
    tombstone: Tombstone,
    expires_at: Timestamp,
}

/// An entry of the change feed, before it is copied out of the store.
enum ChangeRef<'a> {
    Customer(&'a Stored),
    Deleted(&'a Tombstone),
}

impl ChangeRef<'_> {
    fn to_change(&self) -> Change {
        match self {
            Self::Customer(stored) => Change::Customer(stored.customer()),
            Self::Deleted(tombstone) => Change::Deleted((*tombstone).clone()),
        }
    }
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
        self.insert_new(customer.clone());
        self.subscribers
            .publish(|| CustomerEvent::created(customer));
        Ok(())
    }

    fn update(
        &mut self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        // Cheap (a customer is shared), and kept to tell the event what changed.
        let before = self.current(id, expected)?;
        let updated = before
            .patched(patch, now)
            .map_err(RepositoryError::InvalidPatch)?;
        if updated.has_same_fields_as(&before) {
            // A patch that changes no value writes nothing: no version, no event.
            return Ok(before);
        }
        let same_email = match (before.email(), updated.email()) {
            (Some(old), Some(new)) => old.as_str().eq_ignore_ascii_case(new.as_str()),
            (old, new) => old.is_none() && new.is_none(),
        };
        // An unchanged email (most patches) keeps its entry, owned by this customer.
        if !same_email {
            if let Some(new) = updated.email()
                && normalized(new, |new| {
                    self.emails.get(new).is_some_and(|owner| owner != id)
                })
            {
                return Err(RepositoryError::EmailTaken);
            }
            if let Some(old) = before.email() {
                normalized(old, |old| self.emails.remove(old));
            }
            if let Some(new) = updated.email() {
                self.emails.insert(new.normalized(), id.clone());
            }
        }
        self.replace(&before, updated.clone());
        self.subscribers
            .publish(|| CustomerEvent::updated(&before, &updated));
        Ok(updated)
    }

    /// Deletes the customer `id` and leaves its tombstone, deleted at `now` (or at the customer's
    /// `updatedAt`, when that is later) and kept for `retention`.
    fn delete(
        &mut self,
        id: &CustomerId,
        expected: Option<Version>,
        now: Timestamp,
        retention: Duration,
    ) -> Result<(), RepositoryError> {
        self.current(id, expected)?;
        if let Some(removed) = self.customers.remove(id) {
            self.indexes.remove(&removed);
            let customer = removed.stored.customer();
            if let Some(email) = customer.email() {
                normalized(email, |email| self.emails.remove(email));
            }
            self.bury(&customer, now, retention);
        }
        Ok(())
    }

    fn bury(&mut self, customer: &Customer, now: Timestamp, retention: Duration) {
        let id = customer.id();
        // A customer's `updatedAt` comes from the caller's clock and may be ahead of this one: the
        // tombstone must not sort before the change it follows.
        let deleted_at = now.max(customer.updated_at());
        let key = Key::new(&updated_key(deleted_at, id));
        // Retention runs on this store's clock, from the delete, whatever `deleted_at` says.
        let expires_at = now.after(retention);
        self.tombstone_expiry.insert((expires_at, key.clone()));
        self.tombstones.insert(id.clone(), key.clone());
        let tombstone = Tombstone {
            id: id.clone(),
            version: customer.version().next(),
            deleted_at,
        };
        self.subscribers
            .publish(|| CustomerEvent::deleted(&tombstone));
        self.deleted.insert(
            key,
            Box::new(Buried {
                tombstone,
                expires_at,
            }),
        );
    }

    /// Removes the tombstone of `id`, if it has one.
    fn unbury(&mut self, id: &CustomerId) {
        if let Some(key) = self.tombstones.remove(id)
            && let Some(buried) = self.deleted.remove(&key)
        {
            self.tombstone_expiry.remove(&(buried.expires_at, key));
        }
    }

    /// Drops the tombstones that expired by `now`.
    fn expire_tombstones(&mut self, now: Timestamp) {
        while self
            .tombstone_expiry
            .first()
            .is_some_and(|(expires_at, _)| *expires_at <= now)
        {
            if let Some((_, key)) = self.tombstone_expiry.pop_first()
                && let Some(buried) = self.deleted.remove(&key)
            {
                self.tombstones.remove(&buried.tombstone.id);
            }
        }
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
            .filter(|email| normalized(email, |email| self.emails.contains_key(email)))
            .map(|_| RepositoryError::EmailTaken)
    }

    /// Stores `customer`, whose id no customer has (its tombstone, if any, goes), with its email
    /// and index entries.
    fn insert_new(&mut self, customer: Customer) {
        self.unbury(customer.id());
        if let Some(email) = customer.email() {
            self.emails
                .insert(email.normalized(), customer.id().clone());
        }
        let id = customer.id().clone();
        let record = Record::new(customer);
        self.indexes.add(&record);
        self.customers.insert(id, record);
    }

    /// Stores `customer`, the version after `previous`, the stored customer with its id: the
    /// index entries whose keys changed move, the others stay (see [`Record::next`]). The email
    /// map is the caller's.
    fn replace(&mut self, previous: &Customer, customer: Customer) {
        if let Some(record) = self.customers.get_mut(customer.id()) {
            *record = record.next(previous, customer, &mut self.indexes);
        }
    }

    fn current(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<Customer, RepositoryError> {
        let current = self
            .customers
            .get(id)
            .ok_or(RepositoryError::NotFound)?
            .stored
            .customer();
        match expected {
            Some(version) if version != current.version() => {
                Err(RepositoryError::VersionConflict {
                    current: current.version(),
                })
            }
            _ => Ok(current),
        }
    }

    /// A page of `listing` after the key `after`, its cursor sealed with `seal`.
    fn list(
        &self,
        listing: &Listing,
        limit: PageLimit,
        after: Option<&str>,
        seal: &CursorKey,
    ) -> Page<Customer> {
        let walked = match listing {
            Listing::All(order) => {
                let index = match order {
                    SortOrder::CreatedAt | SortOrder::CreatedAtDescending => &self.indexes.created,
                    SortOrder::Name => &self.indexes.name,
                    SortOrder::UpdatedAt => &self.indexes.updated,
                };
                let entries =
                    from(index, after, order.descending()).map(|(key, stored)| (key, Some(stored)));
                walk(entries, limit.get())
            }
            Listing::Name(prefix) => {
                let start = after.map_or(Bound::Included(prefix.folded()), Bound::Excluded);
                let end = prefix.upper_bound();
                let entries = merged(
                    between(&self.indexes.name, start, &end),
                    between(&self.indexes.first_name, start, &end),
                )
                .map(|(key, stored)| {
                    // Found under both keys, a customer belongs at the smaller: pass over the other.
                    let here = stored.keys.found_by(prefix.folded()) == Some(key.as_str());
                    (key, here.then_some(stored))
                });
                walk(entries, limit.get())
            }
        };
        Page {
            items: walked.items.into_iter().map(|s| s.customer()).collect(),
            next_cursor: walked.next.map(|key| listing.cursor(seal, key)),
        }
    }

    /// A page of the change feed from `start`, without the tombstones expired by `now`, its
    /// cursor sealed with `seal`.
    fn changes(
        &self,
        start: Bound<&str>,
        limit: PageLimit,
        now: Timestamp,
        seal: &CursorKey,
    ) -> Page<Change> {
        let customers = self
            .indexes
            .updated
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(key, stored)| (key, Some(ChangeRef::Customer(stored))));
        let deleted =
            self.deleted
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(key, buried)| {
                    // Expired after this read's drop: a read holds the read lock and cannot drop it.
                    let live = buried.expires_at > now;
                    (key, live.then_some(ChangeRef::Deleted(&buried.tombstone)))
                });
        let walked = walk(merged(customers, deleted), limit.get());
        Page {
            items: walked.items.iter().map(ChangeRef::to_change).collect(),
            next_cursor: walked.next.map(|key| ChangeFeed::cursor(seal, key)),
        }
    }
}

/// `f` of `email` normalized as [`Email::normalized`] does (lower-cased ASCII), made on the stack:
/// a lookup by email allocates nothing.
fn normalized<R>(email: &Email, f: impl FnOnce(&str) -> R) -> R {
    let text = email.as_str();
    let mut buffer = [0; Email::MAX_LEN];
    if let Some(lowered) = buffer.get_mut(..text.len()) {
        lowered.copy_from_slice(text.as_bytes());
        lowered.make_ascii_lowercase();
        // Lower-casing ASCII bytes keeps UTF-8 valid: this always succeeds.
        if let Ok(lowered) = std::str::from_utf8(lowered) {
            return f(lowered);
        }
    }
    f(&email.normalized())
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

    /// A subscription to the events of every change this store commits from now on (see
    /// [Change events](crate#change-events)).
    pub fn subscribe(&self) -> Subscription {
        self.write().subscribers.subscribe()
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
    // all checks, and is map inserts and removals, which do not panic), so a poisoned lock is still
    // sound to use.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state to write, rid of the tombstones that expired: every write drops them on its way.
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.expire_tombstones(Timestamp::now());
        state
    }

    /// Drops the tombstones expired by `now`, taking the write lock only when one is due, so that a
    /// change-feed read after a quiet spell does not pass over every tombstone that expired in it.
    fn expire_tombstones(&self, now: Timestamp) {
        let due = self
            .read()
            .tombstone_expiry
            .first()
            .is_some_and(|(expires_at, _)| *expires_at <= now);
        if due {
            self.write().expire_tombstones(now);
        }
    }
}

#[async_trait]
impl CustomerRepository for InMemoryCustomerRepository {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.write().create(customer)
    }

    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        Ok(self
            .read()
            .customers
            .get(id)
            .map(|record| record.stored.customer()))
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        let state = self.read();
        Ok(normalized(email, |email| state.emails.get(email))
            .and_then(|id| state.customers.get(id))
            .map(|record| record.stored.customer()))
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
        self.write()
            .delete(id, expected, Timestamp::now(), self.tombstone_retention)
    }

    async fn list<'c>(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        let after = cursor
            .map(|cursor| listing.position(&self.cursor_key, cursor))
            .transpose()
            .map_err(|_| RepositoryError::InvalidCursor)?;
        Ok(self
            .read()
            .list(listing, limit, after.as_deref(), &self.cursor_key))
    }

    async fn changes<'c>(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Change>, RepositoryError> {
        let after = cursor
            .map(|cursor| ChangeFeed::position(&self.cursor_key, cursor))
            .transpose()
            .map_err(|_| RepositoryError::InvalidCursor)?;
        let first = ChangeFeed::start(since);
        // A cursor from before `since` (a feed read from an earlier time) must not reach back
        // past it: the later of the two positions wins.
        let start = match &after {
            Some(key) if *key >= first => Bound::Excluded(key.as_str()),
            _ => Bound::Included(first.as_str()),
        };
        let now = Timestamp::now();
        self.expire_tombstones(now);
        Ok(self.read().changes(start, limit, now, &self.cursor_key))
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
                    state.insert_new(customer.clone());
                    state
                        .subscribers
                        .publish(|| CustomerEvent::created(customer));
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
                state.delete(id, *expected, Timestamp::now(), self.tombstone_retention)?;
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
