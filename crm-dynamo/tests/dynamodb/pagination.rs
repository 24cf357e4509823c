//! Walks over many pages: every listing, searched or not, and the change feed return every
//! customer exactly once, in the order of `crm_domain::listing`'s key functions, whatever the page
//! size; pages are full until the last; cursors of another listing are refused.
//!
//! The table holds customers created at shared minutes (ties go by id), with names that fold
//! alike or start both ways, some of them patched later and some deleted (their tombstones sit in
//! `byUpdated` between the customers that the `updatedAt` listing returns).

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::QueryInput;
use crm_domain::listing::{Change, ChangeFeed, Listing, NamePrefix, SortOrder};
use crm_domain::{
    Cursor, CursorKey, Customer, CustomerId, CustomerPatch, CustomerRepository, NewCustomer,
    PageLimit, RepositoryError, Timestamp,
};
use crm_dynamo::DynamoCustomerRepository;
use serde_json::json;

use crate::support;

const FIRST: [&str; 10] = [
    "Ada",
    "Anna",
    "Émile",
    "Zoë",
    "Grace",
    "Mary Ann",
    "Mary",
    "Ｂｏｂ",
    "Иван",
    "Ann",
];
const LAST: [&str; 10] = [
    "Lovelace",
    "Anna",
    "Adams",
    "SMITH",
    "Smith-Jones",
    "Zola",
    "Hopper",
    "Иванов",
    "De",
    "De La Cruz",
];

/// `minutes` after 2026-01-01T00:00Z.
fn at(minutes: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_767_225_600_000 + minutes * 60_000).unwrap()
}

/// Customer `n` of the table: created at one of 40 minutes, so that many share a time.
fn seed(n: usize) -> Customer {
    let input = NewCustomer::from_json(&json!({
        "id": format!("c{:03}", (n * 37) % 1000),
        "firstName": FIRST[n % 10],
        "lastName": LAST[(n / 10 + n) % 10],
    }))
    .unwrap();
    let minute = i64::try_from((n * 13) % 40).unwrap();
    Customer::create(input, CustomerId::generate(), at(minute))
}

/// A table of `count` customers, every third patched (at one of 20 later minutes) and every fifth
/// deleted, its tombstone kept for an hour (none expires during a test); and the customers as they
/// are now, read back one by one.
async fn seeded(count: usize) -> (DynamoCustomerRepository, Vec<Customer>) {
    let repo = support::fresh_repository()
        .await
        .with_tombstone_retention(Duration::from_hours(1));
    let seeds: Vec<Customer> = (0..count).map(seed).collect();
    assert_eq!(repo.put_many(&seeds).await.unwrap().created, count);
    for (n, customer) in seeds.iter().enumerate() {
        if n % 3 == 0 {
            let patch = CustomerPatch::from_json(&json!({"lastName": LAST[n % 7]})).unwrap();
            let minute = 100 + i64::try_from(n % 20).unwrap();
            repo.update(customer.id(), &patch, None, at(minute))
                .await
                .unwrap();
        }
        if n % 5 == 0 {
            repo.delete(customer.id(), None).await.unwrap();
        }
    }
    let mut live = Vec::new();
    for customer in &seeds {
        live.extend(repo.get(customer.id()).await.unwrap());
    }
    (repo, live)
}

fn ids<'a>(customers: impl IntoIterator<Item = &'a Customer>) -> Vec<&'a str> {
    customers.into_iter().map(|c| c.id().as_str()).collect()
}

/// The customers of `listing` in its order, from the key functions of `crm_domain::listing`.
fn expected(listing: &Listing, customers: &[Customer]) -> Vec<Customer> {
    let mut keyed: Vec<(String, Customer)> = customers
        .iter()
        .filter_map(|c| listing.key(c).map(|key| (key, c.clone())))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| a.cmp(b));
    if matches!(listing, Listing::All(order) if order.descending()) {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, c)| c).collect()
}

/// True when `listing` reads an index of customers only, whose reads the merge keeps whole:
/// every page before the last is then full. (`byUpdated` also holds tombstones, and a search
/// drops the customers it finds under their other name: a run of those may end a page short, at
/// the bound on reads per page.)
fn drops_nothing(listing: &Listing) -> bool {
    matches!(
        listing,
        Listing::All(SortOrder::CreatedAt | SortOrder::CreatedAtDescending | SortOrder::Name)
    )
}

fn page_limit(limit: usize) -> PageLimit {
    PageLimit::new(u64::try_from(limit).unwrap()).unwrap()
}

