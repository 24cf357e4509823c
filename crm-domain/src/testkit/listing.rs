//! The contract cases of finding customers: the orders, name search, the change feed and its
//! tombstones, and walks that stay exact while other customers are written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{Repo, create, id, patch, stored};
use crate::idempotency::{KeyState, KeyedWrite};
use crate::listing::{Change, Listing, NamePrefix, SortOrder};
use crate::{
    Cursor, Customer, Idempotency, IdempotencyKey, NewCustomer, PageLimit, RepositoryError,
    RequestFingerprint, Timestamp, Version,
};

/// `minutes` after 2026-01-01T00:00Z: the times the cases give creations and patches, so that the
/// orders they check are known in advance.
fn at(minutes: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_767_225_600_000 + minutes * 60_000).expect("a valid time")
}

/// A customer with `id` and names, created at `at(minute)`.
fn born(customer_id: &str, first: &str, last: &str, minute: i64) -> Customer {
    let input = NewCustomer::from_json(&json!({
        "id": customer_id, "firstName": first, "lastName": last
    }))
    .expect("a valid customer in the contract suite");
    Customer::create(input, id(customer_id), at(minute))
}

fn ids(customers: &[Customer]) -> Vec<String> {
    customers.iter().map(|c| c.id().to_string()).collect()
}

fn limit(n: u64) -> PageLimit {
    PageLimit::new(n).expect("a valid limit")
}

fn search(text: &str) -> Listing {
    Listing::Name(NamePrefix::parse(text).expect("a valid search text"))
}

/// Every item of a walk, page by page from no cursor, where `next` fetches the page after a
/// cursor; checking that pages keep their `limit` and the walk ends.
async fn pages<T, F>(limit: PageLimit, what: &str, mut next: F) -> Vec<T>
where
    F: AsyncFnMut(Option<&Cursor>) -> crate::Page<T>,
{
    let mut all = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..2_000 {
        let found = next(cursor.as_ref()).await;
        assert!(
            found.items.len() <= limit.get(),
            "a page holds at most its limit"
        );
        all.extend(found.items);
        match found.next_cursor {
            None => return all,
            Some(next) => {
                cursor = Some(Cursor::parse(next.as_str()).expect("a cursor round-trips"));
            }
        }
    }
    panic!("{what} does not end");
}

/// Every customer of `listing`, page by page.
async fn walk(repo: &Repo, listing: &Listing, page: PageLimit) -> Vec<Customer> {
    pages(page, &format!("a walk of {listing:?}"), async |cursor| {
        repo.list(listing, page, cursor)
            .await
            .expect("list succeeds")
    })
    .await
}

/// Every change since `since`, page by page.
async fn feed(repo: &Repo, since: Timestamp, page: PageLimit) -> Vec<Change> {
    pages(page, "the change feed", async |cursor| {
        repo.changes(since, page, cursor)
            .await
            .expect("changes succeeds")
    })
    .await
}

