//! What the contract suite cannot see from outside: the indexes staying in step with the
//! customers after every kind of write, tombstones expiring, and the bounds of a page's work.
//! Listings are also checked against their definition (every customer sorted by its key), over
//! names chosen to hit the merge's edge cases.

// Tests: a failed expectation is a panic, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use crm_domain::idempotency::{KeyState, KeyedWrite};
use crm_domain::listing::{created_key, first_name_key, name_key, updated_key};
use crm_domain::{
    Change, Cursor, CursorKey, Customer, CustomerId, CustomerParts, CustomerPatch,
    CustomerRepository, Email, Idempotency, IdempotencyKey, Listing, NamePrefix, Page, PageLimit,
    Patch, PersonName, Phone, RepositoryError, RequestFingerprint, SortOrder, Timestamp, Version,
};

use crate::index::{Index, SKIP_BUDGET};
use crate::{InMemoryCustomerRepository, State};

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A new customer (version 1), created and last changed at `created`.
fn person_at(id_text: &str, first: &str, last: &str, created: Timestamp) -> Customer {
    Customer::from_parts(CustomerParts {
        id: id(id_text),
        first_name: PersonName::parse(first).unwrap(),
        last_name: PersonName::parse(last).unwrap(),
        email: None,
        phone: None,
        address: None,
        created_at: created,
        updated_at: created,
        version: Version::FIRST,
    })
}

fn person(id_text: &str, first: &str, last: &str) -> Customer {
    person_at(id_text, first, last, at("2026-01-01T00:00:00Z"))
}

fn id(text: &str) -> CustomerId {
    CustomerId::parse(text).unwrap()
}

fn rename(first: Option<&str>, last: Option<&str>) -> CustomerPatch {
    CustomerPatch {
        first_name: first.map(|n| PersonName::parse(n).unwrap()),
        last_name: last.map(|n| PersonName::parse(n).unwrap()),
        ..CustomerPatch::default()
    }
}

fn set_email(email: &str) -> CustomerPatch {
    CustomerPatch {
        email: Patch::Set(Email::parse(email).unwrap()),
        ..CustomerPatch::default()
    }
}

fn set_phone() -> CustomerPatch {
    CustomerPatch {
        phone: Patch::Set(Phone::parse("+442071234567").unwrap()),
        ..CustomerPatch::default()
    }
}

fn limit(n: u64) -> PageLimit {
    PageLimit::new(n).unwrap()
}

fn search(text: &str) -> Listing {
    Listing::Name(NamePrefix::parse(text).unwrap())
}

fn ids(customers: &[Customer]) -> Vec<&str> {
    customers.iter().map(|c| c.id().as_str()).collect()
}

/// Every page of `listing`, walked from the start with pages of `size`.
async fn walk(
    repo: &InMemoryCustomerRepository,
    listing: &Listing,
    size: u64,
) -> Vec<Page<Customer>> {
    let mut pages = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = repo
            .list(listing, limit(size), cursor.as_ref())
            .await
            .unwrap();
        cursor.clone_from(&page.next_cursor);
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
    }
}

async fn walked(repo: &InMemoryCustomerRepository, listing: &Listing, size: u64) -> Vec<Customer> {
    walk(repo, listing, size)
        .await
        .into_iter()
        .flat_map(|page| page.items)
        .collect()
}

/// The whole change feed from `since`, walked with pages of `size`.
async fn feed(repo: &InMemoryCustomerRepository, since: Timestamp, size: u64) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = repo
            .changes(since, limit(size), cursor.as_ref())
            .await
            .unwrap();
        changes.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return changes;
        }
    }
}

/// What `listing` holds by its definition: every customer it finds, sorted by its key in it.
fn expected(customers: &[Customer], listing: &Listing) -> Vec<Customer> {
    let mut found: Vec<(String, Customer)> = customers
        .iter()
        .filter_map(|c| listing.key(c).map(|key| (key, c.clone())))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if listing == &Listing::All(SortOrder::CreatedAtDescending) {
        found.reverse();
    }
    found.into_iter().map(|(_, c)| c).collect()
}

