//! The DynamoDB [`CustomerRepository`](crm_domain::CustomerRepository) of `crm`, on
//! `aws-sdk-dynamodb` and `serde_dynamo`.
//!
//! It is the production store: the HTTP adapter (`crm-lambda`) uses it whenever `CRM_TABLE_NAME` is
//! set. It passes the same contract suite as the in-memory store, against Amazon's DynamoDB Local.
//!
//! # Table layout
//!
//! One table, partition key `pk` (string), no sort key, billed on demand; one global secondary
//! index `byEmail` on `emailKey` projecting everything ([`TABLE`] states it in code; the
//! CloudFormation template is checked against it). Two kinds of item:
//!
//! | item | `pk` | attributes |
//! | --- | --- | --- |
//! | customer | `CUSTOMER#<id>` | `kind = "customer"`, `id`, `firstName`, `lastName`, `email`, `emailKey` (lower-cased email), `phone`, `addressLine1` … `addressCountry`, `createdAt`, `updatedAt`, `version` (number) |
//! | email claim | `EMAIL#<lower-cased email>` | `kind = "email"`, `customerId` |
//!
//! Why this shape:
//! - **Uniqueness of emails** cannot be a condition on a GSI, so every email is claimed by an item of
//!   its own, written in the same transaction as the customer (`attribute_not_exists(pk)` on both).
//!   The claim is deleted in the transaction that deletes the customer or changes its email, so no
//!   copy of an address outlives its customer.
//! - **The address is flattened** into top-level attributes so that a merge patch sets and removes
//!   parts in one `UpdateItem`, whether or not the customer had an address.
//! - **Lookup by email** is one `Query` on the sparse `byEmail` index (only customer items carry
//!   `emailKey`). Like every GSI read it is eventually consistent: a lookup right after a write may
//!   briefly miss it.
//! - **Listing** is a consistent `Scan` filtered to customers, with `Limit` so that no call reads the
//!   whole table; a page that email claims or DynamoDB's 1 MB cut leave short is topped up by further
//!   calls (at most 8). The cursor is the key of the last customer returned, base64-wrapped
//!   ([`Cursor`](crm_domain::Cursor)); one that does not decode to a key this repository writes is
//!   `InvalidCursor`.
//!
//! # Requests per operation
//!
//! | operation | requests |
//! | --- | --- |
//! | create | 1 (`PutItem`, or `TransactWriteItems` with the email claim) |
//! | get | 1 consistent `GetItem` |
//! | find by email | 1 `Query` on `byEmail` |
//! | patch that leaves the email alone | 1 conditional `UpdateItem` returning the new item |
//! | patch that sets or clears the email | 2: a consistent `GetItem`, then `TransactWriteItems` conditioned on the version read (transactions return no item, and the old claim's key is the old email) |
//! | delete of a customer without email | 1 conditional `DeleteItem` |
//! | delete of a customer with email | 2: the conditional `DeleteItem` fails and returns the item, then `TransactWriteItems` deletes customer and claim |
//! | bulk put | 1 `TransactWriteItems` per 50 customers, plus retries |
//!
//! Races add attempts (bounded, with backoff); they never lose an update: every write is conditional.
//!
//! With the `testcontainers` feature, `docker::DynamoDbLocalContainer` starts DynamoDB Local in
//! Docker for the same tests (`cargo test -p crm-dynamo --features testcontainers --test docker`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
//!
//! let settings = DynamoSettings::new("customers", "eu-west-1")?.with_endpoint("http://127.0.0.1:8000");
//! let repository = DynamoCustomerRepository::connect(&settings).await?;
//! repository.create_table().await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "testcontainers")]
pub mod docker;
mod error;
mod item;
mod repository;
mod settings;
mod table;

pub use repository::DynamoCustomerRepository;

/// Customer ⇄ item conversion, for tools that read or write the table directly (exports,
/// migrations) and for benchmarks. The layout is the one in the [crate docs](crate).
pub mod items {
    pub use crate::item::{Item, customer_from_item as from_item, customer_item as to_item};
}
pub use settings::{DynamoSettings, SettingsError};
pub use table::{EMAIL_INDEX, IndexDefinition, TABLE, TableDefinition};