/// Walks `listing` by pages of `limit`; asserts that every page but the last is full when the
/// listing drops nothing.
async fn walk(repo: &dyn CustomerRepository, listing: &Listing, limit: usize) -> Vec<Customer> {
    let mut all = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..2_000 {
        let page = repo
            .list(listing, page_limit(limit), cursor.as_ref())
            .await
            .unwrap();
        assert!(page.items.len() <= limit, "a page holds at most its limit");
        let last = page.next_cursor.is_none();
        assert!(
            last || page.items.len() == limit || !drops_nothing(listing),
            "{listing:?} by {limit}: a page of {} before the end",
            page.items.len()
        );
        all.extend(page.items);
        match page.next_cursor {
            None => return all,
            Some(next) => cursor = Some(next),
        }
    }
    panic!("the walk of {listing:?} by {limit} does not end");
}

/// Every change since `since`, by pages of `limit`; asserts that every page but the last is full
/// (the feed drops only expired tombstones, and there are none here).
async fn feed(repo: &dyn CustomerRepository, since: Timestamp, limit: usize) -> Vec<Change> {
    let mut all = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..2_000 {
        let page = repo
            .changes(since, page_limit(limit), cursor.as_ref())
            .await
            .unwrap();
        assert!(
            page.next_cursor.is_none() || page.items.len() == limit,
            "since {since} by {limit}: a feed page of {} before the end, after {} changes",
            page.items.len(),
            all.len(),
        );
        all.extend(page.items);
        match page.next_cursor {
            None => return all,
            Some(next) => cursor = Some(next),
        }
    }
    panic!("the feed by {limit} does not end");
}

fn searches() -> Vec<Listing> {
    [
        "a",
        "ann",
        "anna anna",
        "mary",
        "mary ann s",
        "smith",
        "de",
        "de la",
        "zo",
        "иван",
        "b",
    ]
    .into_iter()
    .map(|text| Listing::Name(NamePrefix::parse(text).unwrap()))
    .collect()
}

fn orders() -> Vec<Listing> {
    SortOrder::ALL.map(Listing::All).to_vec()
}

/// Page sizes that each walk a different way through the 120 live customers: one a page (every
/// boundary between two customers is a cursor), below and above the four shards a page merges,
/// a size that divides 120 (the last page is full: its cursor must lead to an empty end, not a
/// repeat) and one that does not, and the largest sizes. Each walk costs DynamoDB Local a query
/// per shard and page, so sizes that add no new way through are left out.
const LIMITS: [usize; 6] = [1, 3, 5, 7, 99, 100];

#[tokio::test]
async fn walks_in_every_order_return_every_customer_once_in_key_order_at_any_page_size() {
    let (repo, live) = seeded(150).await;
    assert_eq!(live.len(), 120, "150 seeded, 30 deleted");
    for listing in orders() {
        let expected = expected(&listing, &live);
        for limit in LIMITS {
            let walked = walk(&repo, &listing, limit).await;
            assert_eq!(ids(&walked), ids(&expected), "{listing:?} by {limit}");
        }
    }
}

#[tokio::test]
async fn a_search_walk_returns_every_match_once_ordered_by_the_name_it_matched() {
    let (repo, live) = seeded(150).await;
    for listing in searches() {
        let expected = expected(&listing, &live);
        for limit in [1, 3, 7, 100] {
            let walked = walk(&repo, &listing, limit).await;
            assert_eq!(ids(&walked), ids(&expected), "{listing:?} by {limit}");
        }
    }
    // Found both ways, under equal keys: once.
    let anna = Listing::Name(NamePrefix::parse("anna anna").unwrap());
    assert!(!walk(&repo, &anna, 100).await.is_empty());
}

#[tokio::test]
async fn the_change_feed_returns_every_change_since_a_time_once_in_updated_order() {
    let (repo, live) = seeded(150).await;
    for since in [at(0), at(20), at(110), Timestamp::now()] {
        let mut expected: Vec<(String, String, u64, bool)> = Vec::new();
        for c in &live {
            if c.updated_at() >= since {
                let change = Change::Customer(c.clone());
                expected.push((change.key(), c.id().to_string(), c.version().get(), false));
            }
        }
        let tombstones: Vec<Change> = feed(&repo, at(0), 100)
            .await
            .into_iter()
            .filter(|c| matches!(c, Change::Deleted(_)))
            .collect();
        let mut deleted: Vec<String> = tombstones.iter().map(|t| t.id().to_string()).collect();
        let mut every_fifth: Vec<String> = (0..150)
            .step_by(5)
            .map(|n| seed(n).id().to_string())
            .collect();
        deleted.sort();
        every_fifth.sort();
        assert_eq!(deleted, every_fifth, "one tombstone per delete");
        for t in tombstones.iter().filter(|t| t.updated_at() >= since) {
            expected.push((t.key(), t.id().to_string(), t.version().get(), true));
        }
        expected.sort();
        for limit in [1, 4, 25, 100] {
            let walked: Vec<(String, String, u64, bool)> = feed(&repo, since, limit)
                .await
                .iter()
                .map(|c| {
                    (
                        c.key(),
                        c.id().to_string(),
                        c.version().get(),
                        matches!(c, Change::Deleted(_)),
                    )
                })
                .collect();
            assert_eq!(walked, expected, "since {since} by {limit}");
        }
    }
}

