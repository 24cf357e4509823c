//! The table's stream on DynamoDB Local, read as the events function reads it: the event cases of
//! the contract suite through it, and the mapping of the real records of every kind of write.
//!
//! [`StreamLog`] follows a table's stream from its first record: it reads every shard with
//! `GetRecords` until a read comes back empty, turns each record into a [`StreamChange`] (images
//! through `serde_dynamo`, as Lambda's records are) and, as an [`EventLog`], maps them with
//! [`event_of`].

// `s` wraps on purpose: it spells an expected image kind, `Option<String>` as `kind` reads them.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::unnecessary_wraps
)]

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::config::{Credentials, Region};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use crm_domain::events::{CustomerEvent, EventType};
use crm_domain::idempotency::{KeyState, KeyedWrite};
use crm_domain::testkit::{EventLog, TOMBSTONE_RETENTION};
use crm_domain::{
    Customer, CustomerId, CustomerPatch, CustomerRepository, Idempotency, IdempotencyKey,
    NewCustomer, RequestFingerprint, Timestamp,
};
use crm_dynamo::items::{Item, to_item};
use crm_dynamo::stream::{EVENT_KINDS, KIND_ATTRIBUTE, RecordKind, StreamChange, event_of};
use crm_dynamo::{Backfill, DynamoCustomerRepository, DynamoSettings};
use serde_json::json;

use crate::support;

/// A reader of one table's stream, from its first record.
pub(crate) struct StreamLog {
    client: StreamsClient,
    stream_arn: String,
    /// Each shard met so far → where its next read starts (`None`: the shard is closed and read).
    shards: HashMap<String, Option<String>>,
}

impl StreamLog {
    /// Follows the stream of the table `settings` name, which must exist.
    pub(crate) async fn following(settings: &DynamoSettings) -> Self {
        let tables = aws_sdk_dynamodb::Client::from_conf(settings.sdk_config().await);
        let stream_arn = tables
            .describe_table()
            .table_name(settings.table_name())
            .send()
            .await
            .expect("the table is described")
            .table
            .and_then(|t| t.latest_stream_arn)
            .expect("the table has a stream");
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version_latest()
            .region(Region::new(settings.region().to_owned()))
            .endpoint_url(support::endpoint())
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .build();
        Self {
            client: StreamsClient::from_conf(config),
            stream_arn,
            shards: HashMap::new(),
        }
    }

    /// Every record written since the previous call, each shard's in stream order.
    pub(crate) async fn records(&mut self) -> Vec<StreamChange> {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .expect("the stream is described")
            .stream_description
            .expect("a stream description");
        for shard in description.shards() {
            let shard_id = shard.shard_id().expect("a shard id").to_owned();
            if self.shards.contains_key(&shard_id) {
                continue;
            }
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("a shard iterator")
                .shard_iterator;
            self.shards.insert(shard_id, iterator);
        }
        let mut changes = Vec::new();
        for position in self.shards.values_mut() {
            while let Some(iterator) = position.take() {
                let read = self
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .send()
                    .await
                    .expect("the shard reads");
                let empty = read.records().is_empty();
                changes.extend(read.records().iter().map(change_of));
                *position = read.next_shard_iterator;
                if empty {
                    break;
                }
            }
        }
        changes
    }
}

/// A record of the Streams API as the mapping takes it.
fn change_of(record: &aws_sdk_dynamodbstreams::types::Record) -> StreamChange {
    let kind = record
        .event_name()
        .and_then(|name| RecordKind::parse(name.as_str()))
        .expect("a known event name");
    let data = record.dynamodb().expect("the record's data");
    let image = |image: Option<
        &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >| { image.map(|image| Item::from(serde_dynamo::Item::from(image.clone()))) };
    let seconds = data
        .approximate_creation_date_time()
        .expect("a creation time")
        .secs();
    StreamChange {
        kind,
        old_image: image(data.old_image.as_ref()),
        new_image: image(data.new_image.as_ref()),
        recorded_at: Timestamp::from_unix_millis(seconds * 1000).expect("a valid time"),
    }
}

#[async_trait]
impl EventLog for StreamLog {
    async fn take(&mut self) -> Vec<CustomerEvent> {
        self.records()
            .await
            .iter()
            .filter_map(|change| event_of(change).expect("every record of the table maps"))
            .collect()
    }
}

mod contract {
    use super::*;

    crm_domain::event_contract_tests!(|| async {
        let settings = support::settings();
        let repository = support::repository_with_stream(settings.clone())
            .await
            .with_tombstone_retention(TOMBSTONE_RETENTION);
        let log = StreamLog::following(&settings).await;
        (
            Arc::new(repository) as Arc<dyn CustomerRepository>,
            Box::new(log) as Box<dyn EventLog>,
        )
    });
}

/// What a test compares of a record: its kind, the kinds of its images, and the type of the event
/// it tells.
type Seen = (
    RecordKind,
    Option<String>,
    Option<String>,
    Option<EventType>,
);

