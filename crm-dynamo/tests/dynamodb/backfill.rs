//! The listing-key backfill on DynamoDB Local: items written in the previous version's shape (no
//! `shard`, `createdKey`, `updatedKey`, `nameKey`, `firstNameKey`), put there with raw `PutItem`s,
//! get exactly the keys a write of this version gives them, without any other change; a second
//! run writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::listing::updated_key;
use crm_domain::{
    Change, Customer, CustomerId, CustomerRepository, Listing, NewCustomer, PageLimit, SortOrder,
    Timestamp, Version,
};
use crm_dynamo::items::{Item, to_item};
use crm_dynamo::{Backfill, BackfillReport, DynamoCustomerRepository};
use serde_json::json;

use crate::support;

/// The attributes a listing index is keyed on.
const LISTING_KEYS: [&str; 5] = [
    "shard",
    "createdKey",
    "updatedKey",
    "nameKey",
    "firstNameKey",
];

/// A repository on a fresh table, and a client for raw reads and writes of it.
async fn table() -> (DynamoCustomerRepository, Client) {
    let settings = support::settings();
    let repository = support::repository_with(settings.clone()).await;
    (repository, Client::from_conf(settings.sdk_config().await))
}

fn customer(id: &str, first: &str, last: &str) -> Customer {
    let input = NewCustomer::from_json(
        &json!({"id": id, "firstName": first, "lastName": last, "email": format!("{id}@example.com")}),
    )
    .unwrap();
    Customer::create(input, CustomerId::generate(), Timestamp::now())
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

/// `customer`'s item as the previous version wrote it: every listing key missing.
fn previous_item(customer: &Customer) -> Item {
    let mut item = to_item(customer).unwrap();
    for key in LISTING_KEYS {
        item.remove(key);
    }
    item.insert("writeToken".to_owned(), s("token-of-the-last-write"));
    item
}

/// A tombstone as the previous version's delete left it.
fn previous_tombstone(id: &str, deleted_at: Option<Timestamp>, expires_at: u64) -> Item {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&format!("CUSTOMER#{id}"))),
        ("kind".to_owned(), s("deleted")),
        ("id".to_owned(), s(id)),
        ("version".to_owned(), AttributeValue::N("3".to_owned())),
        ("writeToken".to_owned(), s("token-of-the-delete")),
        (
            "expiresAt".to_owned(),
            AttributeValue::N(expires_at.to_string()),
        ),
    ]);
    if let Some(at) = deleted_at {
        item.insert("updatedAt".to_owned(), s(&at.to_string()));
    }
    item
}

