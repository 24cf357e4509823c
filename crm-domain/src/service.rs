//! The application service: the one place that turns inputs into customers.
//!
//! It gives ids to new customers, reads the clock, and answers what needs no storage write (an empty
//! patch), so that HTTP handlers and repositories stay thin.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::customer::{Customer, CustomerPatch, NewCustomer};
use crate::fields::{CustomerId, Email, Timestamp, Version};
use crate::idempotency::{Idempotency, KeyState, Keyed, KeyedWrite, RecordedOutcome, Written};
use crate::listing::{Change, Listing};
use crate::page::{Cursor, Page, PageLimit};
use crate::repository::{
    BulkRejection, BulkReport, CustomerRepository, RepositoryError, batch_repeats,
};

/// How long an idempotency key is held for its request unless set otherwise: twice the HTTP
/// adapter's default request deadline.
const DEFAULT_KEY_HOLD: Duration = Duration::from_secs(10);

/// The most customers of a keyed batch written at once (see
/// [`CustomerService::create_batch`]).
const BATCH_CONCURRENCY: usize = 10;

/// What became of one customer of [`CustomerService::create_batch`]: created now
/// (`Ok(Keyed::Done)`), answered from the record of an earlier request with the same key
/// (`Ok(Keyed::Replayed)`), or the error a create of it alone would have met (a taken id or email,
/// the store not answering, a key in use).
pub type BatchOutcome = Result<Keyed<Customer>, RepositoryError>;

/// Where the service reads the time. Inject a fixed clock in tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that always answers the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Where the customers of an import come from: a name for its input that stays the same when the
/// import runs again (a file's digest, a feed's name and date) and the position of the first
/// customer of this call in that input (an import sent in batches counts on from batch to batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSource<'a> {
    /// The input's name.
    pub name: &'a str,
    /// The position of the first customer of this call in the input, from 0.
    pub first_position: u64,
}

/// Customer use cases over any [`CustomerRepository`].
///
/// Cheap to clone: it holds two `Arc`s. Build it once at start and share it.
#[derive(Clone)]
pub struct CustomerService {
    repository: Arc<dyn CustomerRepository>,
    clock: Arc<dyn Clock>,
    key_hold: Duration,
}