fn kind(image: Option<&Item>) -> Option<String> {
    image.map(|item| match item.get(KIND_ATTRIBUTE) {
        Some(AttributeValue::S(kind)) => kind.clone(),
        other => panic!("an item without a kind: {other:?}"),
    })
}

/// Whether the event source mapping's filter (deploy/) lets the record through: a new image of
/// a kind that can tell an event, or an old image that is a customer (Lambda filters DynamoDB
/// records on their `dynamodb` member only, so the removal of a customer is kept by its old image).
fn filter_keeps(change: &StreamChange) -> bool {
    let new_kind = kind(change.new_image.as_ref());
    let old_kind = kind(change.old_image.as_ref());
    new_kind.is_some_and(|k| EVENT_KINDS.contains(&k.as_str()))
        || old_kind.as_deref() == Some("customer")
}

/// The records written since the last read, as seen, sorted (the records of one transaction are
/// of several items, whose order in the stream is not the point); checking on the way that the
/// filter keeps every record that tells an event, and no email claim or idempotency record.
async fn seen(log: &mut StreamLog) -> Vec<Seen> {
    let mut seen: Vec<Seen> = log
        .records()
        .await
        .iter()
        .map(|change| {
            let event = event_of(change).expect("every record of the table maps");
            if event.is_some() {
                assert!(
                    filter_keeps(change),
                    "the filter drops an event: {change:?}"
                );
            }
            let kinds = [
                kind(change.old_image.as_ref()),
                kind(change.new_image.as_ref()),
            ];
            if kinds
                .iter()
                .flatten()
                .any(|k| k == "email" || k == "idempotency")
            {
                assert!(!filter_keeps(change), "the filter keeps bookkeeping");
            }
            let [old, new] = kinds;
            (change.kind, old, new, event.map(|e| e.kind))
        })
        .collect();
    seen.sort_by_key(|s| format!("{s:?}"));
    seen
}

fn s(kind: &str) -> Option<String> {
    Some(kind.to_owned())
}

fn customer(id: &str, email: Option<&str>) -> Customer {
    let mut input = json!({"id": id, "firstName": "Ada", "lastName": "Lovelace"});
    if let Some(email) = email {
        input["email"] = json!(email);
    }
    let input = NewCustomer::from_json(&input).unwrap();
    Customer::create(input, CustomerId::generate(), Timestamp::now())
}

fn patch(body: &serde_json::Value) -> CustomerPatch {
    CustomerPatch::from_json(body).unwrap()
}

fn id(text: &str) -> CustomerId {
    CustomerId::parse(text).unwrap()
}

async fn table() -> (
    DynamoCustomerRepository,
    aws_sdk_dynamodb::Client,
    StreamLog,
) {
    let settings = support::settings();
    let repository = support::repository_with_stream(settings.clone()).await;
    let client = aws_sdk_dynamodb::Client::from_conf(settings.sdk_config().await);
    let log = StreamLog::following(&settings).await;
    (repository, client, log)
}

