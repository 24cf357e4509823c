//! Counts the requests each repository operation sends to DynamoDB, and fails when any takes more
//! round trips than the crate docs promise; for listings, also the items each Query reads (its
//! `ScannedCount`). An attempt the SDK sends again (timed out on a loaded machine) is not counted:
//! the promise is about the requests the code makes.
//!
//! `listing_costs_at_three_thousand_customers` is the measurement behind BENCHMARKS.md's listing
//! section; it takes a minute, so it runs only when asked:
//! `cargo test -p crm-dynamo --test dynamodb listing_costs -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use crm_domain::listing::{Listing, NamePrefix, SortOrder};
use crm_domain::{
    Cursor, CursorKey, Customer, CustomerId, CustomerPatch, CustomerRepository, Email, NewCustomer,
    PageLimit, RepositoryError, Timestamp, Version,
};
use crm_dynamo::DynamoCustomerRepository;
use serde_json::json;

use crate::support::{self, Requests};

/// Records the DynamoDB operation of every request put on the wire, and the IAM action each needs
/// (a transaction needs the action of every item it holds); for Queries, their index and `Limit`
/// and the items each read.
#[derive(Debug, Clone, Default)]
struct RequestLog {
    /// The operations and IAM actions, recorded as every test of the harness records them.
    requests: Requests,
    queries: Arc<Mutex<Vec<(String, i64)>>>,
    scanned: Arc<Mutex<Vec<i32>>>,
}

/// What the Queries of one call cost.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reads {
    /// How many Queries.
    queries: usize,
    /// The indexes they read, once each.
    indexes: BTreeSet<String>,
    /// The largest `Limit` any was sent with.
    largest_limit: i64,
    /// The items they read (evaluated), kept or dropped.
    items: usize,
}

impl RequestLog {
    fn take(&self) -> Vec<String> {
        self.requests.take()
    }

    /// Forgets every request so far.
    fn clear(&self) {
        self.take();
        self.queries.lock().unwrap().clear();
        self.scanned.lock().unwrap().clear();
    }

    /// The Queries since the last call, after checking that nothing else was sent.
    fn take_reads(&self) -> Reads {
        let operations = self.take();
        assert!(
            operations.iter().all(|op| op == "Query"),
            "a listing sends Queries only: {operations:?}"
        );
        let queries = std::mem::take(&mut *self.queries.lock().unwrap());
        let scanned = std::mem::take(&mut *self.scanned.lock().unwrap());
        assert_eq!(queries.len(), operations.len());
        assert_eq!(scanned.len(), operations.len(), "every Query answered");
        Reads {
            queries: queries.len(),
            indexes: queries.iter().map(|(index, _)| index.clone()).collect(),
            largest_limit: queries.iter().map(|(_, limit)| *limit).max().unwrap_or(0),
            items: scanned.iter().map(|n| usize::try_from(*n).unwrap()).sum(),
        }
    }

    fn actions(&self) -> BTreeSet<String> {
        self.requests.actions()
    }
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.requests
            .read_before_transmit(context, components, config)?;
        if support::is_retry(config) {
            return Ok(());
        }
        let query = context
            .request()
            .headers()
            .get("x-amz-target")
            .is_some_and(|target| target.ends_with(".Query"));
        if query {
            let body = context.request().body().bytes().unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(body).unwrap();
            self.queries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((
                    body["IndexName"].as_str().unwrap_or("the table").to_owned(),
                    body["Limit"].as_i64().unwrap_or(i64::MAX),
                ));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Ok(output)) = context.output_or_error()
            && let Some(query) = output.downcast_ref::<QueryOutput>()
        {
            self.scanned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(query.scanned_count());
        }
        Ok(())
    }
}

