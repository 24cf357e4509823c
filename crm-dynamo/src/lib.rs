//! The DynamoDB [`CustomerRepository`](crm_domain::CustomerRepository) of `crm`, on
//! `aws-sdk-dynamodb` and `serde_dynamo`.
//!
//! It is the production store: the HTTP adapter (`crm-http`) uses it whenever `CRM_TABLE_NAME` is
//! set. It passes the same contract suite as the in-memory store, against Amazon's DynamoDB Local.
//!
//! # Table layout
//!
//! One table, partition key `pk` (string), no sort key, billed on demand; one global secondary
//! index `byEmail` on `emailKey` projecting everything ([`TABLE`] states it in code; the
//! CloudFormation template is checked against it), and a time to live on `expiresAt`. Four kinds
//! of item:
//!
//! | item | `pk` | attributes |
//! | --- | --- | --- |
//! | customer | `CUSTOMER#<id>` | `kind = "customer"`, `id`, `firstName`, `lastName`, `email`, `emailKey` (lower-cased email), `phone`, `addressLine1` … `addressCountry`, `createdAt`, `updatedAt`, `version` (number) |
//! | email claim | `EMAIL#<SHA-256 of the lower-cased email, hex>` | `kind = "email"`, `customerId` |
//! | tombstone of a deleted customer | `CUSTOMER#<id>` | `kind = "deleted"`, `id`, `version` (the delete's), `updatedAt` (its time), `writeToken`, `expiresAt` (epoch seconds; DynamoDB's time to live) |
//! | idempotency key | `IDEMPOTENCY#<SHA-256 of the key, hex>` | `kind = "idempotency"`, `state` (`held`, `done`), `fingerprint`, `holder` and `heldUntil` while held, `write`, `customerId` and `version` once done, `expiresAt` (24 hours after first use) |
//!
//! Customer items and tombstones also carry `writeToken`, the token of the operation that last
//! wrote them.
//!
//! Why this shape:
//! - **Uniqueness of emails** cannot be a condition on a GSI, so every email is claimed by an item of
//!   its own, written in the same transaction as the customer (`attribute_not_exists(pk)` on both).
//!   The claim is deleted in the transaction that deletes the customer or changes its email. It is
//!   keyed by a digest of the address, not the address: uniqueness needs only equality, so the one
//!   copy of an email stays on its customer's item, and a listing cursor (the key of the last item
//!   read, which may be a claim) never carries an address into a URL or an access log.
//! - **Exact outcomes after lost replies.** The SDK resends a request whose reply was lost, and
//!   DynamoDB may have applied the first: the resent conditional write then fails on what its own
//!   first attempt did. Every write stamps the item with a token of its operation, and every
//!   failed condition returns the item, so a write that finds its own token answers its real
//!   outcome (the created or patched customer, a done delete), and a patch is never applied twice.
//!   A delete leaves a tombstone for that reason: "no item" cannot say whose delete it was. The
//!   tombstone holds no customer data and expires after 30 days
//!   ([`DynamoCustomerRepository::with_tombstone_retention`]).
//! - **An idempotency key is an item completed in the write's own transaction.** A keyed write
//!   holds its key with one conditional `PutItem`, then runs as a transaction with one more action:
//!   the key's `done` record, conditioned on the request still holding the key. A change never
//!   commits without its record, nor a record without its change.
//! - **The address is flattened** into top-level attributes so that a merge patch sets and removes
//!   parts in one `UpdateItem`, whether or not the customer had an address.
//! - **Lookup by email** is one `Query` on the sparse `byEmail` index (only customer items carry
//!   `emailKey`). Like every GSI read it is eventually consistent: a lookup right after a write may
//!   briefly miss it, which the port allows. Uniqueness never depends on it (the claims do that).
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
//! | delete of a customer without email | 1 conditional `UpdateItem` that makes the item a tombstone |
//! | delete of a customer with email | 2: the conditional `UpdateItem` fails and returns the item, then `TransactWriteItems` makes the tombstone and deletes the claim |
//! | bulk put | 1 `TransactWriteItems` per 50 customers, plus retries |
//! | holding an idempotency key | 1 conditional `PutItem` (a key already done is answered by it) |
//! | keyed create | 1 `TransactWriteItems`: the customer (and its claim) and the key's record |
//! | keyed patch | 2: a consistent `GetItem`, then `TransactWriteItems` with the key's record |
//! | keyed delete | 1 `TransactWriteItems` (tombstone and record); 2 for a customer with an email |
//! | giving a key back | 1 conditional `DeleteItem` |
//!
//! Races add attempts (bounded, with backoff); they never lose an update: every write is conditional.
//! `tests/dynamodb/requests.rs` counts the requests of each row on DynamoDB Local and fails on any
//! other number.
//!
//! Every single-customer operation is one round trip where DynamoDB allows it. Two rows take two,
//! because DynamoDB cannot do them in one:
//! - **A patch that sets or clears the email** must release the old claim, whose key is the old
//!   email, in the same transaction that writes the customer and claims the new one; and it must
//!   answer the customer as stored. `TransactWriteItems` returns no item, and an `UpdateItem`
//!   (which could return it) cannot be conditioned on another item. Without the read, the old email
//!   is unknown and the answer would be a second read anyway.
//! - **Deleting a customer that has an email** must delete its claim in the same transaction, and
//!   the claim's key is, again, the email. The first `UpdateItem` is the whole delete for a customer
//!   without email; for one with email its failed condition returns the item, which names the
//!   claim. (Leaving claims behind to be cleaned lazily would make this one request, at the price of
//!   keeping a trace of every deleted customer's email: we chose erasure.)
//!
//! Neither read is a read-modify-write race: the write that follows is conditioned on the version
//! read, so a change in between makes it retry, never overwrite.
//!
//! # Time and errors
//!
//! Each request is bounded by the SDK's timeouts and its standard retry (3 attempts, backoff from
//! 50 ms); each operation as a whole by the repository's deadline
//! ([`DynamoCustomerRepository::with_deadline`], `CRM_DYNAMODB_TIMEOUT_MS`), past which it is
//! `Unavailable`. Throttling, timeouts, unreachable endpoints and write conflicts become
//! `Unavailable` with a retry hint; a single-item write that meets a running transaction
//! (`TransactionConflictException`) is retried first. Validation and permission errors are
//! `Unexpected`: a bug or a misconfiguration, not something to retry.
//!
//! With the `testcontainers` feature, `docker::DynamoDbLocalContainer` starts DynamoDB Local in
//! Docker for the same tests
//! (`cargo test -p crm-dynamo --features testcontainers --test dynamodb docker`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
//!
//! let settings = DynamoSettings::new("customers", "eu-west-1")?.with_endpoint("http://127.0.0.1:8000");
//! let repository = DynamoCustomerRepository::connect(&settings).await;
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
pub use settings::{DynamoSettings, InvalidTableName};
pub use table::{EMAIL_INDEX, IndexDefinition, TABLE, TableDefinition};
