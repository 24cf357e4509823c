//! Writes that DynamoDB applied but whose reply was lost answer their real outcome.
//!
//! A [`FaultProxy`] between the SDK and DynamoDB Local loses the reply of exactly one request
//! (after DynamoDB applied it, or holds it past the SDK's attempt timeout); the SDK sends the
//! request again, and the retry meets what its own first attempt did. Each test states the answer
//! the caller must get, and what the table must hold: one write, never two, never a refusal. The
//! same holds for the records of idempotency keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crm_domain::idempotency::{KeyState, KeyedWrite, RecordedOutcome, WriteKind, Written};
use crm_domain::{
    Customer, CustomerId, CustomerPatch, CustomerRepository, NewCustomer, Timestamp, Version,
};
use crm_dynamo::DynamoCustomerRepository;
use fault_proxy::{Fault, FaultProxy};
use serde_json::{Value, json};

use crate::support::{endpoint, repository_with, settings};

/// Held past the attempt timeout, which is half the 2 s operation timeout below.
const LATE: Fault = Fault::DelayReply(Duration::from_millis(1_500));

/// A repository on a fresh table whose requests go through a fault proxy, with the 2 s operation
/// timeout that [`LATE`] outlasts.
async fn through_proxy() -> (DynamoCustomerRepository, FaultProxy) {
    through_proxy_within(Duration::from_secs(2)).await
}

/// A repository on a fresh table whose requests go through a fault proxy, with an operation
/// timeout of `timeout` (its attempts time out at half of it).
async fn through_proxy_within(timeout: Duration) -> (DynamoCustomerRepository, FaultProxy) {
    let upstream = endpoint();
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
    let proxy = FaultProxy::start(upstream.parse().unwrap()).await.unwrap();
    let settings = settings()
        .with_endpoint(proxy.endpoint())
        .with_operation_timeout(timeout);
    (repository_with(settings).await, proxy)
}

fn customer(value: &Value) -> Customer {
    let input = NewCustomer::from_json(value).unwrap();
    Customer::create(input, CustomerId::generate(), Timestamp::now())
}

fn ada(email: Option<&str>) -> Customer {
    let mut value = json!({"id": "ada", "firstName": "Ada", "lastName": "Lovelace"});
    if let Some(email) = email {
        value["email"] = json!(email);
    }
    customer(&value)
}

fn id() -> CustomerId {
    CustomerId::parse("ada").unwrap()
}

fn rename(first_name: &str) -> CustomerPatch {
    CustomerPatch::from_json(&json!({ "firstName": first_name })).unwrap()
}

/// Asserts that exactly one fault of each kind was injected on `operation`.
fn assert_faulted(proxy: &FaultProxy, operation: &str, kind: Fault) {
    let stats = proxy.stats();
    assert_eq!(stats.faults_on(operation), 1, "{stats:?}");
    assert_eq!(stats.faults_of(kind.name()), 1, "{stats:?}");
}

#[tokio::test]
async fn a_create_whose_reply_was_lost_is_created_once() {
    for fault in [Fault::DropReply, LATE] {
        let (repo, proxy) = through_proxy().await;
        let created = ada(None);
        proxy.inject_next("PutItem", fault);
        repo.create(&created)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e:?}"));
        assert_faulted(&proxy, "PutItem", fault);
        assert_eq!(repo.get(&id()).await.unwrap(), Some(created));
    }
}

#[tokio::test]
async fn a_create_with_an_email_whose_reply_was_lost_is_created_once() {
    let (repo, proxy) = through_proxy().await;
    let created = ada(Some("ada@example.com"));
    proxy.inject_next("TransactWriteItems", Fault::DropReply);
    repo.create(&created).await.unwrap();
    assert_faulted(&proxy, "TransactWriteItems", Fault::DropReply);
    assert_eq!(repo.get(&id()).await.unwrap(), Some(created));
}