/// The ids `listing` walks through, once they are `expected`.
///
/// Listings may read indexes that lag the writes before them by a moment (the port allows it, as
/// for lookup by email), so the suite gives a listing two seconds to agree. One that never agrees
/// still fails, with what it listed.
async fn assert_lists(repo: &Repo, listing: &Listing, page: PageLimit, expected: &[&str]) {
    let mut listed = Vec::new();
    for _ in 0..40 {
        listed = ids(&walk(repo, listing, page).await);
        if listed == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{listing:?} by pages of {page:?} listed {listed:?}, expected {expected:?}");
}

/// `(id, version, deleted)` of every change since `since`, once they are `expected`.
async fn assert_feed(
    repo: &Repo,
    since: Timestamp,
    page: PageLimit,
    expected: &[(&str, u64, bool)],
) {
    let mut listed = Vec::new();
    for _ in 0..40 {
        listed = feed(repo, since, page)
            .await
            .iter()
            .map(|c| {
                (
                    c.id().to_string(),
                    c.version().get(),
                    matches!(c, Change::Deleted(_)),
                )
            })
            .collect::<Vec<_>>();
        let same = listed.len() == expected.len()
            && listed
                .iter()
                .zip(expected)
                .all(|((i, v, d), (ei, ev, ed))| i == ei && v == ev && d == ed);
        if same {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the feed since {since} listed {listed:?}, expected {expected:?}");
}

/// Each order lists every customer in that order, whatever the page size: `createdAt` oldest
/// first (the default), `-createdAt` newest first, `name` by last name then first name, and
/// `updatedAt` least recently changed first.
pub async fn every_order_lists_every_customer_in_its_order(repo: Repo) {
    for customer in [
        born("o1", "Ada", "Lovelace", 1),
        born("o2", "Émile", "Zola", 2),
        born("o3", "Grace", "Hopper", 3),
        born("o4", "Alan", "Turing", 4),
        born("o5", "Zoë", "Adams", 5),
    ] {
        create(&repo, &customer).await;
    }
    for (who, minute) in [("o2", 10), ("o1", 11)] {
        repo.update(
            &id(who),
            &patch(&json!({"phone": "+441234567890"})),
            None,
            at(minute),
        )
        .await
        .expect("update succeeds");
    }
    let by = Listing::All;
    let expected = [
        (Listing::default(), ["o1", "o2", "o3", "o4", "o5"]),
        (by(SortOrder::CreatedAt), ["o1", "o2", "o3", "o4", "o5"]),
        (
            by(SortOrder::CreatedAtDescending),
            ["o5", "o4", "o3", "o2", "o1"],
        ),
        (by(SortOrder::Name), ["o5", "o3", "o1", "o4", "o2"]),
        (by(SortOrder::UpdatedAt), ["o3", "o4", "o5", "o2", "o1"]),
    ];
    for page in [limit(1), limit(2), PageLimit::MAX] {
        for (listing, ids) in &expected {
            assert_lists(&repo, listing, page, ids).await;
        }
    }
}

/// Names compare case-, accent- and width-insensitively, last name first and word by word, in
/// every script, and customers whose names fold alike come in id order.
pub async fn the_name_order_ignores_case_accents_and_width_then_goes_by_id(repo: Repo) {
    for customer in [
        born("n1", "zoe", "ADAMS", 1),
        born("n2", "Zoë", "Adams", 2),
        born("n3", "Ｂｏｂ", "Ａｄａｍｓ", 3),
        born("n4", "Σωκράτης", "Αθηναίος", 4),
        born("n5", "Иван", "Иванов", 5),
        born("n6", "Émile", "Zola", 6),
        born("n7", "Mary Ann", "Smith", 7),
        born("n8", "Mary", "Smith", 8),
        born("n9", "Ann", "Smith-Jones", 9),
    ] {
        create(&repo, &customer).await;
    }
    let expected = ["n3", "n1", "n2", "n8", "n7", "n9", "n6", "n4", "n5"];
    for page in [limit(1), limit(4), PageLimit::MAX] {
        assert_lists(&repo, &Listing::All(SortOrder::Name), page, &expected).await;
    }
}

/// A name search finds the customers whose first name, last name, `first last` or `last first`
/// starts with the text, under the name order's folding, in every script; each once, ordered by
/// the name as it matched.
pub async fn a_name_search_matches_the_start_of_either_name_or_of_both(repo: Repo) {
    for customer in [
        born("s1", "Ada", "Lovelace", 1),
        born("s2", "Émile", "Zola", 2),
        born("s3", "Zoe", "Adams", 3),
        born("s4", "Σωκράτης", "Αθηναίος", 4),
        born("s5", "Иван", "Иванов", 5),
        born("s6", "Lovisa", "Berg", 6),
        born("s7", "Anna", "Anna", 7),
    ] {
        create(&repo, &customer).await;
    }
    let cases: &[(&str, &[&str])] = &[
        ("émile", &["s2"]),
        ("EMILE", &["s2"]),
        ("ZOË", &["s3"]),
        ("ｚｏｅ", &["s3"]),
        ("love", &["s1"]),
        ("lov", &["s1", "s6"]),
        ("ada lo", &["s1"]),
        ("Lovelace A", &["s1"]),
        ("lovelace ada", &["s1"]),
        ("  lovelace   ada ", &["s1"]),
        ("σωκ", &["s4"]),
        ("ΑΘΗΝΑΊΟΣ Σ", &["s4"]),
        ("иван", &["s5"]),
        ("a", &["s1", "s3", "s7"]),
        ("anna anna", &["s7"]),
        ("lace", &[]),
        ("ada x", &[]),
        ("zola émile x", &[]),
    ];
    for (text, expected) in cases {
        for page in [limit(1), PageLimit::MAX] {
            assert_lists(&repo, &search(text), page, expected).await;
        }
    }
}

/// A cursor belongs to the listing that made it: used with another order, another search text or
/// the change feed, it is `InvalidCursor`, and so is a feed cursor used with a listing.
pub async fn a_cursor_belongs_to_the_listing_that_made_it(repo: Repo) {
    for (n, name) in ["Ada", "Alan", "Anna"].into_iter().enumerate() {
        let minute = i64::try_from(n).expect("a small number");
        create(&repo, &born(&format!("c{n}"), name, "Able", minute)).await;
    }
    let cursor_of = async |listing: &Listing| {
        repo.list(listing, limit(1), None)
            .await
            .expect("list succeeds")
            .next_cursor
            .expect("a first page of one of three has a next")
    };
    let by_name = cursor_of(&Listing::All(SortOrder::Name)).await;
    let by_a = cursor_of(&search("a")).await;
    let by_created = cursor_of(&Listing::default()).await;
    let refused = [
        (Listing::All(SortOrder::CreatedAt), &by_name),
        (Listing::All(SortOrder::UpdatedAt), &by_name),
        (search("a"), &by_name),
        (Listing::All(SortOrder::Name), &by_a),
        (search("ab"), &by_a),
        (Listing::All(SortOrder::CreatedAtDescending), &by_created),
        (Listing::All(SortOrder::UpdatedAt), &by_created),
    ];
    for (listing, cursor) in refused {
        let result = repo.list(&listing, limit(1), Some(cursor)).await;
        assert!(
            matches!(result, Err(RepositoryError::InvalidCursor)),
            "{listing:?}: {result:?}"
        );
    }
    let feed_cursor = repo
        .changes(at(0), limit(1), None)
        .await
        .expect("changes succeeds")
        .next_cursor
        .expect("a first page of one of three has a next");
    let result = repo
        .list(&Listing::default(), limit(1), Some(&feed_cursor))
        .await;
    assert!(
        matches!(result, Err(RepositoryError::InvalidCursor)),
        "{result:?}"
    );
    let result = repo.changes(at(0), limit(1), Some(&by_created)).await;
    assert!(
        matches!(result, Err(RepositoryError::InvalidCursor)),
        "{result:?}"
    );
    // The cursors still work where they belong.
    for (listing, cursor) in [
        (Listing::All(SortOrder::Name), &by_name),
        (search("a"), &by_a),
        (Listing::default(), &by_created),
    ] {
        repo.list(&listing, limit(1), Some(cursor))
            .await
            .expect("a cursor works with its own listing");
    }
}

/// The change feed lists the customers created or changed at or after a time, in `updatedAt`
/// order, each as it is now.
pub async fn the_change_feed_lists_every_change_since_a_time_in_updated_order(repo: Repo) {
    for customer in [
        born("f1", "Ada", "Lovelace", 1),
        born("f2", "Grace", "Hopper", 2),
        born("f3", "Alan", "Turing", 3),
    ] {
        create(&repo, &customer).await;
    }
    repo.update(
        &id("f1"),
        &patch(&json!({"lastName": "Byron"})),
        None,
        at(4),
    )
    .await
    .expect("update succeeds");
    for page in [limit(1), limit(2), PageLimit::MAX] {
        assert_feed(
            &repo,
            at(0),
            page,
            &[("f2", 1, false), ("f3", 1, false), ("f1", 2, false)],
        )
        .await;
        // `since` is inclusive.
        assert_feed(&repo, at(3), page, &[("f3", 1, false), ("f1", 2, false)]).await;
        assert_feed(&repo, at(5), page, &[]).await;
    }
    let changes = feed(&repo, at(4), PageLimit::MAX).await;
    let stored_now = stored(&repo, "f1").await.expect("f1 exists");
    assert_eq!(
        changes,
        [Change::Customer(stored_now)],
        "a change is the customer as it is now"
    );
}

/// A delete, plain or under an idempotency key, leaves a tombstone in the change feed: the id, the
/// version after the delete and when, nothing else. Nothing else shows the deleted customer.
pub async fn a_delete_leaves_a_tombstone_in_the_feed_and_nowhere_else(repo: Repo) {
    create(&repo, &born("d1", "Ada", "Lovelace", 1)).await;
    create(&repo, &born("d2", "Grace", "Hopper", 2)).await;
    repo.update(
        &id("d1"),
        &patch(&json!({"firstName": "Augusta"})),
        None,
        at(3),
    )
    .await
    .expect("update succeeds");
    let before = Timestamp::now();
    repo.delete(&id("d1"), Some(Version::FIRST.next()))
        .await
        .expect("delete succeeds");
    let key = Idempotency {
        key: IdempotencyKey::parse("tombstone-key").expect("a valid key"),
        fingerprint: RequestFingerprint::new("delete d2"),
    };
    let KeyState::Fresh(lease) = repo
        .begin_keyed(&key, Duration::from_secs(30))
        .await
        .expect("begin succeeds")
    else {
        panic!("a new key is fresh");
    };
    repo.write_keyed(
        &KeyedWrite::Delete {
            id: id("d2"),
            expected: None,
        },
        &lease,
    )
    .await
    .expect("a keyed delete succeeds");
    let after = Timestamp::now();

    let mut tombstones: HashMap<String, (u64, Timestamp)> = HashMap::new();
    for _ in 0..40 {
        tombstones = feed(&repo, at(0), PageLimit::MAX)
            .await
            .into_iter()
            .map(|change| match change {
                Change::Deleted(t) => (t.id.to_string(), (t.version.get(), t.deleted_at)),
                Change::Customer(c) => panic!("{} is deleted but listed as a customer", c.id()),
            })
            .collect();
        if tombstones.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tombstones.len(), 2, "{tombstones:?}");
    assert_eq!(tombstones["d1"].0, 3, "the version after the delete");
    assert_eq!(tombstones["d2"].0, 2, "the version after the delete");
    for (_, deleted_at) in tombstones.values() {
        assert!(
            before <= *deleted_at && *deleted_at <= after,
            "deleted at the delete's time"
        );
    }
    let feed_order: Vec<String> = feed(&repo, before, limit(1))
        .await
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(
        feed_order,
        ["d1", "d2"],
        "tombstones come in deletion order"
    );

    for gone in ["d1", "d2"] {
        assert_eq!(stored(&repo, gone).await, None);
        let patched = repo
            .update(&id(gone), &patch(&json!({"firstName": "X"})), None, at(9))
            .await;
        assert!(
            matches!(patched, Err(RepositoryError::NotFound)),
            "{patched:?}"
        );
        let deleted = repo.delete(&id(gone), None).await;
        assert!(
            matches!(deleted, Err(RepositoryError::NotFound)),
            "{deleted:?}"
        );
    }
    for listing in SortOrder::ALL
        .map(Listing::All)
        .into_iter()
        .chain([search("a"), search("lovelace")])
    {
        assert_lists(&repo, &listing, PageLimit::MAX, &[]).await;
    }
}

/// A tombstone leaves the change feed once the repository's retention has passed.
pub async fn a_tombstone_leaves_the_feed_after_its_retention(repo: Repo) {
    create(&repo, &born("x1", "Ada", "Lovelace", 1)).await;
    let before = Timestamp::now();
    repo.delete(&id("x1"), None).await.expect("delete succeeds");
    assert_feed(&repo, before, PageLimit::MAX, &[("x1", 2, true)]).await;
    // DynamoDB keeps the expiry in whole seconds: give it one more.
    tokio::time::sleep(super::TOMBSTONE_RETENTION + Duration::from_millis(1_500)).await;
    assert_feed(&repo, before, PageLimit::MAX, &[]).await;
    assert_feed(&repo, at(0), limit(1), &[]).await;
}

/// Creating a deleted id again replaces its tombstone: the feed has the new customer, once.
pub async fn creating_a_deleted_id_again_replaces_its_tombstone(repo: Repo) {
    create(&repo, &born("r1", "Ada", "Lovelace", 1)).await;
    repo.delete(&id("r1"), None).await.expect("delete succeeds");
    let reborn = born("r1", "Grace", "Hopper", 2);
    create(&repo, &reborn).await;
    assert_feed(&repo, at(0), limit(1), &[("r1", 1, false)]).await;
    assert_lists(&repo, &search("grace"), PageLimit::MAX, &["r1"]).await;
    assert_lists(&repo, &search("ada"), PageLimit::MAX, &[]).await;
}

/// Names of 100 characters that fold to far more (`ﷺ` folds to 18 letters) are stored, listed
/// in name order, found by search and walked page by page like any other.
pub async fn names_that_fold_long_are_listed_and_found(repo: Repo) {
    let long_first = "\u{FDFA}".repeat(100);
    let long_last = "\u{337F}".repeat(100);
    for customer in [
        born("l1", &long_first, &long_last, 1),
        born("l2", &long_first, &long_last, 2),
        born("l3", "Ada", &long_last, 3),
    ] {
        create(&repo, &customer).await;
    }
    for page in [limit(1), PageLimit::MAX] {
        assert_lists(
            &repo,
            &Listing::All(SortOrder::Name),
            page,
            &["l3", "l1", "l2"],
        )
        .await;
        assert_lists(&repo, &search(&long_first), page, &["l1", "l2"]).await;
        assert_lists(&repo, &search(&long_last), page, &["l3", "l1", "l2"]).await;
    }
}

/// Every listing and the feed of an empty store are one empty last page.
pub async fn every_listing_of_an_empty_store_is_one_empty_page(repo: Repo) {
    for listing in SortOrder::ALL
        .map(Listing::All)
        .into_iter()
        .chain([search("a")])
    {
        let page = repo
            .list(&listing, PageLimit::DEFAULT, None)
            .await
            .expect("list succeeds");
        assert!(
            page.items.is_empty() && page.next_cursor.is_none(),
            "{listing:?}"
        );
    }
    let page = repo
        .changes(at(0), PageLimit::DEFAULT, None)
        .await
        .expect("changes succeeds");
    assert!(page.items.is_empty() && page.next_cursor.is_none());
}

const FIRST: [&str; 6] = ["Ada", "Émile", "Zoë", "Иван", "Grace", "Ｂｏｂ"];
const LAST: [&str; 5] = ["Lovelace", "Adams", "Αθηναίος", "Hopper", "Zola"];

/// Creates, renames and deletes customers `churn-<n>` until `stop` or 400 rounds (so that a feed
/// walk, whose tail this extends, ends), counting rounds in `writes`; sets `done` at the end.
async fn churn(repo: Repo, writes: Arc<AtomicUsize>, stop: Arc<AtomicBool>, done: Arc<AtomicBool>) {
    for n in 0..400_i64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let churn = format!("churn-{n}");
        let i = usize::try_from(n).expect("a small number");
        // Created before, between and after the seeds, with names anywhere in the order.
        let minute = (n * 7) % 60 - 5;
        create(
            &repo,
            &born(&churn, FIRST[(i + 1) % 6], LAST[(i + 2) % 5], minute),
        )
        .await;
        if n % 2 == 0 {
            repo.update(
                &id(&churn),
                &patch(&json!({"lastName": LAST[(i + 3) % 5]})),
                None,
                Timestamp::now(),
            )
            .await
            .expect("a churn rename succeeds");
        }
        if n % 3 == 0 {
            repo.delete(&id(&churn), None)
                .await
                .expect("a churn delete succeeds");
        }
        writes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    done.store(true, Ordering::Relaxed);
}

/// 45 customers created a minute apart, with names in several scripts.
fn seeds() -> Vec<Customer> {
    (0..45_i64)
        .map(|n| {
            let i = usize::try_from(n).expect("a small number");
            born(&format!("seed-{n:02}"), FIRST[i % 6], LAST[i % 5], n)
        })
        .collect()
}

/// Walks in every order, a search walk and a feed walk each return every customer that does not
/// change during the walk exactly once, while other customers are created, renamed and deleted
/// between every two pages.
pub async fn walks_stay_exact_while_other_customers_are_written(repo: Repo) {
    let seeds = seeds();
    let report = repo.put_many(&seeds).await.expect("put_many succeeds");
    assert_eq!(report.created, seeds.len());
    let seed_ids: Vec<String> = ids(&seeds);
    // Let any index catch up before the walks start.
    assert_lists(
        &repo,
        &Listing::default(),
        PageLimit::MAX,
        &seed_ids.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;

    let writes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let churner = tokio::spawn(churn(
        Arc::clone(&repo),
        Arc::clone(&writes),
        Arc::clone(&stop),
        Arc::clone(&done),
    ));
    // Waits until the writer has written since the last page (unless it is done), so that every
    // page boundary sees a write.
    let written_since = async |seen: &mut usize| {
        for _ in 0..5_000 {
            let now = writes.load(Ordering::Relaxed);
            if now > *seen || done.load(Ordering::Relaxed) {
                *seen = now;
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the writer does not write");
    };

    let mut seen_writes = 0;
    let listings: Vec<Listing> = SortOrder::ALL
        .map(Listing::All)
        .into_iter()
        .chain([search("a")])
        .collect();
    for listing in &listings {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            written_since(&mut seen_writes).await;
            let page = repo
                .list(listing, limit(4), cursor.as_ref())
                .await
                .expect("list succeeds");
            for c in &page.items {
                *counts.entry(c.id().to_string()).or_default() += 1;
            }
            match page.next_cursor {
                None => break,
                Some(next) => cursor = Some(next),
            }
        }
        let prefix = match listing {
            Listing::Name(prefix) => Some(prefix.clone()),
            Listing::All(_) => None,
        };
        for seed in &seeds {
            let expected = usize::from(prefix.as_ref().is_none_or(|p| p.key_of(seed).is_some()));
            let got = counts.get(seed.id().as_str()).copied().unwrap_or(0);
            assert_eq!(got, expected, "{} in {listing:?}", seed.id());
        }
        if let Listing::All(SortOrder::CreatedAt | SortOrder::CreatedAtDescending) = listing {
            // A change never moves a customer in the creation order.
            for (who, count) in &counts {
                assert!(*count <= 1, "{who} came {count} times in {listing:?}");
            }
        }
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        written_since(&mut seen_writes).await;
        let page = repo
            .changes(at(-10), limit(4), cursor.as_ref())
            .await
            .expect("changes succeeds");
        for c in &page.items {
            *counts.entry(c.id().to_string()).or_default() += 1;
        }
        match page.next_cursor {
            None => break,
            Some(next) => cursor = Some(next),
        }
    }
    stop.store(true, Ordering::Relaxed);
    churner.await.expect("the writer ends cleanly");
    for seed in &seed_ids {
        assert_eq!(counts.get(seed).copied(), Some(1), "{seed} in the feed");
    }
    assert!(
        writes.load(Ordering::Relaxed) > 10,
        "the walks ran while customers were written"
    );
}