async fn put(client: &Client, repository: &DynamoCustomerRepository, item: Item) {
    client
        .put_item()
        .table_name(repository.table_name())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn stored(client: &Client, repository: &DynamoCustomerRepository, id: &str) -> Item {
    client
        .get_item()
        .table_name(repository.table_name())
        .key("pk", s(&format!("CUSTOMER#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("no item for {id}"))
}

/// Runs a backfill, returning its report and every progress report it gave.
async fn run(
    repository: &DynamoCustomerRepository,
    backfill: &Backfill,
) -> (BackfillReport, Vec<BackfillReport>) {
    let mut progress = Vec::new();
    let report = repository
        .backfill_listing_keys(backfill, |so_far| progress.push(so_far.clone()))
        .await
        .unwrap();
    (report, progress)
}

/// Every customer of a listing, walked to its end.
async fn walk(repository: &DynamoCustomerRepository, listing: &Listing) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = repository
            .list(listing, PageLimit::new(2).unwrap(), cursor.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{listing:?}: {e:?}"));
        ids.extend(page.items.iter().map(|c| c.id().to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn items_of_the_previous_version_get_the_keys_a_write_gives_them_and_nothing_else() {
    let (repository, client) = table().await;
    let old = [
        customer("ada", "Ada", "Lovelace"),
        customer("emile", "Émile", "Zola"),
        customer("grace", "Grace", "Hopper"),
    ];
    for c in &old {
        put(&client, &repository, previous_item(c)).await;
    }
    let deleted_at = Timestamp::parse("2026-11-30T12:00:00.123Z").unwrap();
    put(
        &client,
        &repository,
        previous_tombstone("gone", Some(deleted_at), 4_102_444_800),
    )
    .await;
    let current = customer("new", "Alan", "Turing");
    repository.create(&current).await.unwrap();

    let (report, progress) = run(&repository, &Backfill::new().page_size(2)).await;

    assert_eq!(
        (
            report.scanned,
            report.updated,
            report.already_current,
            report.changed_meanwhile,
            report.unreadable
        ),
        (5, 4, 1, 0, 0),
        "{report}"
    );
    assert_eq!(report.resume_after, None, "the scan reached the end");
    assert!(progress.len() >= 3, "a report per page of 2: {progress:?}");
    assert_eq!(progress.last(), Some(&report));
    // A page may come back short or empty (the claims are filtered out of it), never backwards.
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].scanned <= w[1].scanned && w[0].resume_after != w[1].resume_after),
        "{progress:?}"
    );

    for c in &old {
        let item = stored(&client, &repository, c.id().as_str()).await;
        let written_now = to_item(c).unwrap();
        for key in LISTING_KEYS {
            assert_eq!(item.get(key), written_now.get(key), "{} {key}", c.id());
        }
        assert_eq!(
            item.get("writeToken"),
            Some(&s("token-of-the-last-write")),
            "the last write's token stays: its lost reply still finds it"
        );
        assert_eq!(
            repository.get(c.id()).await.unwrap().as_ref(),
            Some(c),
            "no version, time or field changed"
        );
    }

    let tombstone = stored(&client, &repository, "gone").await;
    let id = CustomerId::parse("gone").unwrap();
    assert_eq!(
        tombstone.get("updatedKey"),
        Some(&s(&updated_key(deleted_at, &id)))
    );
    assert!(tombstone.contains_key("shard"));
    for key in ["createdKey", "nameKey", "firstNameKey"] {
        assert!(!tombstone.contains_key(key), "a tombstone has no {key}");
    }
    assert_eq!(
        tombstone.get("version"),
        Some(&AttributeValue::N("3".into()))
    );
    assert_eq!(
        tombstone.get("updatedAt"),
        Some(&s(&deleted_at.to_string()))
    );

    // The indexes hold them now: every order lists every customer, the feed the delete.
    for order in SortOrder::ALL {
        let mut ids = walk(&repository, &Listing::All(order)).await;
        ids.sort();
        assert_eq!(ids, ["ada", "emile", "grace", "new"], "{order}");
    }
    let feed = repository
        .changes(deleted_at, PageLimit::MAX, None)
        .await
        .unwrap();
    assert!(
        feed.items
            .iter()
            .any(|change| matches!(change, Change::Deleted(t) if t.id == id
                && t.version == Version::FIRST.next().next())),
        "{:?}",
        feed.items
    );

    let (again, _) = run(&repository, &Backfill::new()).await;
    assert_eq!(
        (again.scanned, again.updated, again.already_current),
        (5, 0, 5),
        "a second run writes nothing: {again}"
    );
}

/// Names an earlier version accepted and clients can no longer send (nothing visible, a
/// bidirectional override) are read under the rules they were written by: such customers get
/// their keys like any other and are listed; only an item that no version wrote is unreadable.
#[tokio::test]
async fn customers_whose_names_clients_can_no_longer_send_are_backfilled_and_listed() {
    let (repository, client) = table().await;
    let mut ghost = previous_item(&customer("ghost", "Ghost", "Name"));
    ghost.insert("firstName".to_owned(), s("\u{200B}"));
    put(&client, &repository, ghost).await;
    let mut trojan = previous_item(&customer("trojan", "Ada", "Lovelace"));
    trojan.insert("lastName".to_owned(), s("Ada\u{202E}ecalevol"));
    put(&client, &repository, trojan).await;
    let mut broken = previous_item(&customer("broken", "Ada", "Lovelace"));
    broken.insert("firstName".to_owned(), s("Ada\u{7}"));
    put(&client, &repository, broken.clone()).await;

    let (report, _) = run(&repository, &Backfill::new()).await;

    assert_eq!(
        (report.scanned, report.updated, report.unreadable),
        (3, 2, 1),
        "{report}"
    );
    assert_eq!(stored(&client, &repository, "broken").await, broken);
    let listed = repository
        .list(&Listing::All(SortOrder::Name), PageLimit::MAX, None)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.items.iter().map(|c| c.id().as_str()).collect();
    assert_eq!(ids, ["trojan", "ghost"]);
}

#[tokio::test]
async fn a_tombstone_without_a_time_takes_it_from_its_expiry() {
    let (repository, client) = table().await;
    let retention = Duration::from_hours(30 * 24);
    let deleted_at = Timestamp::parse("2026-11-01T08:00:00Z").unwrap();
    let expires_at = u64::try_from(deleted_at.unix_millis() / 1000).unwrap() + retention.as_secs();
    put(
        &client,
        &repository,
        previous_tombstone("undated", None, expires_at),
    )
    .await;
    let mut timeless = previous_tombstone("timeless", None, 0);
    timeless.remove("expiresAt");
    put(&client, &repository, timeless.clone()).await;

    let (report, _) = run(&repository, &Backfill::new()).await;

    assert_eq!((report.updated, report.unreadable), (1, 1), "{report}");
    let tombstone = stored(&client, &repository, "undated").await;
    assert_eq!(
        tombstone.get("updatedAt"),
        Some(&s(&deleted_at.to_string()))
    );
    assert_eq!(
        tombstone.get("updatedKey"),
        Some(&s(&updated_key(
            deleted_at,
            &CustomerId::parse("undated").unwrap()
        )))
    );
    assert_eq!(stored(&client, &repository, "timeless").await, timeless);
}

#[tokio::test]
async fn stale_keys_are_rewritten_and_stray_ones_removed_from_tombstones() {
    let (repository, client) = table().await;
    let renamed = customer("renamed", "Mary", "Shelley");
    let mut item = to_item(&renamed).unwrap();
    item.insert("shard".to_owned(), s("99"));
    item.insert("nameKey".to_owned(), s("godwin mary\u{1}renamed"));
    put(&client, &repository, item).await;
    let mut tombstone = previous_tombstone(
        "leaky",
        Some(Timestamp::parse("2026-11-02T00:00:00Z").unwrap()),
        4_102_444_800,
    );
    tombstone.insert("nameKey".to_owned(), s("secret name\u{1}leaky"));
    put(&client, &repository, tombstone).await;

    let (report, _) = run(&repository, &Backfill::new()).await;

    assert_eq!(report.updated, 2, "{report}");
    let item = stored(&client, &repository, "renamed").await;
    let written_now = to_item(&renamed).unwrap();
    for key in LISTING_KEYS {
        assert_eq!(item.get(key), written_now.get(key), "{key}");
    }
    assert!(
        !stored(&client, &repository, "leaky")
            .await
            .contains_key("nameKey")
    );
}

#[tokio::test]
async fn a_run_resumes_after_the_position_an_earlier_one_reported() {
    let (repository, client) = table().await;
    for i in 0..5 {
        put(
            &client,
            &repository,
            previous_item(&customer(&format!("c{i}"), "A", "B")),
        )
        .await;
    }
    let (report, progress) = run(&repository, &Backfill::new().page_size(1)).await;
    assert_eq!(report.updated, 5);
    let first = progress.first().unwrap();
    assert_eq!(first.scanned, 1);
    let position = first
        .resume_after
        .clone()
        .expect("a position after one item");
    // The position prints and parses back, as an operator would carry it.
    let position = position.to_string().parse().unwrap();

    let (resumed, _) = run(&repository, &Backfill::new().resume_after(position)).await;

    assert_eq!(
        (resumed.scanned, resumed.updated),
        (4, 0),
        "the items after the first, already done: {resumed}"
    );
}

/// Every write path of this version stamps the keys the backfill would give, with the values it
/// would give: after creates, imports, patches and deletes of every kind, keyed or not, a backfill
/// finds everything current.
#[tokio::test]
async fn every_write_of_this_version_leaves_nothing_to_backfill() {
    let (repository, client) = table().await;
    write_every_way(&repository).await;

    let (report, _) = run(&repository, &Backfill::new()).await;

    assert_eq!(
        (
            report.scanned,
            report.already_current,
            report.updated,
            report.changed_meanwhile,
            report.unreadable
        ),
        (7, 7, 0, 0, 0),
        "4 customers and 3 tombstones, all current: {report}"
    );
    for gone in ["gone1", "gone2", "bulk2"] {
        let tombstone = stored(&client, &repository, gone).await;
        assert!(tombstone.contains_key("updatedKey"), "{gone}");
        for key in ["createdKey", "nameKey", "firstNameKey", "firstName"] {
            assert!(!tombstone.contains_key(key), "{gone} keeps {key}");
        }
    }
}

/// Creates, imports, patches and deletes customers through every write path: leaves `plain`,
/// `mail`, `bulk1` and `keyed`, and the tombstones of `gone1`, `gone2` and `bulk2`.
async fn write_every_way(repository: &DynamoCustomerRepository) {
    use crm_domain::idempotency::{KeyState, KeyedWrite};
    use crm_domain::{CustomerPatch, Idempotency, IdempotencyKey, RequestFingerprint};

    let id = |s: &str| CustomerId::parse(s).unwrap();
    let patch = |value: serde_json::Value| CustomerPatch::from_json(&value).unwrap();
    let plain = |i: &str| {
        let input =
            NewCustomer::from_json(&json!({"id": i, "firstName": "Zoë", "lastName": "Ångström"}))
                .unwrap();
        Customer::create(input, CustomerId::generate(), Timestamp::now())
    };
    let keyed = |key: &str| {
        let idempotency = Idempotency {
            key: IdempotencyKey::parse(key).unwrap(),
            fingerprint: RequestFingerprint::new("f"),
        };
        async move {
            match repository
                .begin_keyed(&idempotency, Duration::from_secs(30))
                .await
                .unwrap()
            {
                KeyState::Fresh(lease) => lease,
                other => panic!("{other:?}"),
            }
        }
    };
    let now = Timestamp::now;

    // Creates: without and with an email, imported, keyed.
    repository.create(&plain("plain")).await.unwrap();
    repository
        .create(&customer("mail", "Ada", "Lovelace"))
        .await
        .unwrap();
    let report = repository
        .put_many(&[customer("bulk1", "B", "One"), plain("bulk2")])
        .await
        .unwrap();
    assert_eq!(report.created, 2);
    let lease = keyed("create").await;
    repository
        .write_keyed(&KeyedWrite::Create(plain("keyed")), &lease)
        .await
        .unwrap();

    // Patches: in place, of one name, of both names, of a name and the email, keyed.
    for (who, change) in [
        ("plain", json!({"phone": "+442079460000"})),
        ("mail", json!({"lastName": "King"})),
        (
            "plain",
            json!({"firstName": "Zoé", "lastName": "Ångström-Berg"}),
        ),
        (
            "bulk1",
            json!({"firstName": "Bea", "email": "bea@example.com"}),
        ),
    ] {
        repository
            .update(&id(who), &patch(change), None, now())
            .await
            .unwrap();
    }
    let lease = keyed("patch").await;
    let write = KeyedWrite::Update {
        id: id("keyed"),
        patch: patch(json!({"firstName": "Kay"})),
        expected: None,
        now: now(),
    };
    repository.write_keyed(&write, &lease).await.unwrap();

    // Deletes: without and with an email, keyed.
    repository.create(&plain("gone1")).await.unwrap();
    repository.delete(&id("gone1"), None).await.unwrap();
    repository
        .create(&customer("gone2", "G", "Two"))
        .await
        .unwrap();
    repository.delete(&id("gone2"), None).await.unwrap();
    let lease = keyed("delete").await;
    let write = KeyedWrite::Delete {
        id: id("bulk2"),
        expected: None,
    };
    repository.write_keyed(&write, &lease).await.unwrap();
}
