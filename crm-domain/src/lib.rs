//! The customer domain of `crm`: the model, its validation, the storage port and the application
//! service.
//!
//! This crate is the centre of a hexagon. It knows nothing of AWS, Lambda or HTTP; storage adapters
//! (`crm-memory`, `crm-dynamo`) implement its [`CustomerRepository`] port and the HTTP adapter
//! (`crm-http`) drives its [`CustomerService`]. Embed it in any Rust service to get a customer model
//! that cannot hold invalid data:
//!
//! - every field is a type with private insides and a fallible constructor ([`PersonName::parse`],
//!   [`Email::parse`], …), and serde goes through the same constructors;
//! - inputs ([`NewCustomer`], [`CustomerPatch`]) are read from JSON with every failing field reported
//!   at once ([`ValidationErrors`]);
//! - a [`Customer`] is only made by the service or read back from storage, so it always has an id,
//!   timestamps and a version.
//!
//! ```
//! use std::sync::Arc;
//! use crm_domain::{CustomerRepository, CustomerService, NewCustomer};
//!
//! # async fn demo(repository: Arc<dyn CustomerRepository>) -> Result<(), Box<dyn std::error::Error>> {
//! let service = CustomerService::new(repository);
//! let input = NewCustomer::from_json(&serde_json::json!({
//!     "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"
//! }))?;
//! let customer = service.create(input).await?;
//! assert_eq!(customer.version().get(), 1);
//! # Ok(()) }
//! ```
//!
//! Features: `testkit` exposes the repository contract suite (`crm_domain::testkit`), `mock` a mockall
//! `MockCustomerRepository`.

mod customer;
pub mod events;
mod fields;
pub mod idempotency;
mod input;
pub mod listing;
mod page;
mod repository;
mod service;
mod validation;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use customer::{AddressPatch, Customer, CustomerParts, CustomerPatch, NewCustomer, Patch};
pub use fields::{
    Address, AddressText, CountryCode, CustomerId, Email, InvalidValue, PersonName, Phone,
    Timestamp, Version,
};
pub use idempotency::{Idempotency, IdempotencyKey, Keyed, RequestFingerprint};
pub use listing::{Change, Listing, NamePrefix, SortOrder, Tombstone};
pub use page::{Cursor, CursorKey, Page, PageLimit};
#[cfg(any(test, feature = "mock"))]
pub use repository::MockCustomerRepository;
pub use repository::{
    BoxError, BulkRejection, BulkReport, CustomerRepository, RepositoryError, batch_repeats,
};
pub use service::{BatchOutcome, Clock, CustomerService, FixedClock, ImportSource, SystemClock};
pub use validation::{FieldError, ValidationErrors};