/// Fails unless every index holds exactly the keys of the customers (or tombstones) stored, each
/// pointing at the customer's current version: no stale key left by a rename, a delete or a
/// re-creation, none missing, no entry still showing a customer as it was before a patch.
fn assert_in_step(repo: &InMemoryCustomerRepository, after: &str) {
    let state = repo.read();
    let customers: Vec<Customer> = state
        .customers
        .values()
        .map(|record| record.stored.customer())
        .collect();
    for record in state.customers.values() {
        let customer = record.stored.customer();
        assert_eq!(
            record.updated.as_str(),
            updated_key(customer.updated_at(), customer.id()),
            "the updatedAt key of {}, after {after}",
            customer.id()
        );
    }
    let index = |key: fn(&Customer) -> String| -> BTreeMap<String, CustomerId> {
        customers.iter().map(|c| (key(c), c.id().clone())).collect()
    };
    let held = |index: &Index| -> BTreeMap<String, CustomerId> {
        for (key, stored) in index {
            let current = state.customers.get(stored.customer().id());
            assert!(
                current.is_some_and(|record| Arc::ptr_eq(&record.stored, stored)),
                "{key:?} holds a customer as it is not stored, after {after}"
            );
        }
        index
            .iter()
            .map(|(key, stored)| (key.as_str().to_owned(), stored.customer().id().clone()))
            .collect()
    };
    assert_eq!(
        held(&state.indexes.created),
        index(created_key),
        "created, after {after}"
    );
    assert_eq!(
        held(&state.indexes.updated),
        index(|c| updated_key(c.updated_at(), c.id())),
        "updated, after {after}"
    );
    assert_eq!(
        held(&state.indexes.name),
        index(name_key),
        "name, after {after}"
    );
    assert_eq!(
        held(&state.indexes.first_name),
        index(first_name_key),
        "first name, after {after}"
    );
    for (key, buried) in &state.deleted {
        let id = &buried.tombstone.id;
        assert_eq!(
            key.as_str(),
            updated_key(buried.tombstone.deleted_at, id),
            "after {after}"
        );
        assert_eq!(state.tombstones.get(id), Some(key), "after {after}");
        assert!(
            state
                .tombstone_expiry
                .contains(&(buried.expires_at, key.clone())),
            "{id}'s expiry, after {after}"
        );
        assert!(
            !state.customers.contains_key(id),
            "{id} is both a customer and a tombstone, after {after}"
        );
    }
    assert_eq!(state.tombstones.len(), state.deleted.len(), "after {after}");
    assert_eq!(
        state.tombstone_expiry.len(),
        state.deleted.len(),
        "after {after}"
    );
    let emails: HashMap<String, CustomerId> = customers
        .iter()
        .filter_map(|c| Some((c.email()?.normalized(), c.id().clone())))
        .collect();
    assert_eq!(state.emails, emails, "emails, after {after}");
}

async fn keyed_write(repo: &InMemoryCustomerRepository, key: &str, write: &KeyedWrite) {
    let idempotency = Idempotency {
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: RequestFingerprint::new(key),
    };
    let KeyState::Fresh(lease) = repo
        .begin_keyed(&idempotency, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the key {key} is new");
    };
    repo.write_keyed(write, &lease).await.unwrap();
}