impl fmt::Debug for CustomerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerService")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl CustomerService {
    /// A service over `repository`, on the system clock.
    pub fn new(repository: Arc<dyn CustomerRepository>) -> Self {
        Self {
            repository,
            clock: Arc::new(SystemClock),
            key_hold: DEFAULT_KEY_HOLD,
        }
    }

    /// The same service holding an idempotency key for `hold` while its request runs (10 s unless
    /// set): a retry within the hold is told the first request still runs; after it, the retry
    /// may take the key over. Set it to at least the longest a request may take.
    #[must_use]
    pub fn with_key_hold(mut self, hold: Duration) -> Self {
        self.key_hold = hold;
        self
    }

    /// The same service reading time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The repository the service works on.
    pub fn repository(&self) -> &Arc<dyn CustomerRepository> {
        &self.repository
    }

    fn customer_from(&self, input: NewCustomer) -> Customer {
        Customer::create(input, CustomerId::generate(), self.clock.now())
    }

    /// Creates a customer: the given id or a new UUIDv7, version 1, both timestamps now.
    ///
    /// # Errors
    /// As [`CustomerRepository::create`].
    pub async fn create(&self, input: NewCustomer) -> Result<Customer, RepositoryError> {
        let customer = self.customer_from(input);
        self.repository.create(&customer).await?;
        Ok(customer)
    }

    /// The customer with `id`.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`], or as [`CustomerRepository::get`].
    pub async fn get(&self, id: &CustomerId) -> Result<Customer, RepositoryError> {
        self.repository
            .get(id)
            .await?
            .ok_or(RepositoryError::NotFound)
    }

    /// The customer with this email (case-insensitively), if any.
    ///
    /// # Errors
    /// As [`CustomerRepository::find_by_email`].
    pub async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        self.repository.find_by_email(email).await
    }

    /// Applies a merge patch, at version `expected` when given.
    ///
    /// An empty patch changes nothing: it answers the customer as it is (after checking `expected`)
    /// without a write, so its version does not move.
    ///
    /// # Errors
    /// As [`CustomerRepository::update`].
    pub async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
    ) -> Result<Customer, RepositoryError> {
        if patch.is_empty() {
            let current = self.get(id).await?;
            return match expected {
                Some(version) if version != current.version() => {
                    Err(RepositoryError::VersionConflict {
                        current: current.version(),
                    })
                }
                _ => Ok(current),
            };
        }
        self.repository
            .update(id, patch, expected, self.clock.now())
            .await
    }

    /// Deletes a customer, at version `expected` when given.
    ///
    /// # Errors
    /// As [`CustomerRepository::delete`].
    pub async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.repository.delete(id, expected).await
    }

    /// [`create`](Self::create), made idempotent by `key` when given (see
    /// [`idempotency`](crate::idempotency)): a request sent again with the same key and
    /// fingerprint is answered from the first one's record, without a second write.
    ///
    /// # Errors
    /// As [`create`](Self::create); [`KeyInUse`](RepositoryError::KeyInUse) while a request with
    /// the key runs, [`KeyReused`](RepositoryError::KeyReused) when the key was used for another
    /// request.
    pub async fn create_idempotent(
        &self,
        input: NewCustomer,
        key: Option<&Idempotency>,
    ) -> Result<Keyed<Customer>, RepositoryError> {
        let customer = self.customer_from(input);
        let Some(key) = key else {
            self.repository.create(&customer).await?;
            return Ok(Keyed::Done(customer));
        };
        self.keyed(key, KeyedWrite::Create(customer))
            .await?
            .try_map(Written::into_customer)
    }

    /// [`update`](Self::update), made idempotent by `key` when given; see
    /// [`create_idempotent`](Self::create_idempotent). An empty patch writes nothing, so it
    /// records nothing either.
    ///
    /// # Errors
    /// As [`update`](Self::update) and [`create_idempotent`](Self::create_idempotent).
    pub async fn update_idempotent(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        key: Option<&Idempotency>,
    ) -> Result<Keyed<Customer>, RepositoryError> {
        match key {
            Some(key) if !patch.is_empty() => {
                let write = KeyedWrite::Update {
                    id: id.clone(),
                    patch: patch.clone(),
                    expected,
                    now: self.clock.now(),
                };
                self.keyed(key, write)
                    .await?
                    .try_map(Written::into_customer)
            }
            _ => self.update(id, patch, expected).await.map(Keyed::Done),
        }
    }

    /// [`delete`](Self::delete), made idempotent by `key` when given; see
    /// [`create_idempotent`](Self::create_idempotent).
    ///
    /// # Errors
    /// As [`delete`](Self::delete) and [`create_idempotent`](Self::create_idempotent).
    pub async fn delete_idempotent(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
        key: Option<&Idempotency>,
    ) -> Result<Keyed<()>, RepositoryError> {
        let Some(key) = key else {
            return self.delete(id, expected).await.map(Keyed::Done);
        };
        let write = KeyedWrite::Delete {
            id: id.clone(),
            expected,
        };
        self.keyed(key, write)
            .await?
            .try_map(|_| Ok::<_, RepositoryError>(()))
    }

    /// The outcome recorded under `key`, if a write with it (and this fingerprint) committed;
    /// `None` when no write with the key committed (the key is left free).
    ///
    /// For an adapter that must refuse a request before it reaches its write, on grounds the
    /// request's own earlier write may have made true: a list of `If-Match` tags resolved against
    /// the customer as it is now, which the first send of this very request already changed.
    /// Before answering that refusal, it asks the key.
    ///
    /// # Errors
    /// [`KeyInUse`](RepositoryError::KeyInUse), [`KeyReused`](RepositoryError::KeyReused), or
    /// the repository's.
    pub async fn recorded(
        &self,
        key: &Idempotency,
    ) -> Result<Option<RecordedOutcome>, RepositoryError> {
        match self.repository.begin_keyed(key, self.key_hold).await? {
            KeyState::Fresh(lease) => {
                self.repository.release_key(&lease).await?;
                Ok(None)
            }
            KeyState::Done(outcome) => Ok(Some(outcome)),
            KeyState::Running => Err(RepositoryError::KeyInUse),
            KeyState::OtherRequest => Err(RepositoryError::KeyReused),
        }
    }

    /// The hold of an idempotency key while its request runs; see
    /// [`with_key_hold`](Self::with_key_hold).
    pub fn key_hold(&self) -> Duration {
        self.key_hold
    }

    /// Runs `write` under `key`: the write with its record when the key is fresh, the first
    /// outcome when it is done, a refusal when it is busy or was used for another request.
    async fn keyed(
        &self,
        key: &Idempotency,
        write: KeyedWrite,
    ) -> Result<Keyed<Written>, RepositoryError> {
        let lease = match self.repository.begin_keyed(key, self.key_hold).await? {
            KeyState::Fresh(lease) => lease,
            KeyState::Done(outcome) => return Ok(Keyed::Replayed(outcome)),
            KeyState::Running => return Err(RepositoryError::KeyInUse),
            KeyState::OtherRequest => return Err(RepositoryError::KeyReused),
        };
        match self.repository.write_keyed(&write, &lease).await {
            Ok(written) => Ok(Keyed::Done(written)),
            // Maybe written, maybe not: the key stays held until its hold runs out, and a retry
            // then finds the record, or runs the write.
            Err(error @ (RepositoryError::Unavailable { .. } | RepositoryError::Unexpected(_))) => {
                Err(error)
            }
            Err(refusal) => {
                // Nothing was written: a retry must run again. If the key cannot be given back,
                // its hold runs out.
                let _ = self.repository.release_key(&lease).await;
                Err(refusal)
            }
        }
    }

    /// Creates the customers of a batch, each with the rules of [`create`](Self::create), and says
    /// for each what became of it, in the order of `inputs`.
    ///
    /// `inputs` are the customers to create with their positions in the batch as the client sent
    /// it (an adapter leaves out the items it could not read, which keeps the positions of the
    /// others). A customer that repeats the id or the email of an earlier one of the batch is
    /// refused as taken ([`batch_repeats`]), whether or not the earlier one is written.
    ///
    /// Without `key`, one [`put_many`](CustomerRepository::put_many) writes them: a customer
    /// without an id gets a new UUIDv7, and one the store did not confirm (it stopped answering
    /// part-way) is answered [`Unavailable`](RepositoryError::Unavailable).
    ///
    /// With `key`, the batch is made of keyed creates (see [`idempotency`](crate::idempotency)),
    /// so that sending it again writes nobody twice:
    ///
    /// - the client's key itself records the first customer written, in the same step: until
    ///   then the same request is [`KeyInUse`](RepositoryError::KeyInUse); from then on the same
    ///   request is answered item by item (each customer's own key is in use, recorded, or free),
    ///   and for 24 hours another request under the key is
    ///   [`KeyReused`](RepositoryError::KeyReused), before anything is written;
    /// - every other customer is one keyed create under a key of its own, made of the client's
    ///   key and its position (with a fingerprint made of the request's and the position), up to
    ///   ten at a time;
    /// - a customer without an id gets one [derived](CustomerId::derived) from the key, the
    ///   request's fingerprint and its position, so that the batch sent again names the same
    ///   customers.
    ///
    /// The same batch sent again is answered from the records: each customer written before is
    /// [`Keyed::Replayed`]; one refused before (nothing recorded) is tried again, as a single
    /// create sent again would be.
    ///
    /// # Errors
    /// Those of the whole request: [`KeyInUse`](RepositoryError::KeyInUse) and
    /// [`KeyReused`](RepositoryError::KeyReused) for the client's key, and the repository's
    /// errors before any write (for `put_many`, [`Unexpected`](RepositoryError::Unexpected)).
    pub async fn create_batch(
        &self,
        inputs: Vec<(usize, NewCustomer)>,
        key: Option<&Idempotency>,
    ) -> Result<Vec<BatchOutcome>, RepositoryError> {
        let now = self.clock.now();
        let id_source = key.map(Idempotency::id_source);
        let (positions, customers): (Vec<usize>, Vec<Customer>) = inputs
            .into_iter()
            .map(|(position, input)| {
                let id = match &id_source {
                    Some(source) => CustomerId::derived(source, position as u64),
                    None => CustomerId::generate(),
                };
                (position, Customer::create(input, id, now))
            })
            .unzip();
        let mut outcomes: Vec<Option<BatchOutcome>> = Vec::with_capacity(customers.len());
        let mut candidates = Vec::new();
        for (index, repeat) in batch_repeats(&customers).into_iter().enumerate() {
            if repeat.is_none() {
                candidates.push(index);
            }
            outcomes.push(repeat.map(|reason| Err(refusal(reason))));
        }
        match key {
            None => {
                self.put_batch(&customers, &candidates, &mut outcomes)
                    .await?;
            }
            Some(key) => {
                let batch = KeyedBatch {
                    key,
                    positions: &positions,
                    customers: &customers,
                };
                self.write_keyed_batch(&batch, candidates, &mut outcomes)
                    .await?;
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| Err(not_sent())))
            .collect())
    }

    /// The customers at `candidates` (no repeats) in one `put_many`, and what became of each.
    async fn put_batch(
        &self,
        customers: &[Customer],
        candidates: &[usize],
        outcomes: &mut [Option<BatchOutcome>],
    ) -> Result<(), RepositoryError> {
        let sent: Vec<Customer> = candidates.iter().map(|&i| customers[i].clone()).collect();
        let report = self.repository.put_many(&sent).await?;
        let rejected: HashMap<&CustomerId, BulkRejection> =
            report.rejected.iter().map(|(id, why)| (id, *why)).collect();
        let unconfirmed: HashSet<&CustomerId> = report.unconfirmed.iter().collect();
        for &i in candidates {
            let customer = &customers[i];
            outcomes[i] = Some(if let Some(why) = rejected.get(customer.id()) {
                Err(refusal(*why))
            } else if unconfirmed.contains(customer.id()) {
                Err(RepositoryError::unavailable(
                    "the store stopped answering before this customer's write was confirmed",
                ))
            } else {
                Ok(Keyed::Done(customer.clone()))
            });
        }
        Ok(())
    }

    /// The customers at `candidates` (no repeats) as keyed creates; see
    /// [`create_batch`](Self::create_batch).
    async fn write_keyed_batch(
        &self,
        batch: &KeyedBatch<'_>,
        mut candidates: Vec<usize>,
        outcomes: &mut [Option<BatchOutcome>],
    ) -> Result<(), RepositoryError> {
        let customers = batch.customers;
        match self
            .repository
            .begin_keyed(batch.key, self.key_hold)
            .await?
        {
            KeyState::OtherRequest => return Err(RepositoryError::KeyReused),
            KeyState::Running => return Err(RepositoryError::KeyInUse),
            KeyState::Done(outcome) => {
                // The customer the client's key recorded; the others have keys of their own.
                if let Some(at) = candidates
                    .iter()
                    .position(|&i| *customers[i].id() == outcome.id)
                {
                    let i = candidates.remove(at);
                    outcomes[i] = Some(Ok(Keyed::Replayed(outcome)));
                }
            }
            KeyState::Fresh(lease) => {
                // The first customer the store takes is written with the client's key's record;
                // one it refuses changed nothing, and the next is tried under the same hold.
                let mut recorded = None;
                for (at, &i) in candidates.iter().enumerate() {
                    let write = KeyedWrite::Create(customers[i].clone());
                    match self.repository.write_keyed(&write, &lease).await {
                        Ok(written) => {
                            outcomes[i] = Some(written.into_customer().map(Keyed::Done));
                            recorded = Some(at);
                            break;
                        }
                        // Maybe written, maybe not: the key stays held until its hold runs
                        // out, and the customers after this one are not sent.
                        Err(
                            error @ (RepositoryError::Unavailable { .. }
                            | RepositoryError::Unexpected(_)),
                        ) => {
                            outcomes[i] = Some(Err(error));
                            return Ok(());
                        }
                        Err(refused) => outcomes[i] = Some(Err(refused)),
                    }
                }
                let Some(at) = recorded else {
                    // Nothing written: the key is given back (or its hold runs out).
                    let _ = self.repository.release_key(&lease).await;
                    return Ok(());
                };
                candidates.drain(..=at);
            }
        }
        let writes = candidates.iter().map(|&i| {
            let key = batch.key.for_item(batch.positions[i] as u64);
            async move {
                let write = KeyedWrite::Create(customers[i].clone());
                self.keyed(&key, write)
                    .await
                    .and_then(|keyed| keyed.try_map(Written::into_customer))
            }
        });
        let written = join_bounded(writes.collect(), BATCH_CONCURRENCY).await;
        for (&i, outcome) in candidates.iter().zip(written) {
            outcomes[i] = Some(outcome);
        }
        Ok(())
    }

    /// One page of customers of `listing`.
    ///
    /// # Errors
    /// As [`CustomerRepository::list`].
    pub async fn list(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.repository.list(listing, limit, cursor).await
    }

    /// One page of the change feed from `since`.
    ///
    /// # Errors
    /// As [`CustomerRepository::changes`].
    pub async fn changes(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Change>, RepositoryError> {
        self.repository.changes(since, limit, cursor).await
    }

    /// Imports many customers at once; see [`CustomerRepository::put_many`]. A customer without
    /// an id gets the one [derived](CustomerId::derived) from `source` and its position, so that
    /// the same import run again (after an interruption, or by mistake) writes nobody twice: the
    /// customers it wrote before come back refused as taken.
    ///
    /// # Errors
    /// As [`CustomerRepository::put_many`].
    pub async fn import(
        &self,
        source: ImportSource<'_>,
        inputs: Vec<NewCustomer>,
    ) -> Result<BulkReport, RepositoryError> {
        let now = self.clock.now();
        let customers: Vec<Customer> = (source.first_position..)
            .zip(inputs)
            .map(|(position, input)| {
                Customer::create(input, CustomerId::derived(source.name, position), now)
            })
            .collect();
        self.repository.put_many(&customers).await
    }
}