#[tokio::test]
async fn a_create_that_never_reached_dynamodb_is_sent_again() {
    let (repo, proxy) = through_proxy().await;
    let created = ada(None);
    proxy.inject_next("PutItem", Fault::Reset);
    repo.create(&created).await.unwrap();
    assert_faulted(&proxy, "PutItem", Fault::Reset);
    assert_eq!(repo.get(&id()).await.unwrap(), Some(created));
}

#[tokio::test]
async fn a_patch_whose_reply_was_lost_is_applied_once_with_or_without_a_version() {
    for expected in [None, Some(Version::FIRST)] {
        let (repo, proxy) = through_proxy().await;
        repo.create(&ada(None)).await.unwrap();
        proxy.inject_next("UpdateItem", Fault::DropReply);
        let new_phone = CustomerPatch::from_json(&json!({"phone": "+442079460000"})).unwrap();
        let patched = repo
            .update(&id(), &new_phone, expected, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("If-Match {expected:?}: {e:?}"));
        assert_faulted(&proxy, "UpdateItem", Fault::DropReply);
        assert_eq!(
            patched.version(),
            Version::FIRST.next(),
            "no version skipped"
        );
        assert_eq!(
            patched.phone().map(crm_domain::Phone::as_str),
            Some("+442079460000")
        );
        assert_eq!(repo.get(&id()).await.unwrap(), Some(patched));
    }
}

/// A patch of one name reads the other first (the name keys are made of both), then is one
/// `UpdateItem` conditioned on that name: its resend fails on its own token.
#[tokio::test]
async fn a_rename_whose_reply_was_lost_is_applied_once_with_or_without_a_version() {
    for (expected, fault) in [(None, Fault::DropReply), (Some(Version::FIRST), LATE)] {
        let (repo, proxy) = through_proxy().await;
        repo.create(&ada(None)).await.unwrap();
        proxy.inject_next("UpdateItem", fault);
        let patched = repo
            .update(&id(), &rename("Augusta"), expected, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("If-Match {expected:?}: {e:?}"));
        assert_faulted(&proxy, "UpdateItem", fault);
        assert_eq!(
            patched.version(),
            Version::FIRST.next(),
            "no version skipped"
        );
        assert_eq!(patched.first_name().as_str(), "Augusta");
        assert_eq!(repo.get(&id()).await.unwrap(), Some(patched));
    }
}