/// The records of every kind of write the repository makes, from DynamoDB Local's stream: each
/// committed change of a customer tells one event and the email claims and idempotency records
/// written beside it in the same transaction tell none, and the filter keeps exactly what can.
#[tokio::test]
async fn every_kind_of_write_is_one_event_among_its_records() {
    use EventType::{Created, Updated};
    use RecordKind::{Insert, Modify, Remove};
    let (repo, _, mut log) = table().await;
    let now = Timestamp::now;

    repo.create(&customer("plain", None)).await.unwrap();
    assert_eq!(
        seen(&mut log).await,
        [(Insert, None, s("customer"), Some(Created))]
    );

    repo.create(&customer("mailed", Some("ada@example.com")))
        .await
        .unwrap();
    assert_eq!(
        seen(&mut log).await,
        [
            (Insert, None, s("customer"), Some(Created)),
            (Insert, None, s("email"), None),
        ],
        "a create with an email: the customer and its claim, in one transaction"
    );

    repo.update(
        &id("mailed"),
        &patch(&json!({"lastName": "Byron"})),
        None,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(
        seen(&mut log).await,
        [(Modify, s("customer"), s("customer"), Some(Updated))],
        "a one-name patch"
    );

    repo.update(
        &id("mailed"),
        &patch(&json!({"email": "augusta@example.com"})),
        None,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(
        seen(&mut log).await,
        [
            (Insert, None, s("email"), None),
            (Modify, s("customer"), s("customer"), Some(Updated)),
            (Remove, s("email"), None, None),
        ],
        "an email change: the new claim, the customer, the old claim released"
    );

    repo.update(&id("mailed"), &patch(&json!({"email": null})), None, now())
        .await
        .unwrap();
    assert_eq!(
        seen(&mut log).await,
        [
            (Modify, s("customer"), s("customer"), Some(Updated)),
            (Remove, s("email"), None, None),
        ],
        "an email cleared"
    );
}

/// The records of deletes, of an id created again, of a bulk import and of a keyed write, as in
/// [`every_kind_of_write_is_one_event_among_its_records`].
#[tokio::test]
async fn deletes_imports_and_keyed_writes_are_one_event_each_among_their_records() {
    use EventType::{Created, Deleted};
    use RecordKind::{Insert, Modify, Remove};
    let (repo, _, mut log) = table().await;
    repo.create(&customer("plain", None)).await.unwrap();
    repo.create(&customer("mailed", Some("ada@example.com")))
        .await
        .unwrap();
    seen(&mut log).await;
    repo.delete(&id("mailed"), None).await.unwrap();
    assert_eq!(
        seen(&mut log).await,
        [
            (Modify, s("customer"), s("deleted"), Some(Deleted)),
            (Remove, s("email"), None, None),
        ],
        "a delete of a customer with an email: its tombstone, its claim released"
    );
    repo.delete(&id("plain"), None).await.unwrap();
    assert_eq!(
        seen(&mut log).await,
        [(Modify, s("customer"), s("deleted"), Some(Deleted))],
        "a delete of a customer without an email"
    );

    repo.create(&customer("plain", None)).await.unwrap();
    assert_eq!(
        seen(&mut log).await,
        [(Modify, s("deleted"), s("customer"), Some(Created))],
        "an id created again over its tombstone"
    );

    let report = repo
        .put_many(&[
            customer("bulk-1", Some("bulk-1@example.com")),
            customer("bulk-2", None),
            customer("plain", None),
        ])
        .await
        .unwrap();
    assert_eq!(report.created, 2);
    assert_eq!(
        seen(&mut log).await,
        [
            (Insert, None, s("customer"), Some(Created)),
            (Insert, None, s("customer"), Some(Created)),
            (Insert, None, s("email"), None),
        ],
        "a bulk import: each customer written, the claim of its email; none for the refused"
    );

    let key = Idempotency {
        key: IdempotencyKey::parse("stream-1").unwrap(),
        fingerprint: RequestFingerprint::new("fingerprint"),
    };
    let KeyState::Fresh(lease) = repo
        .begin_keyed(&key, std::time::Duration::from_mins(1))
        .await
        .unwrap()
    else {
        panic!("a fresh key")
    };
    repo.write_keyed(&KeyedWrite::Create(customer("keyed", None)), &lease)
        .await
        .unwrap();
    let keyed = seen(&mut log).await;
    assert_eq!(
        keyed
            .iter()
            .filter(|(_, _, new, _)| new.as_deref() == Some("customer"))
            .collect::<Vec<_>>(),
        [&(Insert, None, s("customer"), Some(Created))],
        "a keyed create: {keyed:?}"
    );
    assert_eq!(
        keyed.iter().filter(|s| s.3.is_some()).count(),
        1,
        "{keyed:?}"
    );
}

/// Writes that are not a customer's change: the listing-key backfill rewriting a customer at its
/// version tells nothing; a customer item removed outright (by a tool that bypasses tombstones)
/// tells its delete; a tombstone removed (as the time to live does) tells nothing.
#[tokio::test]
async fn maintenance_writes_tell_nothing_and_a_raw_removal_tells_a_delete() {
    use RecordKind::{Modify, Remove};
    let (repo, client, mut log) = table().await;
    let table = repo.table_name().to_owned();

    // An item as the previous layout wrote it, without listing keys, then the backfill.
    let mut legacy = to_item(&customer("legacy", None)).unwrap();
    for attribute in [
        "shard",
        "createdKey",
        "updatedKey",
        "nameKey",
        "firstNameKey",
    ] {
        legacy.remove(attribute);
    }
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(legacy))
        .send()
        .await
        .unwrap();
    seen(&mut log).await;
    repo.backfill_listing_keys(&Backfill::new(), |_| {})
        .await
        .unwrap();
    let backfilled = seen(&mut log).await;
    assert!(
        backfilled
            .iter()
            .all(|record| *record == (Modify, s("customer"), s("customer"), None)),
        "the backfill tells nothing: {backfilled:?}"
    );
    assert!(!backfilled.is_empty(), "the backfill rewrote the item");

    let key = |who: &str| AttributeValue::S(format!("CUSTOMER#{who}"));
    client
        .delete_item()
        .table_name(&table)
        .key("pk", key("legacy"))
        .send()
        .await
        .unwrap();
    let removed = log.records().await;
    let events: Vec<_> = removed
        .iter()
        .filter_map(|c| event_of(c).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{removed:?}");
    assert_eq!(
        (events[0].kind, events[0].version.get()),
        (EventType::Deleted, 2)
    );

    repo.create(&customer("gone", None)).await.unwrap();
    repo.delete(&id("gone"), None).await.unwrap();
    seen(&mut log).await;
    client
        .delete_item()
        .table_name(&table)
        .key("pk", key("gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        seen(&mut log).await,
        [(Remove, s("deleted"), None, None)],
        "a tombstone's expiry"
    );
}