#[tokio::test]
async fn an_expired_tombstone_leaves_the_feed_before_dynamodb_removes_it() {
    let repo = support::fresh_repository().await;
    let expiring = repo.clone().with_tombstone_retention(Duration::ZERO);
    for n in 0..6 {
        repo.create(&seed(n)).await.unwrap();
    }
    let kept = seed(0);
    let gone = seed(1);
    repo.delete(kept.id(), None).await.unwrap();
    expiring.delete(gone.id(), None).await.unwrap();
    let deleted: Vec<String> = feed(&repo, at(0), 2)
        .await
        .iter()
        .filter(|c| matches!(c, Change::Deleted(_)))
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(deleted, [kept.id().to_string()]);
}

/// Lowers every Query's `Limit` to 1, as DynamoDB's 1 MB cut or many dropped items shorten a
/// chunk: pages then need many reads, and some end short at the bound on reads per page.
#[derive(Debug, Clone)]
struct OneItemQueries;

impl Intercept for OneItemQueries {
    fn name(&self) -> &'static str {
        "OneItemQueries"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(query) = context.input_mut().downcast_mut::<QueryInput>() {
            query.limit = Some(1);
        }
        Ok(())
    }
}

#[tokio::test]
async fn walks_stay_exact_when_every_query_comes_back_short() {
    let settings = support::settings();
    let plain = support::repository_with(settings.clone()).await;
    let config = settings
        .sdk_config()
        .await
        .to_builder()
        .interceptor(OneItemQueries)
        .build();
    let short = DynamoCustomerRepository::from_client(
        aws_sdk_dynamodb::Client::from_conf(config),
        plain.table_name(),
    )
    .with_deadline(settings.operation_timeout());
    let seeds: Vec<Customer> = (0..60).map(seed).collect();
    plain.put_many(&seeds).await.unwrap();
    // Runs of tombstones, so that some pages of `updatedAt` read only tombstones.
    for customer in &seeds[..30] {
        plain.delete(customer.id(), None).await.unwrap();
    }
    let live = &seeds[30..];
    let mut short_pages = 0;
    for listing in orders().into_iter().chain(searches()) {
        let expected = expected(&listing, live);
        for limit in [1, 5, 100] {
            let (walked, short) = walk_short(&short, &listing, limit).await;
            assert_eq!(ids(&walked), ids(&expected), "{listing:?} by {limit}");
            short_pages += short;
        }
    }
    assert!(short_pages > 0, "some pages ended at the bound on reads");
    let mut changes: Vec<String> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..2_000 {
        let page = short
            .changes(at(0), page_limit(7), cursor.as_ref())
            .await
            .unwrap();
        changes.extend(page.items.iter().map(|c| c.id().to_string()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the feed ends");
    let mut expected: Vec<String> = seeds.iter().map(|c| c.id().to_string()).collect();
    let mut sorted = changes.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "30 customers and 30 tombstones, once each"
    );
}

/// Walks `listing` through `repo`, whose pages may end short; also says how many did, before the
/// end.
async fn walk_short(
    repo: &DynamoCustomerRepository,
    listing: &Listing,
    limit: usize,
) -> (Vec<Customer>, usize) {
    let mut all = Vec::new();
    let mut short = 0;
    let mut cursor: Option<Cursor> = None;
    for _ in 0..2_000 {
        let page = repo
            .list(listing, page_limit(limit), cursor.as_ref())
            .await
            .unwrap();
        if page.next_cursor.is_some() && page.items.len() < limit {
            short += 1;
        }
        all.extend(page.items);
        match page.next_cursor {
            None => return (all, short),
            Some(next) => cursor = Some(next),
        }
    }
    panic!("the walk of {listing:?} by {limit} does not end");
}

#[tokio::test]
async fn a_cursor_of_another_listing_or_forged_is_an_invalid_cursor() {
    let (repo, _) = seeded(20).await;
    let one = PageLimit::new(1).unwrap();
    let mut cursors: Vec<(String, Cursor)> = Vec::new();
    for listing in orders().into_iter().chain(searches()) {
        if let Some(cursor) = repo.list(&listing, one, None).await.unwrap().next_cursor {
            cursors.push((format!("{listing:?}"), cursor));
        }
    }
    let feed_cursor = repo.changes(at(0), one, None).await.unwrap().next_cursor;
    cursors.push(("changes".to_owned(), feed_cursor.unwrap()));
    assert!(cursors.len() > 10);

    for listing in orders().into_iter().chain(searches()) {
        for (made_by, cursor) in &cursors {
            let result = repo.list(&listing, one, Some(cursor)).await;
            if *made_by == format!("{listing:?}") {
                assert!(result.is_ok(), "{made_by}: {result:?}");
            } else {
                assert!(
                    matches!(result, Err(RepositoryError::InvalidCursor)),
                    "{made_by}'s cursor with {listing:?}: {result:?}"
                );
            }
        }
    }
    for (made_by, cursor) in &cursors {
        let result = repo.changes(at(0), one, Some(cursor)).await;
        assert_eq!(
            matches!(result, Err(RepositoryError::InvalidCursor)),
            made_by != "changes",
            "{made_by}'s cursor with the feed: {result:?}"
        );
    }

    // Cursors sealed with the repository's key, holding positions it never made; and one
    // sealed with another key.
    let sealing = CursorKey::generate();
    let repo = repo.with_cursor_key(sealing.clone());
    let id = "c000";
    let forged = [
        sealing.seal("createdAt|2026-01-01T00:00:00Z#c000"),
        sealing.seal(&format!("createdAt|{id}")),
        sealing.seal("name|ada lovelace"),
        sealing.seal("updatedAt|"),
        sealing.seal(&format!("search.000000000000|ada\u{1}{id}")),
        CursorKey::generate().seal(&format!("createdAt|2026-01-01T00:00:00.000Z#{id}")),
        Cursor::parse("bm90IGEgY3Vyc29y").unwrap(),
    ];
    for cursor in &forged {
        for listing in orders().into_iter().chain(searches()) {
            let result = repo.list(&listing, one, Some(cursor)).await;
            assert!(
                matches!(result, Err(RepositoryError::InvalidCursor)),
                "{cursor:?} with {listing:?}: {result:?}"
            );
        }
        let result = repo.changes(at(0), one, Some(cursor)).await;
        assert!(matches!(result, Err(RepositoryError::InvalidCursor)));
    }
    // A search cursor whose key does not start with the text is refused, too.
    let smith = Listing::Name(NamePrefix::parse("smith").unwrap());
    let elsewhere = smith.cursor(&sealing, &format!("zola ada\u{1}{id}"));
    let result = repo.list(&smith, one, Some(&elsewhere)).await;
    assert!(matches!(result, Err(RepositoryError::InvalidCursor)));
    // And a feed cursor before `since` starts at `since`.
    let early = ChangeFeed::cursor(&sealing, &format!("2025-01-01T00:00:00.000Z#{id}"));
    let from_cursor = repo.changes(at(30), one, Some(&early)).await.unwrap();
    let from_start = repo.changes(at(30), one, None).await.unwrap();
    assert_eq!(from_cursor.items, from_start.items);
    // Cursors are sealed with a nonce each: compare what they hold.
    let positions = [from_cursor, from_start]
        .map(|page| page.next_cursor.and_then(|cursor| sealing.open(&cursor)));
    assert!(positions[0].is_some());
    assert_eq!(positions[0], positions[1]);
}

/// The same walks through the port as an `Arc<dyn CustomerRepository>`, as the HTTP adapter
/// holds it: the merge's spawned reads need nothing of the caller's.
#[tokio::test]
async fn a_shared_repository_walks_from_many_tasks_at_once() {
    let (repo, live) = seeded(60).await;
    let repo: Arc<dyn CustomerRepository> = Arc::new(repo);
    let expected = ids(&expected(&Listing::All(SortOrder::Name), &live))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let walks: Vec<_> = (0..4)
        .map(|_| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                walk(repo.as_ref(), &Listing::All(SortOrder::Name), 7)
                    .await
                    .iter()
                    .map(|c| c.id().to_string())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for walked in walks {
        assert_eq!(walked.await.unwrap(), expected);
    }
}