#[tokio::test]
async fn an_email_change_whose_reply_was_lost_is_applied_once() {
    let (repo, proxy) = through_proxy().await;
    repo.create(&ada(Some("ada@example.com"))).await.unwrap();
    proxy.inject_next("TransactWriteItems", LATE);
    let change = CustomerPatch::from_json(&json!({"email": "countess@example.com"})).unwrap();
    let patched = repo
        .update(&id(), &change, Some(Version::FIRST), Timestamp::now())
        .await
        .unwrap();
    assert_faulted(&proxy, "TransactWriteItems", LATE);
    assert_eq!(patched.version(), Version::FIRST.next());
    assert_eq!(repo.get(&id()).await.unwrap(), Some(patched));
    // The old address is free again, the new one taken.
    repo.create(&customer(
        &json!({"id": "other", "firstName": "O", "lastName": "O", "email": "ada@example.com"}),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_delete_whose_reply_was_lost_is_done_not_missing() {
    for (email, operation) in [
        (None, "UpdateItem"),
        (Some("ada@example.com"), "TransactWriteItems"),
    ] {
        let (repo, proxy) = through_proxy().await;
        repo.create(&ada(email)).await.unwrap();
        proxy.inject_next(operation, Fault::DropReply);
        repo.delete(&id(), Some(Version::FIRST))
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e:?}"));
        assert_faulted(&proxy, operation, Fault::DropReply);
        assert_eq!(repo.get(&id()).await.unwrap(), None);
        // A second delete is not this one's retry: the customer is gone.
        assert!(repo.delete(&id(), None).await.is_err());
    }
}

fn keyed(key: &str) -> crm_domain::Idempotency {
    crm_domain::Idempotency {
        key: crm_domain::IdempotencyKey::parse(key).unwrap(),
        fingerprint: crm_domain::RequestFingerprint::new("fingerprint"),
    }
}

#[tokio::test]
async fn a_key_whose_hold_reply_was_lost_is_this_request_s_not_another_s() {
    let (repo, proxy) = through_proxy().await;
    proxy.inject_next("PutItem", Fault::DropReply);
    let state = repo
        .begin_keyed(&keyed("order-1"), Duration::from_mins(1))
        .await
        .unwrap();
    assert_faulted(&proxy, "PutItem", Fault::DropReply);
    let KeyState::Fresh(lease) = state else {
        panic!("the key is this request's, found {state:?}");
    };
    repo.write_keyed(&KeyedWrite::Create(ada(None)), &lease)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_keyed_write_whose_reply_was_lost_is_written_and_recorded_once() {
    let (repo, proxy) = through_proxy().await;
    let key = keyed("order-2");
    let KeyState::Fresh(lease) = repo
        .begin_keyed(&key, Duration::from_mins(1))
        .await
        .unwrap()
    else {
        panic!("a new key is fresh");
    };
    proxy.inject_next("TransactWriteItems", Fault::DropReply);
    let created = ada(None);
    let written = repo
        .write_keyed(&KeyedWrite::Create(created.clone()), &lease)
        .await
        .unwrap();
    assert_faulted(&proxy, "TransactWriteItems", Fault::DropReply);
    assert_eq!(written, Written::Customer(created));
    assert_eq!(
        repo.begin_keyed(&key, Duration::from_mins(1))
            .await
            .unwrap(),
        KeyState::Done(RecordedOutcome {
            kind: WriteKind::Create,
            id: id(),
            version: Some(Version::FIRST),
        })
    );
}

#[tokio::test]
async fn an_import_cut_short_by_an_outage_reports_what_it_wrote_and_runs_again_without_duplicates()
{
    // No fault here is a delay, so the timeout is long: a transaction of 50 that a loaded machine
    // answers in more than a second must not time out and be sent again into the outage.
    let (repo, proxy) = through_proxy_within(Duration::from_secs(30)).await;
    let customers: Vec<Customer> = (0..120)
        .map(|i| customer(&json!({"id": format!("c{i:03}"), "firstName": "A", "lastName": "B"})))
        .collect();
    // The first chunk of 50 goes through; every request after it is cut.
    proxy.inject_next("TransactWriteItems", Fault::DelayReply(Duration::ZERO));
    for _ in 0..200 {
        proxy.inject_next("TransactWriteItems", Fault::Reset);
    }
    let report = repo.put_many(&customers).await.unwrap();
    assert_eq!(report.created, 50);
    assert!(report.rejected.is_empty());
    assert!(report.interrupted());
    let unconfirmed: Vec<&str> = report.unconfirmed.iter().map(CustomerId::as_str).collect();
    let expected: Vec<String> = (50..120).map(|i| format!("c{i:03}")).collect();
    assert_eq!(unconfirmed, expected);

    // Run again, the store whole: the rest is written, the first 50 are refused as taken.
    let direct = crm_dynamo::DynamoSettings::new(repo.table_name(), "us-east-1")
        .unwrap()
        .with_endpoint(endpoint())
        .with_local_credentials();
    let whole = DynamoCustomerRepository::connect(&direct).await;
    let again = whole.put_many(&customers).await.unwrap();
    assert_eq!(again.created, 70);
    assert_eq!(again.rejected.len(), 50);
    assert!(!again.interrupted());
    let mut walked = 0;
    let mut cursor = None;
    loop {
        let page = whole
            .list(
                &crm_domain::Listing::default(),
                crm_domain::PageLimit::MAX,
                cursor.as_ref(),
            )
            .await
            .unwrap();
        walked += page.items.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, 120, "every customer once, none twice");
}
