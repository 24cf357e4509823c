//! Counts the requests each repository operation sends to DynamoDB (retries included), and fails
//! when any takes more round trips than the crate docs promise.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use crm_domain::{
    Customer, CustomerId, CustomerPatch, CustomerRepository, Email, NewCustomer, PageLimit,
    Timestamp, Version,
};
use crm_dynamo::DynamoCustomerRepository;
use serde_json::json;

use crate::support;

/// Records the DynamoDB operation of every request put on the wire, and the IAM action each needs
/// (a transaction needs the action of every item it holds).
#[derive(Debug, Clone, Default)]
struct RequestLog {
    operations: Arc<Mutex<Vec<String>>>,
    actions: Arc<Mutex<BTreeSet<String>>>,
}

impl RequestLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .operations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn actions(&self) -> BTreeSet<String> {
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The IAM actions a request of `operation` with `body` needs.
fn iam_actions(operation: &str, body: &[u8]) -> Vec<String> {
    if operation != "TransactWriteItems" {
        return vec![format!("dynamodb:{operation}")];
    }
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    body["TransactItems"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|item| item.as_object().unwrap().keys())
        .map(|kind| match kind.as_str() {
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:{other}Item"),
        })
        .collect()
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let body = context.request().body().bytes().unwrap_or_default();
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(iam_actions(&operation, body));
        self.operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(operation);
        Ok(())
    }
}

async fn counted_repository() -> (DynamoCustomerRepository, RequestLog) {
    let settings = support::settings();
    let plain = support::repository_with(settings.clone()).await;
    let log = RequestLog::default();
    let config = settings
        .sdk_config()
        .await
        .to_builder()
        .interceptor(log.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    (
        DynamoCustomerRepository::from_client(client, plain.table_name()),
        log,
    )
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
    let now = Timestamp::now();

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

    repo.update(
        &id("mail"),
        &patch(json!({"firstName": "C", "address": {"city": "X", "line1": "1 St"}})),
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(log.take(), ["UpdateItem"], "patch without email");

    let stale = repo
        .update(
            &id("mail"),
            &patch(json!({"lastName": "D"})),
            Some(Version::FIRST),
            now,
        )
        .await;
    assert!(stale.is_err());
    assert_eq!(log.take(), ["UpdateItem"], "a stale patch");

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

    repo.list(PageLimit::DEFAULT, None).await.unwrap();
    assert_eq!(log.take(), ["Scan"], "a page of a small table");
}

#[tokio::test]
async fn bulk_imports_take_a_transaction_per_chunk_and_walks_a_scan_per_page() {
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

    // Walking 121 customers (and their claims) in pages of 50.
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = repo
            .list(PageLimit::new(50).unwrap(), cursor.as_ref())
            .await
            .unwrap();
        pages += 1;
        assert!(pages < 10, "the walk does not end");
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let scans = log.take();
    assert!(scans.iter().all(|op| op == "Scan"), "{scans:?}");
    // A page is one Scan, plus a top-up when the email claims it read leave it short.
    assert!(
        (pages..=3 * pages).contains(&scans.len()),
        "{} Scans for {pages} pages",
        scans.len()
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
    repo.list(PageLimit::DEFAULT, None).await.unwrap();
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