#[tokio::test]
async fn every_plain_write_keeps_the_indexes_in_step_with_the_customers() {
    let repo = InMemoryCustomerRepository::new();
    let later = at("2026-02-01T00:00:00Z");
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    repo.create(&person("grace", "Grace", "Hopper"))
        .await
        .unwrap();
    assert_in_step(&repo, "creates");

    repo.update(
        &id("ada"),
        &CustomerPatch {
            last_name: rename(None, Some("King")).last_name,
            ..set_email("ada@example.com")
        },
        None,
        later,
    )
    .await
    .unwrap();
    assert_in_step(&repo, "a rename");
    repo.update(
        &id("ada"),
        &set_phone(),
        None,
        later.after(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert_in_step(&repo, "a patch of the phone alone");
    assert!(matches!(
        repo.update(
            &id("grace"),
            &CustomerPatch {
                first_name: rename(Some("G"), None).first_name,
                ..set_email("ADA@example.com")
            },
            None,
            later
        )
        .await,
        Err(RepositoryError::EmailTaken)
    ));
    assert_in_step(&repo, "a refused patch");

    repo.delete(&id("ada"), None).await.unwrap();
    assert_in_step(&repo, "a delete");
    repo.create(&person("ada", "Ada", "Byron")).await.unwrap();
    assert_in_step(&repo, "a create of the deleted id");

    repo.delete(&id("grace"), Some(Version::FIRST))
        .await
        .unwrap();
    let report = repo
        .put_many(&[
            person("grace", "Grace", "Murray"),
            person("ada", "Ada", "Again"),
            person("alan", "Alan", "Turing"),
        ])
        .await
        .unwrap();
    assert_eq!(report.created, 2);
    assert_in_step(&repo, "an import re-creating a deleted id");
    assert!(
        repo.read().tombstones.is_empty(),
        "every deleted id was created again"
    );
}

#[tokio::test]
async fn every_keyed_write_keeps_the_indexes_in_step_with_the_customers() {
    let repo = InMemoryCustomerRepository::new();
    keyed_write(
        &repo,
        "k1",
        &KeyedWrite::Create(person("edsger", "Edsger", "Dijkstra")),
    )
    .await;
    assert_in_step(&repo, "a keyed create");
    keyed_write(
        &repo,
        "k2",
        &KeyedWrite::Update {
            id: id("edsger"),
            patch: rename(Some("E. W."), None),
            expected: None,
            now: Timestamp::now(),
        },
    )
    .await;
    assert_in_step(&repo, "a keyed patch");
    keyed_write(
        &repo,
        "k3",
        &KeyedWrite::Delete {
            id: id("edsger"),
            expected: None,
        },
    )
    .await;
    assert_in_step(&repo, "a keyed delete");
    keyed_write(
        &repo,
        "k4",
        &KeyedWrite::Create(person("edsger", "Edsger", "Dijkstra")),
    )
    .await;
    assert_in_step(&repo, "a keyed create of the deleted id");
    assert_eq!(
        repo.read().tombstones.len(),
        0,
        "every deleted id was created again"
    );
}

#[tokio::test]
async fn a_renamed_customer_is_found_under_its_new_name_only() {
    let repo = InMemoryCustomerRepository::new();
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    repo.update(
        &id("ada"),
        &rename(Some("Augusta"), Some("King")),
        None,
        Timestamp::now(),
    )
    .await
    .unwrap();
    for old in ["ada", "love"] {
        assert!(walked(&repo, &search(old), 10).await.is_empty(), "{old}");
    }
    for new in ["augusta", "king", "king aug"] {
        assert_eq!(
            ids(&walked(&repo, &search(new), 10).await),
            ["ada"],
            "{new}"
        );
    }
    assert_eq!(
        ids(&walked(&repo, &Listing::All(SortOrder::Name), 10).await),
        ["ada"]
    );
}

#[tokio::test]
async fn every_order_walks_like_a_sort_of_all_customers_by_its_key() {
    let repo = InMemoryCustomerRepository::new();
    let mut customers = Vec::new();
    for (i, (first, last)) in [
        ("Mary", "Smith"),
        ("Mary Ann", "Smith"),
        ("Zed", "Smithe"),
        ("Ann", "Smith-Jones"),
        ("émile", "Zola"),
        ("Emile", "zola"),
        ("Ada", "Lovelace"),
    ]
    .into_iter()
    .enumerate()
    {
        // Two customers per millisecond: ties in time are broken by id.
        let created = at("2026-01-01T00:00:00Z").after(Duration::from_millis(i as u64 / 2));
        let c = person_at(&format!("c{}", 9 - i), first, last, created);
        repo.create(&c).await.unwrap();
        customers.push(c);
    }
    // Patches reorder `updatedAt`: the oldest customer becomes the most recently changed.
    let changed = repo
        .update(&id("c9"), &set_phone(), None, at("2026-03-01T00:00:00Z"))
        .await
        .unwrap();
    customers[0] = changed;
    for order in SortOrder::ALL {
        let listing = Listing::All(order);
        for size in [1, 3, 100] {
            assert_eq!(
                ids(&walked(&repo, &listing, size).await),
                ids(&expected(&customers, &listing)),
                "{order} in pages of {size}"
            );
        }
    }
}

#[tokio::test]
async fn a_name_search_finds_what_the_domain_defines_in_its_order() {
    let repo = InMemoryCustomerRepository::new();
    let mut customers = Vec::new();
    for (i, (first, last)) in [
        ("Ann", "Anderson"), // found both ways under "an": once, at "anderson ann"
        ("Anderson", "Ann"), // …and this one at "ann anderson", from the name index
        ("Anna", "Anna"),    // both keys equal: one entry in each index, one result
        ("Andrea", "Bell"),  // by first name only
        ("Bob", "Anton"),    // by last name only
        ("Åsa", "Ängström"), // accents fold away
        ("ANNE", "Zimmer"),  // case folds away
        ("Zoë", "Annan"),
        ("Bea", "Zed"), // not found
    ]
    .into_iter()
    .enumerate()
    {
        let c = person(&format!("p{i}"), first, last);
        repo.create(&c).await.unwrap();
        customers.push(c);
    }
    let mut texts: Vec<String> = vec![
        "an".into(),
        "ann a".into(),
        "anderson a".into(),
        "zz".into(),
    ];
    for c in &customers {
        for key in [name_key(c), first_name_key(c)] {
            let names = key.split('\u{1}').next().unwrap_or_default();
            for n in 1..=4 {
                texts.push(names.chars().take(n).collect::<String>().trim().to_owned());
            }
        }
    }
    texts.retain(|t| !t.is_empty());
    texts.sort();
    texts.dedup();
    for text in &texts {
        let listing = search(text);
        let want = expected(&customers, &listing);
        for size in [1, 2, 100] {
            assert_eq!(
                ids(&walked(&repo, &listing, size).await),
                ids(&want),
                "{text:?} in pages of {size}"
            );
        }
    }
    // The two-way customers really were found once each.
    assert_eq!(
        ids(&walked(&repo, &search("an"), 2).await)
            .iter()
            .filter(|i| **i == "p0")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_search_whose_every_match_matches_twice_ends_its_pages_early_and_still_finds_everyone_once()
 {
    // Every customer is found under "a" by both names, and every larger key ("ab…") sorts after
    // every smaller one ("aa…"): past the last match, a page would read all the larger keys.
    let letters = |mut n: usize| -> String {
        let mut text = String::new();
        for _ in 0..3 {
            text.push(char::from(b"abcdefghijklmnopqrstuvwxyz"[n % 26]));
            n /= 26;
        }
        text
    };
    // The last matches fill half a page; the page then passes over the larger keys.
    let count = SKIP_BUDGET + 250;
    let customers: Vec<Customer> = (0..count)
        .map(|i| {
            person(
                &format!("c{i:05}"),
                &format!("Ab{}", letters(i)),
                &format!("Aa{}", letters(i)),
            )
        })
        .collect();
    let repo = InMemoryCustomerRepository::new();
    assert_eq!(repo.put_many(&customers).await.unwrap().created, count);
    let listing = search("a");
    let pages = walk(&repo, &listing, 100).await;
    let found: Vec<Customer> = pages.iter().flat_map(|p| p.items.clone()).collect();
    assert_eq!(ids(&found), ids(&expected(&customers, &listing)));
    assert!(
        pages
            .iter()
            .any(|p| p.items.len() < 100 && p.next_cursor.is_some()),
        "a page that passed over {SKIP_BUDGET} entries stops short, with a cursor"
    );
}

#[tokio::test]
async fn a_forged_cursor_past_the_end_of_a_search_reads_nothing_instead_of_panicking() {
    let repo = InMemoryCustomerRepository::new();
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    let listing = search("ad");
    // A key of the right shape, starting with the text, but above the range's upper bound.
    let forged = listing.cursor(&repo.cursor_key, "ad\u{10FFFF}z\u{1}ada");
    let page = repo.list(&listing, limit(10), Some(&forged)).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn a_cursor_of_another_listing_or_of_the_feed_is_invalid() {
    let repo = InMemoryCustomerRepository::new();
    for i in 0..3 {
        repo.create(&person(&format!("c{i}"), "Ada", "Lovelace"))
            .await
            .unwrap();
    }
    let by_name = repo
        .list(&Listing::All(SortOrder::Name), limit(1), None)
        .await
        .unwrap();
    let cursor = by_name.next_cursor.unwrap();
    assert!(matches!(
        repo.list(&Listing::All(SortOrder::CreatedAt), limit(1), Some(&cursor))
            .await,
        Err(RepositoryError::InvalidCursor)
    ));
    assert!(matches!(
        repo.changes(at("2026-01-01T00:00:00Z"), limit(1), Some(&cursor))
            .await,
        Err(RepositoryError::InvalidCursor)
    ));
}

#[tokio::test]
async fn the_updated_at_order_and_len_never_count_a_tombstone() {
    let repo = InMemoryCustomerRepository::new();
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    repo.create(&person("grace", "Grace", "Hopper"))
        .await
        .unwrap();
    repo.delete(&id("ada"), None).await.unwrap();
    assert_eq!(repo.len(), 1);
    assert_eq!(
        ids(&walked(&repo, &Listing::All(SortOrder::UpdatedAt), 10).await),
        ["grace"]
    );
    assert_eq!(repo.get(&id("ada")).await.unwrap(), None);
    assert!(matches!(
        repo.update(&id("ada"), &rename(Some("A"), None), None, Timestamp::now())
            .await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        repo.delete(&id("ada"), None).await,
        Err(RepositoryError::NotFound)
    ));
}

#[tokio::test]
async fn the_change_feed_walks_customers_and_tombstones_in_time_order_from_its_start() {
    let repo = InMemoryCustomerRepository::new();
    let t = |s: u64| at("2026-01-01T00:00:00Z").after(Duration::from_secs(s));
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let c = person_at(name, "X", "Y", t(i as u64));
        repo.create(&c).await.unwrap();
    }
    repo.update(&id("a"), &rename(Some("Z"), None), None, t(10))
        .await
        .unwrap();
    repo.delete(&id("b"), None).await.unwrap(); // now: long after t(10)
    let changes = feed(&repo, t(2), 1).await;
    let seen: Vec<(&str, u64)> = changes
        .iter()
        .map(|c| (c.id().as_str(), c.version().get()))
        .collect();
    assert_eq!(seen, [("c", 1), ("d", 1), ("a", 2), ("b", 2)]);
    assert!(matches!(changes[3], Change::Deleted(_)));
    let keys: Vec<String> = changes.iter().map(Change::key).collect();
    assert!(keys.is_sorted(), "{keys:?}");

    // A cursor from a feed read from an earlier time does not reach back before `since`.
    let early = repo.changes(t(0), limit(1), None).await.unwrap();
    let page = repo
        .changes(t(10), limit(10), early.next_cursor.as_ref())
        .await
        .unwrap();
    let later: Vec<&str> = page.items.iter().map(|c| c.id().as_str()).collect();
    assert_eq!(later, ["a", "b"], "the cursor is at c: d is before `since`");
}

#[tokio::test]
async fn a_tombstone_never_sorts_before_the_change_it_follows() {
    let repo = InMemoryCustomerRepository::new();
    // Changed "in the future" by a caller whose clock is ahead of the store's.
    let ahead = at("2099-01-01T00:00:00Z");
    let c = person_at("ada", "Ada", "L", ahead);
    repo.create(&c).await.unwrap();
    repo.delete(&id("ada"), None).await.unwrap();
    let changes = feed(&repo, ahead, 10).await;
    let [Change::Deleted(tombstone)] = changes.as_slice() else {
        panic!("one tombstone, found {changes:?}");
    };
    assert_eq!(tombstone.deleted_at, ahead);
    assert_eq!(tombstone.version, Version::FIRST.next());
}

fn store_with_tombstone_of(id_text: &str, deleted: Timestamp, retention: Duration) -> State {
    let mut state = State::default();
    state.create(&person(id_text, "Ada", "Lovelace")).unwrap();
    state
        .delete(&id(id_text), None, deleted, retention)
        .unwrap();
    state
}

#[test]
fn a_tombstone_is_dropped_when_its_retention_has_passed_and_not_before() {
    let deleted = at("2026-06-01T00:00:00Z");
    let mut state = store_with_tombstone_of("ada", deleted, Duration::from_secs(10));
    state.expire_tombstones(deleted.after(Duration::from_millis(9_999)));
    assert!(state.tombstones.contains_key(&id("ada")));
    assert_eq!(state.deleted.len(), 1);
    state.expire_tombstones(deleted.after(Duration::from_secs(10)));
    assert!(state.tombstones.is_empty());
    assert!(state.deleted.is_empty());
    assert!(state.tombstone_expiry.is_empty());
}

#[test]
fn an_id_deleted_again_keeps_its_newer_tombstone_until_that_one_expires() {
    let retention = Duration::from_secs(10);
    let first = at("2026-06-01T00:00:00Z");
    let mut state = store_with_tombstone_of("ada", first, retention);
    state.create(&person("ada", "Ada", "Lovelace")).unwrap();
    let second = first.after(Duration::from_secs(5));
    state.delete(&id("ada"), None, second, retention).unwrap();
    assert_eq!(
        state.tombstone_expiry.len(),
        1,
        "the first tombstone left nothing behind"
    );
    // When the first tombstone would have expired, the second is still live.
    state.expire_tombstones(first.after(retention));
    assert_eq!(
        state
            .tombstones
            .get(&id("ada"))
            .and_then(|key| state.deleted.get(key))
            .map(|b| b.tombstone.deleted_at),
        Some(second)
    );
    state.expire_tombstones(second.after(retention));
    assert!(state.tombstones.is_empty() && state.deleted.is_empty());
}

#[test]
fn a_tombstone_expired_but_not_yet_dropped_is_not_read() {
    let deleted = at("2026-06-01T00:00:00Z");
    let state = store_with_tombstone_of("ada", deleted, Duration::from_secs(10));
    let read = |now| {
        state
            .changes(Bound::Unbounded, limit(10), now, &CursorKey::generate())
            .items
            .len()
    };
    assert_eq!(read(deleted.after(Duration::from_secs(9))), 1);
    assert_eq!(read(deleted.after(Duration::from_secs(10))), 0);
}

#[tokio::test]
async fn a_write_or_a_feed_read_drops_the_tombstones_that_expired() {
    let repo = InMemoryCustomerRepository::new().with_tombstone_retention(Duration::from_millis(1));
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    repo.delete(&id("ada"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(repo.read().tombstones.len(), 1, "nothing dropped it yet");
    repo.create(&person("grace", "Grace", "Hopper"))
        .await
        .unwrap();
    assert!(repo.read().tombstones.is_empty(), "the create dropped it");
    assert!(repo.read().deleted.is_empty());

    repo.delete(&id("grace"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = at("2026-01-01T00:00:00Z");
    assert!(
        repo.changes(since, limit(10), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        repo.read().tombstones.is_empty(),
        "the feed read dropped it"
    );
    assert_in_step(&repo, "expiry");
}

#[tokio::test]
async fn a_tombstone_within_its_retention_stays_until_its_id_is_created_again() {
    let repo = InMemoryCustomerRepository::new();
    let since = at("2026-01-01T00:00:00Z");
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    repo.delete(&id("ada"), None).await.unwrap();
    let changes = repo.changes(since, limit(10), None).await.unwrap().items;
    assert!(matches!(changes.as_slice(), [Change::Deleted(t)] if t.id == id("ada")));
    repo.create(&person("ada", "Ada", "Lovelace"))
        .await
        .unwrap();
    let changes = repo.changes(since, limit(10), None).await.unwrap().items;
    assert!(matches!(changes.as_slice(), [Change::Customer(c)] if c.version() == Version::FIRST));
}

#[tokio::test]
async fn a_cursor_opens_only_in_the_store_that_issued_it() {
    let issuer = InMemoryCustomerRepository::new();
    let other = InMemoryCustomerRepository::new();
    for repo in [&issuer, &other] {
        for i in 0..3 {
            repo.create(&person(&format!("c{i}"), "Ada", "Lovelace"))
                .await
                .unwrap();
        }
    }
    let listing = Listing::default();
    let cursor = issuer
        .list(&listing, limit(1), None)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    assert!(issuer.list(&listing, limit(1), Some(&cursor)).await.is_ok());
    assert!(matches!(
        other.list(&listing, limit(1), Some(&cursor)).await,
        Err(RepositoryError::InvalidCursor)
    ));
}

#[test]
fn keys_compare_as_their_texts() {
    use crate::index::Key;
    // Around the 32 bytes held inline: prefixes of each other, a difference just before, at and
    // after the 32nd byte, the separator before a name key's id, multi-byte characters, time keys
    // of the same millisecond.
    let base = "abcdefghijklmnopqrstuvwxyz012345";
    let mut texts: Vec<String> = vec![
        String::new(),
        "a".to_owned(),
        "ab".to_owned(),
        "b".to_owned(),
        "mary\u{1}x".to_owned(),
        "mary ann\u{1}a".to_owned(),
        "márquez\u{1}z".to_owned(),
        "marquez\u{1}z".to_owned(),
        "2026-01-01T00:00:00.000Z#b".to_owned(),
        "2026-01-01T00:00:00.000Z#a".to_owned(),
        "2026-01-01T00:00:00.000Z#a-long-id-past-the-head".to_owned(),
        "2026-01-01T00:00:00.000Z#a-long-id-past-the-heae".to_owned(),
        "2026-01-01T00:00:00.001Z#a".to_owned(),
    ];
    for cut in [30, 31, 32] {
        texts.push(base[..cut].to_owned());
    }
    texts.extend([
        "a\0".to_owned(),
        "a\0b".to_owned(),
        format!("{}\0", &base[..31]),
    ]);
    for suffix in ["", "0", "1", "\0", "\u{1}", "é", "00", "01"] {
        texts.push(format!("{base}{suffix}"));
        texts.push(format!("{}{suffix}", &base[..31]));
    }
    for a in &texts {
        for b in &texts {
            let (ka, kb) = (Key::new(a), Key::new(b));
            assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} against {b:?}");
            assert_eq!(ka == kb, a == b, "{a:?} against {b:?}");
            // Its own clone shares the text: equal without reading it.
            assert_eq!(ka.cmp(&ka.clone()), std::cmp::Ordering::Equal, "{a:?}");
        }
    }
}

#[tokio::test]
async fn email_changes_keep_the_email_map_in_step() {
    let repo = InMemoryCustomerRepository::new();
    let later = at("2026-02-01T00:00:00Z");
    for (name, email) in [("ada", "Ada@Example.com"), ("grace", "grace@example.com")] {
        repo.create(&person(name, "Ada", "Lovelace")).await.unwrap();
        repo.update(&id(name), &set_email(email), None, later)
            .await
            .unwrap();
    }
    assert_in_step(&repo, "emails set");
    // Its own address in other letters: kept, still its own.
    repo.update(&id("ada"), &set_email("ADA@example.COM"), None, later)
        .await
        .unwrap();
    assert_in_step(&repo, "an email in other letters");
    assert!(matches!(
        repo.update(&id("grace"), &set_email("ada@EXAMPLE.com"), None, later)
            .await,
        Err(RepositoryError::EmailTaken)
    ));
    let found = repo
        .find_by_email(&Email::parse("aDa@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(found.map(|c| c.id().clone()), Some(id("ada")));
    let clear = CustomerPatch {
        email: Patch::Clear,
        ..CustomerPatch::default()
    };
    repo.update(&id("ada"), &clear, None, later).await.unwrap();
    assert_in_step(&repo, "an email cleared");
    repo.update(&id("grace"), &set_email("ada@example.com"), None, later)
        .await
        .unwrap();
    assert_in_step(&repo, "a freed email taken by another customer");
    assert!(
        repo.find_by_email(&Email::parse("grace@example.com").unwrap())
            .await
            .unwrap()
            .is_none(),
        "the former address is free"
    );
}

#[tokio::test]
async fn a_patch_at_the_time_of_the_last_change_keeps_every_entry_where_it_is() {
    let repo = InMemoryCustomerRepository::new();
    let created = at("2026-01-01T00:00:00Z");
    repo.create(&person_at("ada", "Ada", "Lovelace", created))
        .await
        .unwrap();
    // Same `updatedAt` (a clock that did not move): every key is kept, the new version is put
    // in place, where every entry already points.
    let patched = repo
        .update(&id("ada"), &set_phone(), None, created)
        .await
        .unwrap();
    assert_eq!(patched.version(), Version::FIRST.next());
    assert_in_step(&repo, "a patch that keeps every key");
    let page = repo
        .list(&Listing::All(SortOrder::UpdatedAt), limit(10), None)
        .await
        .unwrap();
    assert_eq!(page.items, vec![patched]);
}

#[tokio::test]
async fn a_rename_at_the_time_of_the_last_change_points_the_kept_updated_entry_at_the_new_version()
{
    let repo = InMemoryCustomerRepository::new();
    let created = at("2026-01-01T00:00:00Z");
    repo.create(&person_at("ada", "Ada", "Lovelace", created))
        .await
        .unwrap();
    // The names change (so the customer is stored anew) but `updatedAt` does not: its entry in
    // that order stays where it is and must point at the new version.
    let renamed = repo
        .update(&id("ada"), &rename(None, Some("Byron")), None, created)
        .await
        .unwrap();
    assert_in_step(&repo, "a rename that keeps the updatedAt key");
    for order in SortOrder::ALL {
        let page = repo
            .list(&Listing::All(order), limit(10), None)
            .await
            .unwrap();
        assert_eq!(page.items, vec![renamed.clone()], "{order:?}");
    }
}
