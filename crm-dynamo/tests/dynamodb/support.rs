//! What every DynamoDB test shares: the DynamoDB Local endpoint and a fresh table per test.
//!
//! The endpoint is `CRM_TEST_DYNAMODB_ENDPOINT`, by default `http://127.0.0.1:8000`, where
//! `scripts/dynamodb-local.sh start` runs Amazon's DynamoDB Local. When nothing answers there the
//! tests fail, saying how to start it: a suite that skipped itself would prove nothing.

#![allow(clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};

/// Where DynamoDB Local answers.
pub(crate) fn endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

/// A unique table name for one test.
pub(crate) fn table_name() -> String {
    format!("crm-test-{}", crm_domain::CustomerId::generate())
}

/// Settings for a new table on DynamoDB Local.
pub(crate) fn settings() -> DynamoSettings {
    DynamoSettings::new(&table_name(), "us-east-1")
        .expect("a valid table name")
        .with_endpoint(endpoint())
        .with_local_credentials()
        .with_operation_timeout(Duration::from_secs(10))
}

/// Fails the test with instructions when DynamoDB Local is not there.
pub(crate) fn require_dynamodb_local() {
    let url = endpoint();
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let reachable = address
        .parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        reachable,
        "DynamoDB Local is not reachable at {url}. Start it with `scripts/dynamodb-local.sh start` \
         (or set CRM_TEST_DYNAMODB_ENDPOINT); these tests never skip themselves."
    );
}

/// A repository on a new, empty table of its own, keeping tombstones for the contract suite's
/// retention so that the suite can watch one expire.
pub(crate) async fn fresh_repository() -> DynamoCustomerRepository {
    repository_with(settings())
        .await
        .with_tombstone_retention(crm_domain::testkit::TOMBSTONE_RETENTION)
}

/// A repository on a new table, through settings the caller chose.
pub(crate) async fn repository_with(settings: DynamoSettings) -> DynamoCustomerRepository {
    require_dynamodb_local();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("creating the test table failed: {e:?}"));
    repository
}
