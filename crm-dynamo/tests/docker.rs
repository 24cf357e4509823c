//! The contract suite against DynamoDB Local in Docker, for people with a Docker engine:
//! `cargo test -p crm-dynamo --features testcontainers --test docker`. Without the feature this
//! file compiles to nothing; CI compiles it with the feature so that it does not rot.
#![cfg(feature = "testcontainers")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crm_domain::{CustomerRepository, testkit};
use crm_dynamo::docker::DynamoDbLocalContainer;
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};

async fn fresh(endpoint: &str) -> Arc<dyn CustomerRepository> {
    let table = format!("crm-test-{}", crm_domain::CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")
        .unwrap()
        .with_endpoint(endpoint)
        .with_local_credentials();
    let repository = DynamoCustomerRepository::connect(&settings).await.unwrap();
    repository.create_table().await.unwrap();
    Arc::new(repository)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_holds_on_dynamodb_local_in_docker() {
    let container = DynamoDbLocalContainer::start()
        .await
        .expect("Docker must be running for this test");
    let endpoint = container.endpoint();
    testkit::creates_and_reads_back_a_customer(fresh(endpoint).await).await;
    testkit::create_never_overwrites_an_existing_id(fresh(endpoint).await).await;
    testkit::update_with_a_stale_version_is_rejected(fresh(endpoint).await).await;
    testkit::an_email_is_released_when_it_changes_or_is_cleared(fresh(endpoint).await).await;
    testkit::a_full_walk_returns_every_customer_exactly_once(fresh(endpoint).await).await;
    testkit::concurrent_creates_with_one_email_have_one_winner(fresh(endpoint).await).await;
}
