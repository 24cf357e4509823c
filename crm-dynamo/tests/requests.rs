//! Counts the requests each repository operation sends to DynamoDB (retries included), and fails
//! when any takes more round trips than the crate docs promise.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

mod support;

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

/// Records the DynamoDB operation of every request put on the wire.
#[derive(Debug, Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
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
        self.0
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
    assert_eq!(log.take(), ["DeleteItem"], "delete without email");

    repo.delete(&id("mail"), None).await.unwrap();
    assert_eq!(
        log.take(),
        ["DeleteItem", "TransactWriteItems"],
        "delete with email"
    );

    repo.delete(&id("mail"), None).await.unwrap_err();
    assert_eq!(log.take(), ["DeleteItem"], "delete of a missing customer");

    repo.list(PageLimit::DEFAULT, None).await.unwrap();
    assert_eq!(log.take(), ["Scan"], "a page of a small table");

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
}