/// A repository on a fresh table that logs its requests. It seals cursors with a key of its own,
/// so that the counts of listings leave out the one read of the table's cursor key per process
/// (counted by [`the_first_listing_of_a_process_reads_the_cursor_key_once`]).
async fn counted_repository() -> (DynamoCustomerRepository, RequestLog) {
    let (repo, log) = counted_repository_reading_its_key().await;
    (repo.with_cursor_key(CursorKey::generate()), log)
}

async fn counted_repository_reading_its_key() -> (DynamoCustomerRepository, RequestLog) {
    let settings = support::settings();
    let plain = support::repository_with(settings.clone()).await;
    counted_on(&settings, plain.table_name()).await
}

/// A repository on `table` with a request log of its own, as another process would be.
async fn counted_on(
    settings: &crm_dynamo::DynamoSettings,
    table: &str,
) -> (DynamoCustomerRepository, RequestLog) {
    let log = RequestLog::default();
    (
        support::intercepted(settings, table, log.clone()).await,
        log,
    )
}

/// The key that seals cursors is kept in the table: the first listing of the first process
/// makes it (a `GetItem` that finds none, a conditional `PutItem`), the first listing of every
/// later process reads it (one `GetItem`), and no listing after that sends anything but its
/// Queries. A cursor of one process opens in another, not with another table's key.
#[tokio::test]
async fn the_first_listing_of_a_process_reads_the_cursor_key_once() {
    let (first, first_log) = counted_repository_reading_its_key().await;
    let settings = support::settings();
    let one = PageLimit::new(1).unwrap();
    for n in 0..3 {
        first
            .create(&customer(
                json!({"id": format!("k{n}"), "firstName": "Ada", "lastName": "Lovelace"}),
            ))
            .await
            .unwrap();
    }
    first_log.take();
    let page = first.list(&Listing::default(), one, None).await.unwrap();
    assert_eq!(
        first_log.take(),
        ["GetItem", "PutItem", "Query", "Query", "Query", "Query"]
    );
    first.list(&Listing::default(), one, None).await.unwrap();
    assert_eq!(first_log.take(), ["Query"; 4]);

    let (second, second_log) = counted_on(&settings, first.table_name()).await;
    let next = second
        .list(&Listing::default(), one, page.next_cursor.as_ref())
        .await
        .unwrap();
    assert_eq!(
        second_log.take(),
        ["GetItem", "Query", "Query", "Query", "Query"]
    );
    assert_eq!(
        next.items[0].id().as_str(),
        "k1",
        "the first process's cursor opens here"
    );
    let elsewhere = support::fresh_repository().await;
    let refused = elsewhere
        .list(&Listing::default(), one, page.next_cursor.as_ref())
        .await;
    assert!(
        matches!(refused, Err(RepositoryError::InvalidCursor)),
        "another table's key does not open it: {refused:?}"
    );
}

fn customer(value: serde_json::Value) -> Customer {
    Customer::create(
        NewCustomer::from_json(&value).unwrap(),
        CustomerId::generate(),
        Timestamp::now(),
    )
}

fn patch(value: serde_json::Value) -> CustomerPatch {
    CustomerPatch::from_json(&value).unwrap()
}