/// A batch sent with an idempotency key: the key, and for each customer to write its position
/// in the request and the customer.
struct KeyedBatch<'a> {
    key: &'a Idempotency,
    positions: &'a [usize],
    customers: &'a [Customer],
}

/// The error a create meets for a bulk `rejection`.
fn refusal(rejection: BulkRejection) -> RepositoryError {
    match rejection {
        BulkRejection::AlreadyExists => RepositoryError::AlreadyExists,
        BulkRejection::EmailTaken => RepositoryError::EmailTaken,
    }
}

/// The answer for a customer of a batch that was never sent: the store stopped answering first.
fn not_sent() -> RepositoryError {
    RepositoryError::unavailable("the store stopped answering before this customer was sent")
}

/// Runs `futures`, at most `limit` at a time (in order: the next starts when one ends), and
/// answers their outputs in the order of `futures`.
async fn join_bounded<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let limit = limit.max(1);
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = std::iter::repeat_with(|| None)
        .take(futures.len())
        .collect();
    let mut started = limit.min(futures.len());
    std::future::poll_fn(|cx| {
        loop {
            let mut running = 0;
            for (future, output) in futures[..started].iter_mut().zip(outputs.iter_mut()) {
                if output.is_none() {
                    match future.as_mut().poll(cx) {
                        Poll::Ready(value) => *output = Some(value),
                        Poll::Pending => running += 1,
                    }
                }
            }
            let more = (started - running + limit).min(futures.len());
            if more == started {
                return if running == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                };
            }
            // Slots came free: start the next futures (their first poll registers their waker).
            started = more;
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;

    use super::*;
    use crate::fields::PersonName;
    use crate::repository::MockCustomerRepository;

    fn clock() -> Arc<dyn Clock> {
        Arc::new(FixedClock(
            Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
        ))
    }

    fn new_customer() -> NewCustomer {
        NewCustomer::new(
            PersonName::parse("Ada").unwrap(),
            PersonName::parse("Lovelace").unwrap(),
        )
    }

    #[tokio::test]
    async fn create_gives_a_generated_id_version_one_and_the_clock_time() {
        let mut repo = MockCustomerRepository::new();
        repo.expect_create()
            .withf(|c| c.version() == Version::FIRST && c.id().as_str().len() == 36)
            .times(1)
            .returning(|_| Ok(()));
        let service = CustomerService::new(Arc::new(repo)).with_clock(clock());
        let created = service.create(new_customer()).await.unwrap();
        assert_eq!(created.created_at(), clock().now());
        assert_eq!(created.updated_at(), created.created_at());
    }

    #[tokio::test]
    async fn create_keeps_a_given_id() {
        let mut repo = MockCustomerRepository::new();
        repo.expect_create().times(1).returning(|_| Ok(()));
        let service = CustomerService::new(Arc::new(repo));
        let mut input = new_customer();
        input.id = Some(CustomerId::parse("given").unwrap());
        assert_eq!(service.create(input).await.unwrap().id().as_str(), "given");
    }

    #[tokio::test]
    async fn an_empty_patch_reads_instead_of_writing() {
        let stored = Customer::create(
            new_customer(),
            CustomerId::parse("c1").unwrap(),
            clock().now(),
        );
        let id = stored.id().clone();
        let mut repo = MockCustomerRepository::new();
        repo.expect_get()
            .with(eq(id.clone()))
            .times(2)
            .returning(move |_| Ok(Some(stored.clone())));
        repo.expect_update().never();
        let service = CustomerService::new(Arc::new(repo));
        let same = service
            .update(&id, &CustomerPatch::default(), None)
            .await
            .unwrap();
        assert_eq!(same.version(), Version::FIRST);
        let stale = service
            .update(&id, &CustomerPatch::default(), Some(Version::FIRST.next()))
            .await;
        assert!(matches!(
            stale,
            Err(RepositoryError::VersionConflict { current }) if current == Version::FIRST
        ));
    }

    #[tokio::test]
    async fn get_of_a_missing_customer_is_not_found() {
        let mut repo = MockCustomerRepository::new();
        repo.expect_get().returning(|_| Ok(None));
        let service = CustomerService::new(Arc::new(repo));
        let id = CustomerId::parse("nobody").unwrap();
        assert!(matches!(
            service.get(&id).await,
            Err(RepositoryError::NotFound)
        ));
    }

    fn named(id: &str, email: Option<&str>) -> NewCustomer {
        let mut input = new_customer();
        input.id = Some(CustomerId::parse(id).unwrap());
        input.email = email.map(|e| Email::parse(e).unwrap());
        input
    }

    #[tokio::test]
    async fn a_batch_without_a_key_is_one_put_many_and_answers_each_customer_in_order() {
        let mut repo = MockCustomerRepository::new();
        repo.expect_put_many()
            .withf(|sent| {
                // The repeat of `a` (by email) is refused before the store is asked.
                sent.iter().map(|c| c.id().as_str()).collect::<Vec<_>>() == ["a", "taken", "late"]
            })
            .times(1)
            .returning(|_| {
                Ok(BulkReport {
                    created: 1,
                    rejected: vec![(
                        CustomerId::parse("taken").unwrap(),
                        BulkRejection::AlreadyExists,
                    )],
                    unconfirmed: vec![CustomerId::parse("late").unwrap()],
                })
            });
        repo.expect_begin_keyed().never();
        let service = CustomerService::new(Arc::new(repo)).with_clock(clock());
        let inputs = vec![
            (0, named("a", Some("a@example.com"))),
            (2, named("taken", None)),
            (3, named("twin", Some("A@example.com"))),
            (7, named("late", None)),
        ];
        let outcomes = service.create_batch(inputs, None).await.unwrap();
        assert_eq!(outcomes.len(), 4);
        assert!(
            matches!(&outcomes[0], Ok(Keyed::Done(c)) if c.id().as_str() == "a" && c.created_at() == clock().now())
        );
        assert!(matches!(outcomes[1], Err(RepositoryError::AlreadyExists)));
        assert!(matches!(outcomes[2], Err(RepositoryError::EmailTaken)));
        assert!(matches!(
            outcomes[3],
            Err(RepositoryError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn joined_futures_answer_in_order_and_run_at_most_the_limit_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let futures: Vec<_> = (0..25_usize)
            .map(|n| {
                let (running, most) = (&running, &most);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..=(25 - n) % 4 {
                        tokio::task::yield_now().await;
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    n
                }
            })
            .collect();
        let outputs = join_bounded(futures, 4).await;
        assert_eq!(outputs, (0..25).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 4);
        assert!(
            join_bounded(Vec::<std::future::Ready<u8>>::new(), 4)
                .await
                .is_empty()
        );
    }
}
