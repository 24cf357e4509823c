//! The application service: the one place that turns inputs into customers.
//!
//! It gives ids to new customers, reads the clock, and answers what needs no storage write (an empty
//! patch), so that HTTP handlers and repositories stay thin.

use std::fmt;
use std::sync::Arc;

use crate::customer::{Customer, CustomerPatch, NewCustomer};
use crate::fields::{CustomerId, Email, Timestamp, Version};
use crate::page::{Cursor, Page, PageLimit};
use crate::repository::{BulkReport, CustomerRepository, RepositoryError};

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

/// Customer use cases over any [`CustomerRepository`].
///
/// Cheap to clone: it holds two `Arc`s. Build it once at start and share it.
#[derive(Clone)]
pub struct CustomerService {
    repository: Arc<dyn CustomerRepository>,
    clock: Arc<dyn Clock>,
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
        }
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

    /// One page of customers.
    ///
    /// # Errors
    /// As [`CustomerRepository::list`].
    pub async fn list(
        &self,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.repository.list(limit, cursor).await
    }

    /// Imports many customers at once; see [`CustomerRepository::put_many`].
    ///
    /// # Errors
    /// As [`CustomerRepository::put_many`].
    pub async fn import(&self, inputs: Vec<NewCustomer>) -> Result<BulkReport, RepositoryError> {
        let customers: Vec<Customer> = inputs.into_iter().map(|c| self.customer_from(c)).collect();
        self.repository.put_many(&customers).await
    }
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
}