#[tokio::test]
async fn every_single_customer_operation_takes_the_documented_round_trips() {
    let (repo, log) = counted_repository().await;
    let id = |s: &str| CustomerId::parse(s).unwrap();

    repo.create(&customer(
        json!({"id": "plain", "firstName": "A", "lastName": "B"}),
    ))
    .await
    .unwrap();
    assert_eq!(log.take(), ["PutItem"], "create without email");

    repo.create(&customer(
        json!({"id": "mail", "firstName": "A", "lastName": "B", "email": "a@example.com"}),
    ))
    .await
    .unwrap();
    assert_eq!(log.take(), ["TransactWriteItems"], "create with email");

    let duplicate = repo
        .create(&customer(
            json!({"id": "plain", "firstName": "A", "lastName": "B"}),
        ))
        .await;
    assert!(duplicate.is_err());
    assert_eq!(log.take(), ["PutItem"], "a refused create");

    repo.get(&id("plain")).await.unwrap();
    assert_eq!(log.take(), ["GetItem"], "get");

    repo.find_by_email(&Email::parse("A@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(log.take(), ["Query"], "find by email");

    repo.delete(&id("plain"), None).await.unwrap();
    assert_eq!(log.take(), ["UpdateItem"], "delete without email");

    repo.delete(&id("mail"), None).await.unwrap();
    assert_eq!(
        log.take(),
        ["UpdateItem", "TransactWriteItems"],
        "delete with email"
    );

    repo.delete(&id("mail"), None).await.unwrap_err();
    assert_eq!(log.take(), ["UpdateItem"], "delete of a missing customer");
}

/// Patches: one `UpdateItem` unless the patch sets one name only (a read first: the name keys are
/// made of both names) or the email (a read and a transaction: the claims move with it).
#[tokio::test]
async fn every_patch_takes_the_documented_round_trips() {
    let (repo, log) = counted_repository().await;
    let id = |s: &str| CustomerId::parse(s).unwrap();
    let now = Timestamp::now();
    repo.create(&customer(
        json!({"id": "mail", "firstName": "A", "lastName": "B", "email": "a@example.com"}),
    ))
    .await
    .unwrap();
    log.take();

    repo.update(
        &id("mail"),
        &patch(json!({"phone": "+442079460000", "address": {"city": "X", "line1": "1 St"}})),
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(log.take(), ["UpdateItem"], "patch without email or name");

    let stale = repo
        .update(
            &id("mail"),
            &patch(json!({"phone": null})),
            Some(Version::FIRST),
            now,
        )
        .await;
    assert!(stale.is_err());
    assert_eq!(log.take(), ["UpdateItem"], "a stale patch");

    repo.update(&id("mail"), &patch(json!({"firstName": "C"})), None, now)
        .await
        .unwrap();
    assert_eq!(
        log.take(),
        ["GetItem", "UpdateItem"],
        "patch of one name: the name keys are made of both"
    );

    repo.update(
        &id("mail"),
        &patch(json!({"firstName": "C", "lastName": "E"})),
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(log.take(), ["UpdateItem"], "patch of both names");

    let stale = repo
        .update(
            &id("mail"),
            &patch(json!({"lastName": "D"})),
            Some(Version::FIRST),
            now,
        )
        .await;
    assert!(stale.is_err());
    assert_eq!(
        log.take(),
        ["GetItem"],
        "a stale name patch stops at the read"
    );

    let both = repo
        .update(
            &id("mail"),
            &patch(json!({"lastName": "D", "email": "d@example.com"})),
            None,
            now,
        )
        .await
        .unwrap();
    assert_eq!(both.last_name().as_str(), "D");
    assert_eq!(
        log.take(),
        ["GetItem", "TransactWriteItems"],
        "patch of a name and the email"
    );

    repo.update(
        &id("mail"),
        &patch(json!({"email": "b@example.com"})),
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        log.take(),
        ["GetItem", "TransactWriteItems"],
        "patch of the email"
    );
}

/// On a table smaller than a page, each stream's first Query reads all of its shard and says so
/// (no `LastEvaluatedKey`): one round, nothing after it.
#[tokio::test]
async fn a_page_of_a_small_table_is_one_query_per_shard() {
    let (repo, log) = counted_repository().await;
    for n in 0..3 {
        repo.create(&customer(
            json!({"id": format!("small{n}"), "firstName": "Ada", "lastName": "Lovelace"}),
        ))
        .await
        .unwrap();
    }
    repo.delete(&CustomerId::parse("small0").unwrap(), None)
        .await
        .unwrap();
    log.take();
    for listing in SortOrder::ALL.map(Listing::All) {
        repo.list(&listing, PageLimit::DEFAULT, None).await.unwrap();
        assert_eq!(log.take(), ["Query"; 4], "{listing:?} of a small table");
    }
    repo.list(&search("a"), PageLimit::DEFAULT, None)
        .await
        .unwrap();
    assert_eq!(log.take(), ["Query"; 8], "a search of a small table");
    repo.changes(Timestamp::now(), PageLimit::DEFAULT, None)
        .await
        .unwrap();
    assert_eq!(log.take(), ["Query"; 4], "the change feed of a small table");
}

#[tokio::test]
async fn bulk_imports_take_a_transaction_per_chunk() {
    let (repo, log) = counted_repository().await;
    let batch: Vec<Customer> = (0..120)
        .map(|i| customer(json!({"id": format!("bulk{i}"), "firstName": "A", "lastName": "B", "email": format!("bulk{i}@example.com")})))
        .collect();
    let report = repo.put_many(&batch).await.unwrap();
    assert_eq!(report.created, 120);
    assert_eq!(
        log.take(),
        ["TransactWriteItems"; 3],
        "120 customers in chunks of 50"
    );

    // A chunk with conflicts: one cancelled transaction, then one for the rest.
    let mixed = vec![
        customer(json!({"id": "bulk0", "firstName": "A", "lastName": "B"})),
        customer(
            json!({"id": "fresh", "firstName": "A", "lastName": "B", "email": "bulk1@example.com"}),
        ),
        customer(
            json!({"id": "fresh2", "firstName": "A", "lastName": "B", "email": "fresh2@example.com"}),
        ),
    ];
    let report = repo.put_many(&mixed).await.unwrap();
    assert_eq!((report.created, report.rejected.len()), (1, 2));
    assert_eq!(
        log.take(),
        ["TransactWriteItems"; 2],
        "a bulk chunk with conflicts"
    );
}

#[tokio::test]
async fn conditional_and_clearing_operations_take_the_documented_round_trips() {
    let (repo, log) = counted_repository().await;
    let id = |s: &str| CustomerId::parse(s).unwrap();
    let now = Timestamp::now();
    repo.create(&customer(
        json!({"id": "m", "firstName": "A", "lastName": "B", "email": "m@example.com"}),
    ))
    .await
    .unwrap();
    log.take();

    repo.update(
        &id("m"),
        &patch(json!({"email": "n@example.com"})),
        Some(Version::FIRST),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        log.take(),
        ["GetItem", "TransactWriteItems"],
        "a conditional patch of the email"
    );

    let stale = repo
        .update(
            &id("m"),
            &patch(json!({"email": "o@example.com"})),
            Some(Version::FIRST),
            now,
        )
        .await;
    assert!(stale.is_err());
    assert_eq!(
        log.take(),
        ["GetItem"],
        "a stale email patch stops at the read"
    );

    repo.update(&id("m"), &patch(json!({"email": null})), None, now)
        .await
        .unwrap();
    assert_eq!(
        log.take(),
        ["GetItem", "TransactWriteItems"],
        "clearing the email"
    );

    let without_address = repo
        .update(
            &id("m"),
            &patch(json!({"address": {"city": "X"}})),
            None,
            now,
        )
        .await;
    assert!(without_address.is_err());
    assert_eq!(
        log.take(),
        ["UpdateItem"],
        "address parts without an address"
    );

    let stale = repo.delete(&id("m"), Some(Version::FIRST)).await;
    assert!(stale.is_err());
    assert_eq!(log.take(), ["UpdateItem"], "a stale delete");

    repo.delete(&id("m"), Some(Version::FIRST.next().next()))
        .await
        .unwrap();
    assert_eq!(log.take(), ["UpdateItem"], "a conditional delete, no email");
}

/// Writes under an idempotency key: one `PutItem` holds the key, then the write is one transaction
/// that completes the key's record with the change (a patch reads first, as transactions return no
/// item); a key already done is answered by its `PutItem` alone; giving a key back is one
/// `DeleteItem`.
#[tokio::test]
async fn keyed_writes_take_the_documented_round_trips() {
    use crm_domain::idempotency::{KeyState, KeyedWrite};
    let (repo, log) = counted_repository().await;
    let id = |s: &str| CustomerId::parse(s).unwrap();
    let hold = std::time::Duration::from_secs(30);
    let key = |k: &str| crm_domain::Idempotency {
        key: crm_domain::IdempotencyKey::parse(k).unwrap(),
        fingerprint: crm_domain::RequestFingerprint::new("f"),
    };
    let begin = |k: &'static str| {
        let repo = repo.clone();
        async move {
            match repo.begin_keyed(&key(k), hold).await.unwrap() {
                KeyState::Fresh(lease) => lease,
                other => panic!("{other:?}"),
            }
        }
    };

    let lease = begin("create").await;
    assert_eq!(log.take(), ["PutItem"], "holding a key");
    let plain = customer(json!({"id": "plain", "firstName": "A", "lastName": "B"}));
    repo.write_keyed(&KeyedWrite::Create(plain), &lease)
        .await
        .unwrap();
    assert_eq!(log.take(), ["TransactWriteItems"], "keyed create");
    repo.begin_keyed(&key("create"), hold).await.unwrap();
    assert_eq!(log.take(), ["PutItem"], "a key already done");

    let lease = begin("patch").await;
    let write = KeyedWrite::Update {
        id: id("plain"),
        patch: patch(json!({"lastName": "C"})),
        expected: None,
        now: Timestamp::now(),
    };
    repo.write_keyed(&write, &lease).await.unwrap();
    assert_eq!(
        log.take(),
        ["PutItem", "GetItem", "TransactWriteItems"],
        "keyed patch"
    );

    let lease = begin("delete-plain").await;
    let write = KeyedWrite::Delete {
        id: id("plain"),
        expected: None,
    };
    repo.write_keyed(&write, &lease).await.unwrap();
    assert_eq!(
        log.take(),
        ["PutItem", "TransactWriteItems"],
        "keyed delete"
    );

    repo.create(&customer(
        json!({"id": "mail", "firstName": "A", "lastName": "B", "email": "m@example.com"}),
    ))
    .await
    .unwrap();
    log.take();
    let lease = begin("delete-mail").await;
    let write = KeyedWrite::Delete {
        id: id("mail"),
        expected: None,
    };
    repo.write_keyed(&write, &lease).await.unwrap();
    assert_eq!(
        log.take(),
        ["PutItem", "TransactWriteItems", "TransactWriteItems"],
        "keyed delete of a customer with an email"
    );

    let lease = begin("refused").await;
    repo.release_key(&lease).await.unwrap();
    assert_eq!(log.take(), ["PutItem", "DeleteItem"], "a key given back");
}

/// Every IAM action the repository's requests need is one `TABLE` lists, so the CloudFormation
/// templates (checked against `TABLE` by `tests/dynamodb/template.rs`) grant what the code really
/// calls.
#[tokio::test]
async fn the_requests_need_only_the_iam_actions_the_table_definition_lists() {
    let (repo, log) = counted_repository().await;
    let id = |s: &str| CustomerId::parse(s).unwrap();
    let now = Timestamp::now();
    let with_email = |i: &str, e: &str| {
        customer(json!({"id": i, "firstName": "A", "lastName": "B", "email": e}))
    };
    repo.create(&with_email("a", "a@example.com"))
        .await
        .unwrap();
    repo.create(&customer(
        json!({"id": "b", "firstName": "A", "lastName": "B"}),
    ))
    .await
    .unwrap();
    repo.get(&id("a")).await.unwrap();
    repo.find_by_email(&Email::parse("a@example.com").unwrap())
        .await
        .unwrap();
    repo.update(&id("a"), &patch(json!({"lastName": "C"})), None, now)
        .await
        .unwrap();
    repo.update(
        &id("a"),
        &patch(json!({"email": "z@example.com"})),
        None,
        now,
    )
    .await
    .unwrap();
    for listing in SortOrder::ALL
        .map(Listing::All)
        .into_iter()
        .chain([search("a")])
    {
        repo.list(&listing, PageLimit::DEFAULT, None).await.unwrap();
    }
    repo.changes(Timestamp::now(), PageLimit::DEFAULT, None)
        .await
        .unwrap();
    repo.put_many(&[
        with_email("c", "c@example.com"),
        with_email("d", "z@example.com"),
    ])
    .await
    .unwrap();
    repo.delete(&id("a"), None).await.unwrap();
    repo.delete(&id("b"), None).await.unwrap();

    let granted: BTreeSet<String> = crm_dynamo::TABLE
        .table_actions
        .iter()
        .chain(crm_dynamo::TABLE.index_actions)
        .map(|a| (*a).to_owned())
        .collect();
    let needed = log.actions();
    assert!(
        needed.is_subset(&granted),
        "the code needs {:?}, which TABLE does not list",
        needed.difference(&granted).collect::<Vec<_>>()
    );
    // And TABLE lists nothing the code does not need.
    assert_eq!(needed, granted);
}

fn search(text: &str) -> Listing {
    Listing::Name(NamePrefix::parse(text).unwrap())
}

const FIRST: [&str; 8] = [
    "Ada", "Anna", "Émile", "Zoë", "Grace", "Mary Ann", "Alan", "Иван",
];
const LAST: [&str; 7] = [
    "Lovelace", "Anna", "Adams", "Smith", "Zola", "Hopper", "Turing",
];

/// `count` customers with names that a search for `a` finds by first name, by last name or both,
/// created a second apart; a third of them patched since, every tenth deleted (its tombstone sits
/// in `byUpdated`). The requests of the seeding are forgotten.
async fn seed(repo: &DynamoCustomerRepository, log: &RequestLog, count: usize) {
    let start = Timestamp::now().unix_millis() - 86_400_000;
    let customers: Vec<Customer> = (0..count)
        .map(|n| {
            let input = NewCustomer::from_json(&json!({
                "id": format!("c{n:05}"),
                "firstName": FIRST[n % FIRST.len()],
                "lastName": LAST[(n / FIRST.len() + n) % LAST.len()],
                "email": format!("c{n}@example.com"),
            }))
            .unwrap();
            let created = Timestamp::from_unix_millis(start + i64::try_from(n).unwrap() * 1_000);
            Customer::create(input, CustomerId::generate(), created.unwrap())
        })
        .collect();
    for chunk in customers.chunks(500) {
        assert_eq!(repo.put_many(chunk).await.unwrap().created, chunk.len());
    }
    for (n, c) in customers.iter().enumerate() {
        if n % 3 == 0 {
            let patch = patch(json!({"phone": "+441234567890"}));
            repo.update(c.id(), &patch, None, Timestamp::now())
                .await
                .unwrap();
        }
        if n % 10 == 0 {
            repo.delete(c.id(), None).await.unwrap();
        }
    }
    log.clear();
}

/// Every listing this crate documents a cost for, with the bound of Queries per page.
fn listings() -> Vec<(Listing, usize)> {
    SortOrder::ALL
        .map(|order| (Listing::All(order), 12))
        .into_iter()
        .chain([(search("a"), 24), (search("smith"), 24)])
        .collect()
}

/// The most items a page of `limit` reads from four shards when it drops nothing: four chunks
/// of `limit / 4 + 1`, and at most three refills of what the page still needs plus one.
fn undropped_items(limit: usize) -> usize {
    (limit + 1) * 5 / 2
}

#[tokio::test]
async fn every_listing_page_takes_the_documented_queries_and_reads() {
    let (repo, log) = counted_repository().await;
    seed(&repo, &log, 300).await;
    for limit in [1, 10, 25, 100] {
        let page_limit = PageLimit::new(u64::try_from(limit).unwrap()).unwrap();
        for (listing, most) in listings() {
            let mut cursor: Option<Cursor> = None;
            for page in 0.. {
                assert!(page < 400, "the walk of {listing:?} does not end");
                let found = repo
                    .list(&listing, page_limit, cursor.as_ref())
                    .await
                    .unwrap();
                let reads = log.take_reads();
                let what = format!("{listing:?} by {limit}, page {page}: {reads:?}");
                assert!(reads.queries <= most, "{what}");
                let limit_i64 = i64::try_from(limit).unwrap();
                assert!(reads.largest_limit <= limit_i64 + 1, "{what}");
                let index = match &listing {
                    Listing::All(SortOrder::CreatedAt | SortOrder::CreatedAtDescending) => {
                        &["byCreated"][..]
                    }
                    Listing::All(SortOrder::Name) => &["byName"],
                    Listing::All(SortOrder::UpdatedAt) => &["byUpdated"],
                    Listing::Name(_) => &["byFirstName", "byName"],
                };
                assert!(reads.indexes.iter().eq(index.iter()), "{what}");
                if let Listing::All(order) = &listing
                    && *order != SortOrder::UpdatedAt
                {
                    // Nothing to drop: one round of four, at most three refills.
                    assert!((4..=7).contains(&reads.queries), "{what}");
                    assert!(reads.items <= undropped_items(limit), "{what}");
                } else {
                    assert!(reads.items <= reads.queries * (limit + 1), "{what}");
                }
                match found.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        // The change feed: customers and tombstones, none expired, so nothing to drop.
        let mut cursor: Option<Cursor> = None;
        for page in 0.. {
            assert!(page < 400, "the feed does not end");
            let found = repo
                .changes(
                    Timestamp::from_unix_millis(0).unwrap(),
                    page_limit,
                    cursor.as_ref(),
                )
                .await
                .unwrap();
            let reads = log.take_reads();
            let what = format!("the feed by {limit}, page {page}: {reads:?}");
            assert!((4..=7).contains(&reads.queries), "{what}");
            assert!(reads.items <= undropped_items(limit), "{what}");
            assert!(reads.indexes.iter().eq(["byUpdated"].iter()), "{what}");
            match found.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
}

#[tokio::test]
async fn a_cursor_of_another_listing_is_refused_before_any_request() {
    let (repo, log) = counted_repository().await;
    seed(&repo, &log, 20).await;
    let one = PageLimit::new(1).unwrap();
    let by_name = repo
        .list(&Listing::All(SortOrder::Name), one, None)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    log.clear();
    for listing in [
        Listing::All(SortOrder::CreatedAt),
        Listing::All(SortOrder::UpdatedAt),
        search("a"),
    ] {
        let refused = repo.list(&listing, one, Some(&by_name)).await;
        assert!(matches!(refused, Err(RepositoryError::InvalidCursor)));
    }
    let refused = repo.changes(Timestamp::now(), one, Some(&by_name)).await;
    assert!(matches!(refused, Err(RepositoryError::InvalidCursor)));
    let forged = CursorKey::generate().seal("changes|yesterday");
    let refused = repo.changes(Timestamp::now(), one, Some(&forged)).await;
    assert!(matches!(refused, Err(RepositoryError::InvalidCursor)));
    assert_eq!(log.take(), Vec::<String>::new(), "no request sent");
}

/// Asks every Query for its consumed capacity and sums what DynamoDB answers.
#[derive(Debug, Clone, Default)]
struct CapacityLog(Arc<Mutex<f64>>);

impl CapacityLog {
    fn take(&self) -> f64 {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for CapacityLog {
    fn name(&self) -> &'static str {
        "CapacityLog"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(query) = context.input_mut().downcast_mut::<QueryInput>() {
            query.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Ok(output)) = context.output_or_error()
            && let Some(units) = output
                .downcast_ref::<QueryOutput>()
                .and_then(QueryOutput::consumed_capacity)
                .and_then(aws_sdk_dynamodb::types::ConsumedCapacity::capacity_units)
        {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += units;
        }
        Ok(())
    }
}

/// What the pages of one walk cost, summed.
#[derive(Debug, Default)]
struct WalkCost {
    pages: usize,
    queries: usize,
    most_queries: usize,
    items_read: usize,
    most_items_read: usize,
    items_returned: usize,
    capacity: f64,
    first_page: Option<(usize, usize)>,
    elapsed: std::time::Duration,
}

impl WalkCost {
    fn add(&mut self, reads: &Reads, capacity: f64, returned: usize) {
        self.first_page.get_or_insert((reads.queries, reads.items));
        self.pages += 1;
        self.queries += reads.queries;
        self.most_queries = self.most_queries.max(reads.queries);
        self.items_read += reads.items;
        self.most_items_read = self.most_items_read.max(reads.items);
        self.items_returned += returned;
        self.capacity += capacity;
    }

    #[allow(clippy::cast_precision_loss)]
    fn row(&self, what: &str, limit: usize) -> String {
        let pages = self.pages as f64;
        let (first_queries, first_items) = self.first_page.unwrap_or_default();
        format!(
            "| {what} | {limit} | {} | {first_queries} / {first_items} | {:.2} | {} | {:.1} | {} | {:.2} | {:.2} | {:.1} ms |",
            self.pages,
            self.queries as f64 / pages,
            self.most_queries,
            self.items_read as f64 / pages,
            self.most_items_read,
            self.items_read as f64 / self.items_returned.max(1) as f64,
            self.capacity / pages,
            self.elapsed.as_secs_f64() * 1_000.0 / pages,
        )
    }
}

/// The measurement behind BENCHMARKS.md's listing section: full walks of every listing and of the
/// change feed over 3,000 customers (a third patched, every tenth deleted), with the Queries and
/// items read per page. Prints a Markdown table.
#[tokio::test]
#[ignore = "a measurement: run it explicitly (takes a minute)"]
#[allow(clippy::print_stdout)]
async fn listing_costs_at_three_thousand_customers() {
    let (counted, log) = counted_repository().await;
    seed(&counted, &log, 3_000).await;
    let capacity = CapacityLog::default();
    let config = support::settings()
        .sdk_config()
        .await
        .to_builder()
        .interceptor(log.clone())
        .interceptor(capacity.clone())
        .build();
    let repo = DynamoCustomerRepository::from_client(
        aws_sdk_dynamodb::Client::from_conf(config),
        counted.table_name(),
    );
    println!(
        "| listing | limit | pages | first page: Queries / items read | Queries per page (mean) | (max) | items read per page (mean) | (max) | items read per item returned | read capacity units per page (mean) | time per page (mean) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for limit in [25, 100] {
        let page_limit = PageLimit::new(u64::try_from(limit).unwrap()).unwrap();
        for (listing, _) in listings() {
            let mut cost = WalkCost::default();
            let mut cursor: Option<Cursor> = None;
            let started = std::time::Instant::now();
            loop {
                let found = repo
                    .list(&listing, page_limit, cursor.as_ref())
                    .await
                    .unwrap();
                cost.add(&log.take_reads(), capacity.take(), found.items.len());
                match found.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            cost.elapsed = started.elapsed();
            let what = match &listing {
                Listing::All(order) => format!("`{order}`"),
                Listing::Name(prefix) => format!("search `{}`", prefix.folded()),
            };
            println!("{}", cost.row(&what, limit));
        }
        let mut cost = WalkCost::default();
        let mut cursor: Option<Cursor> = None;
        let started = std::time::Instant::now();
        loop {
            let found = repo
                .changes(
                    Timestamp::from_unix_millis(0).unwrap(),
                    page_limit,
                    cursor.as_ref(),
                )
                .await
                .unwrap();
            cost.add(&log.take_reads(), capacity.take(), found.items.len());
            match found.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        cost.elapsed = started.elapsed();
        println!("{}", cost.row("change feed", limit));
    }
}
