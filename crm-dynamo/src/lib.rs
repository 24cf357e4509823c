//! The DynamoDB [`CustomerRepository`](crm_domain::CustomerRepository) of `crm`, on
//! `aws-sdk-dynamodb` and `serde_dynamo`.
//!
//! It is the production store: the HTTP adapter (`crm-http`) uses it whenever `CRM_TABLE_NAME` is
//! set. It passes the same contract suite as the in-memory store, against Amazon's DynamoDB Local.
//!
//! # Table layout
//!
//! One table, partition key `pk` (string), no sort key, billed on demand, with a time to live on
//! `expiresAt`, a stream of new and old images (the change events: [`stream`]) and five global
//! secondary indexes, all sparse and projecting everything ([`TABLE`]
//! states them in code; the CloudFormation templates are checked against it):
//!
//! | index | partition key | sort key | holds |
//! | --- | --- | --- | --- |
//! | `byEmail` | `emailKey` | — | customers with an email |
//! | `byCreated` | `shard` | `createdKey` | customers |
//! | `byUpdated` | `shard` | `updatedKey` | customers and tombstones (the change feed) |
//! | `byName` | `shard` | `nameKey` | customers |
//! | `byFirstName` | `shard` | `firstNameKey` | customers |
//!
//! Four kinds of item:
//!
//! | item | `pk` | attributes |
//! | --- | --- | --- |
//! | customer | `CUSTOMER#<id>` | `kind = "customer"`, `id`, `firstName`, `lastName`, `email`, `emailKey` (lower-cased email), `phone`, `addressLine1` … `addressCountry`, `createdAt`, `updatedAt`, `version` (number); the listing keys `shard`, `createdKey`, `updatedKey`, `nameKey`, `firstNameKey` |
//! | email claim | `EMAIL#<SHA-256 of the lower-cased email, hex>` | `kind = "email"`, `customerId` |
//! | tombstone of a deleted customer | `CUSTOMER#<id>` | `kind = "deleted"`, `id`, `version` (the delete's), `updatedAt` (its time), `writeToken`, `expiresAt` (epoch seconds; DynamoDB's time to live); `shard`, `updatedKey` |
//! | idempotency key | `IDEMPOTENCY#<SHA-256 of the key, hex>` | `kind = "idempotency"`, `state` (`held`, `done`), `fingerprint`, `holder` and `heldUntil` while held, `write`, `customerId` and `version` once done, `expiresAt` (24 hours after first use) |
//!
//! Customer items and tombstones also carry `writeToken`, the token of the operation that last
//! wrote them.
//!
//! The listing keys are the keys of [`crm_domain::listing`], stored: `createdKey` and
//! `updatedKey` are the time and the id (`2026-12-01T08:00:00.000Z#<id>`), `nameKey` the folded
//! `last first` and `firstNameKey` the folded `first last`, each followed by the id; `shard` is
//! `0`–`3`, from the first byte of the SHA-256 of the id. Every write that stores a whole customer
//! (create, bulk import, a patch of the email) writes all five; a patch in place sets `updatedKey`
//! (and `shard`) with the new time, and the name keys when it sets a name. A delete keeps `shard`,
//! sets `updatedKey` to the time of the delete and removes the other three with the customer's
//! data: they are made of it (the folded names are personal data). So a tombstone is in
//! `byUpdated` only. Claims and idempotency records carry none of them.
//!
//! Why this shape:
//! - **Uniqueness of emails** cannot be a condition on a GSI, so every email is claimed by an item of
//!   its own, written in the same transaction as the customer (`attribute_not_exists(pk)` on both).
//!   The claim is deleted in the transaction that deletes the customer or changes its email. It is
//!   keyed by a digest of the address, not the address: uniqueness needs only equality, so the one
//!   copy of an email stays on its customer's item. Claims that went wrong (a bug, a manual edit, a
//!   partial restore) are found and repaired by an operator's tool
//!   ([Checking the email claims](#checking-the-email-claims)).
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
//! - **Listing never scans.** Each order has an index sorted by its key
//!   ([`crm_domain::listing`]): `byCreated` (`createdAt` and `-createdAt`), `byName`, `byUpdated`
//!   (which also holds the tombstones: it is the change feed), and `byFirstName` for name search.
//!   Each is spread over four shards (`shard`, from the id's digest), so that no index partition
//!   takes every write; a page queries the four shards in parallel and merges them by key, reading
//!   about one page (see [Listing costs](#listing-costs)). A name search merges eight streams,
//!   `byName` and `byFirstName` on each shard, and keeps a customer only under the key the search
//!   finds it by. The cursor is the key of the last item returned, bound to its listing
//!   ([`Listing::cursor`](crm_domain::listing::Listing::cursor)) and sealed with the table's
//!   cursor key (an item `SETTINGS#cursor-key`, made by the first listing that finds none and read
//!   once per process: one `GetItem` on the first listing after a cold start), because a key of
//!   the name order is the customer's name and cursors travel in URLs; one made for another
//!   listing, altered or forged, is `InvalidCursor` before any Query. Like every GSI read, a
//!   listing may lag the writes before it by a moment.
//!
//! # Requests per operation
//!
//! | operation | requests |
//! | --- | --- |
//! | create | 1 (`PutItem`, or `TransactWriteItems` with the email claim) |
//! | get | 1 consistent `GetItem` |
//! | find by email | 1 `Query` on `byEmail` |
//! | a page of a listing, a search or the change feed | 4 to 7 `Query`s in most cases, never more than 12 (24 for a search): see [Listing costs](#listing-costs) |
//! | patch that leaves the email and the names alone, or sets both names | 1 conditional `UpdateItem` returning the new item |
//! | patch that sets one name and leaves the email alone | 2: a consistent `GetItem` (the name keys are made of both names), then the conditional `UpdateItem`, also conditioned on the other name being the one read |
//! | patch that sets or clears the email | 2: a consistent `GetItem`, then `TransactWriteItems` conditioned on the version read (transactions return no item, and the old claim's key is the old email) |
//! | delete of a customer without email | 1 conditional `UpdateItem` that makes the item a tombstone |
//! | delete of a customer with email | 2: the conditional `UpdateItem` fails and returns the item, then `TransactWriteItems` makes the tombstone and deletes the claim |
//! | bulk put | 1 `TransactWriteItems` per 50 customers, plus retries |
//! | holding an idempotency key | 1 conditional `PutItem` (a key already done is answered by it) |
//! | keyed create | 1 `TransactWriteItems`: the customer (and its claim) and the key's record |
//! | keyed patch | 2: a consistent `GetItem`, then `TransactWriteItems` with the key's record |
//! | keyed delete | 1 `TransactWriteItems` (tombstone and record); 2 for a customer with an email |
//! | giving a key back | 1 conditional `DeleteItem` |
//! | claims check ([operator tool](#operator-tools)), per page | 1 consistent `Scan`, and 1 consistent `BatchGetItem` per 100 customers with an email and claims on it: 2 for a page without finding |
//! | claims check, per pair that disagrees | 1 `TransactGetItems` (2 when the claim names someone else than the batch read; 1 more for a suspected orphan, at the end of the walk), and with `repair`, 1 `TransactWriteItems` per repair |
//! | table description ([operator tool](#operator-tools)) | 3 at once: `DescribeTable`, `DescribeTimeToLive`, `DescribeContinuousBackups` |
//!
//! Races add attempts (bounded, with backoff); they never lose an update: every write is conditional.
//! `tests/dynamodb/requests.rs` counts the requests of each row on DynamoDB Local and fails on any
//! other number (the operator tools' rows: `tests/dynamodb/claims_check.rs` and `describe.rs`).
//!
//! # Listing costs
//!
//! A page of `limit` items (1–100) costs, whatever the table's size:
//!
//! | page of | Queries | items read |
//! | --- | --- | --- |
//! | `createdAt`, `-createdAt`, `name` | 4 in parallel (one per shard of the index), plus at most 3 refills: 4 to 7 | at most 2.5 × `limit` + 2.5 |
//! | `updatedAt` | as above while no tombstone lies among the customers read; each tombstone read is dropped and may cost a refill: at most 12 | at most 12 × (`limit` + 1) |
//! | a name search | 8 in parallel (`byName` and `byFirstName` on each shard), plus refills: at most 24 | at most 24 × (`limit` + 1); a customer whose two names both match is read twice |
//! | the change feed | as `createdAt` while no expired tombstone is read (DynamoDB removes them within about two days; until then they are dropped like `updatedAt`'s tombstones): at most 12 | as `createdAt`; at most 12 × (`limit` + 1) |
//!
//! Every Query reads at most `limit` + 1 items and stops at DynamoDB's 1 MB (a page of the largest
//! customers is half of that). The first four (or eight) read `limit / 4 + 1` items each; a shard
//! is read again only when the merge cannot go on without it: it ran dry and it may still hold the
//! next key. Its refill asks for what the page still needs plus one (the one after the page, which
//! says whether there is a next), so a shard whose reads drop nothing is refilled at most once per
//! page and at most three shards are; a shard that dropped items asks for more in the proportion
//! it kept, up to `limit` + 1. The bound on Queries is three per stream; a page that reaches it
//! ends short, with a cursor where every shard has been read up to (it may then be empty: a run of
//! tombstones longer than the bound can read).
//!
//! Measured on 3,000 customers (BENCHMARKS.md): 5.4–5.7 Queries and 1.5 × `limit` items per page
//! of 25 (1.25 × at 100) for the orders and the feed, about 2.8 read capacity units per page of 25
//! (each Query costs at least 0.5: reads are eventually consistent); `updatedAt` 6–6.5 Queries
//! with a tenth of the table deleted; a search about 10 Queries, reading up to 3 items per item
//! returned when most customers match by both names. `tests/dynamodb/requests.rs` checks the
//! bounds page by page on 300 customers.
//!
//! Every single-customer operation is one round trip where DynamoDB allows it. Three rows take
//! two, because DynamoDB cannot do them in one:
//! - **A patch that sets one name** must rewrite `nameKey` (the folded `last first`) and
//!   `firstNameKey` (`first last`), which are made of both names, and an update expression can set
//!   an attribute to a value or to arithmetic on a number, never to a text joined from a stored
//!   value. So the other name is read first, and the `UpdateItem` is conditioned on it being still
//!   the one read: a rename of the other name in between makes the patch read again. It is not
//!   conditioned on the version read, so concurrent patches of one customer do not refuse each
//!   other, as they never did. A patch that sets both names needs no read.
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
//! No read is a read-modify-write race: the write that follows is conditioned on what it read (the
//! version, or the other name), so a change in between makes it retry, never overwrite.
//!
//! A patch of values the customer has already writes nothing: no new version, no new `updatedAt`,
//! no stream record and so no change event. The in-place `UpdateItem` is conditioned on at least
//! one field it sets being different, and when only that condition fails, the item DynamoDB
//! hands back is the answer (still one round trip). A patch that reads first compares what it
//! read, and writes nothing; under an idempotency key it still completes the key's record, in a
//! transaction with a check that the customer is as read. The condition compares stored text: an
//! item whose names were written before names were stored in NFC differs from the same names
//! sent again, so the first such patch rewrites it once, normalised (its event names no field).
//!
//! # Upgrading a table of the previous layout
//!
//! A table written by a version without the listing indexes lacks them and its items lack the
//! listing keys. The indexes come from the deployment (DynamoDB adds one index per table update:
//! `deploy/README.md`, "Upgrading to the listing indexes", adds them in four steps). The keys come
//! from [`DynamoCustomerRepository::backfill_listing_keys`] (`cargo run --example backfill`): a
//! paginated, consistent `Scan` that gives each customer and tombstone the keys it lacks, with an
//! `UpdateItem` conditioned on the item being as read (kind, version and every attribute a key is
//! made of), and changes nothing else: not the version, not `updatedAt`, not the write token. The
//! service may run meanwhile; a write in between wins and the backfill looks again. It is
//! idempotent (a second run updates nothing) and resumable ([`Backfill::resume_after`]). A
//! customer whose stored names are no longer valid (only invisible characters, or a bidirectional
//! override) does not decode, so it gets no key: the report counts it as unreadable, and it stays
//! out of the listings until it is repaired by hand. A tombstone without `updatedAt` (this crate
//! always wrote one) takes its time from `expiresAt` less the tombstone retention.
//!
//! The backfill scans, so it needs `dynamodb:Scan` and `dynamodb:UpdateItem` on the table: an
//! operator's credentials. The service itself never scans, and the function roles of the
//! templates are not granted `Scan`.
//!
//! # Operator tools
//!
//! Besides the backfill, two tools for an operator (the `crm` command line's `crm claims check
//! [--repair]` and `crm table describe`). Neither is a service path: the claims check scans, like
//! the backfill, and the description reads the table's settings, and the function roles of the
//! templates are granted neither. Run them with an operator's credentials, with these actions on
//! the table:
//!
//! | tool | IAM actions |
//! | --- | --- |
//! | [`backfill_listing_keys`](DynamoCustomerRepository::backfill_listing_keys) | `dynamodb:Scan`, `dynamodb:UpdateItem` |
//! | [`check_claims`](DynamoCustomerRepository::check_claims) | `dynamodb:Scan`, `dynamodb:BatchGetItem`, `dynamodb:GetItem` (its `TransactGetItems`); with `repair`, also `dynamodb:PutItem`, `dynamodb:DeleteItem`, `dynamodb:ConditionCheckItem` |
//! | [`describe_table`](DynamoCustomerRepository::describe_table) | `dynamodb:DescribeTable`, `dynamodb:DescribeTimeToLive`, and `dynamodb:DescribeContinuousBackups` for point-in-time recovery (reported unknown without it) |
//!
//! ## Checking the email claims
//!
//! The claims make emails unique, and the API keeps them right; a bug, a manual edit or a partial
//! restore can leave them wrong. [`DynamoCustomerRepository::check_claims`] walks the table like
//! the backfill (a paginated, consistent `Scan`, [`ClaimsCheck::page_size`], resumable with
//! [`ClaimsCheck::resume_after`], a progress callback per page) and checks each customer with an
//! email against its claim and each claim against its customer. It reads only keys, kinds, ids and
//! `emailKey` (no name, address or phone), and its report names customers by id and claims by key
//! (a digest), never an email. Each finding is one of:
//!
//! | finding | what the items say | repair, one `TransactWriteItems` |
//! | --- | --- | --- |
//! | [missing](ClaimProblem::Missing) | a customer holds an email that no claim claims | put the claim, if still absent and the customer still holds the email |
//! | [stale](ClaimProblem::Stale) | its claim names another customer, which is gone or holds another email | put the customer's claim in its place, if it still names that other customer, the customer still holds the email and the other still does not |
//! | [shared](ClaimProblem::Shared) | two customers hold the email (uniqueness was broken); the claim names the other | none: a person decides which one keeps it |
//! | [orphan](ClaimProblem::Orphan) | a claim names a customer that is gone or holds another email, and no customer holds its email: the email is blocked for everyone | delete it, if it still names that customer and that customer still does not hold the email (as read) |
//!
//! Without [`ClaimsCheck::repair`] nothing is written. A pair that looks wrong is read again with
//! `TransactGetItems` (the customer, its claim and the customer the claim names, as of one
//! instant) before it is reported, so that an email change between the scan and the check's
//! second look is not taken for a problem.
//!
//! Why the conditions make each repair safe while the service runs: the API puts a claim only
//! where there is none, and deletes one only while its own customer holds the email and the claim
//! names it. So a create racing the repair of a missing claim for the same email meets the same
//! `attribute_not_exists` condition: one of them wins; if the create does, the repair reports the
//! email [taken](ClaimRepair::Taken) and does not force it. A claim that names a customer not
//! holding its email cannot change under the API, so "still names that customer" means "the
//! claim the check judged"; should it have gone and been claimed anew by a create, it names that
//! create's customer and the repair is refused. The condition on the customer that gets a claim
//! (it still holds the email) keeps the claim true when written: its own email change or delete
//! commits before (the repair fails) or after (and releases the claim, which names it). The
//! condition on the customer that loses one (it still does not hold the email) means a repair
//! never takes an email from a customer that holds it.
//!
//! Orphans are settled at the end of the walk, and deleted only by a walk of the whole table: a
//! claim's key is a digest, so only the customers tell an orphan from the stale claim of a
//! customer that holds its email, and a customer that holds it is met somewhere in the walk (no
//! customer can come to hold an email that is claimed). A resumed walk reports its orphans
//! [undeleted](ClaimRepair::NeedsWholeWalk).
//!
//! ## Describing the table
//!
//! [`DynamoCustomerRepository::describe_table`] reads the table's status, approximate item count
//! and size, billing mode, keys, indexes (status, keys, projection), time to live, stream (view
//! type and ARN) and point-in-time recovery, and lists its
//! [differences](TableDescription::differences) from [`TABLE`]: an index missing, keyed or
//! projected otherwise, or unknown to the code; the time to live off or on another attribute; the
//! stream off or recording other images; a key of another type. None means it matches the code.
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
pub mod metrics;
mod repository;
mod settings;
pub mod stream;
mod table;

pub use repository::{
    Backfill, BackfillError, BackfillPosition, BackfillReport, ClaimFinding, ClaimProblem,
    ClaimRepair, ClaimsCheck, ClaimsError, ClaimsPosition, ClaimsReport, DynamoCustomerRepository,
    IndexDescription, InvalidBackfillPosition, InvalidClaimsPosition, KeySchema, StreamDescription,
    TableDescription, TableDifference, TimeToLiveDescription,
};

/// Customer ⇄ item conversion, for tools that read or write the table directly (exports,
/// migrations) and for benchmarks. The layout is the one in the [crate docs](crate).
pub mod items {
    pub use crate::item::{Item, customer_from_item as from_item, customer_item as to_item};
}
pub use settings::{DynamoSettings, InvalidTableName};
pub use table::{
    CREATED_INDEX, EMAIL_INDEX, FIRST_NAME_INDEX, IndexDefinition, NAME_INDEX, TABLE,
    TableDefinition, UPDATED_INDEX,
};
