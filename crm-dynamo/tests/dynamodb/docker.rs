//! The whole contract suite against DynamoDB Local in Docker, for people with a Docker engine:
//! `cargo test -p crm-dynamo --features testcontainers --test dynamodb docker`. Without the
//! feature this module is not compiled (`main.rs`); CI compiles it with the feature so that it does
//! not rot (CI has no Docker engine: there the same suite runs in `tests/dynamodb/contract.rs`
//! against the script-started DynamoDB Local).
//!
//! One container serves every test of this module, each on a table of its own. Each contract test
//! runs on a runtime of its own, which a container must outlive, so the container lives on a
//! runtime of its own too, on a thread that ends with the process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use crm_domain::CustomerRepository;
use crm_dynamo::docker::DynamoDbLocalContainer;
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};

use crate::support;

/// The endpoint of the one container, started on first use.
fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the container");
            runtime.block_on(async move {
                let container = DynamoDbLocalContainer::start()
                    .await
                    .expect("Docker must be running for this test");
                sender.send(container.endpoint().to_owned()).unwrap();
                // Keep the container (and its runtime) until the process ends.
                std::future::pending::<()>().await;
                drop(container);
            });
        });
        receiver.recv().expect("the container started")
    })
}

async fn fresh() -> Arc<dyn CustomerRepository> {
    let settings = DynamoSettings::new(&support::table_name(), "us-east-1")
        .unwrap()
        .with_endpoint(endpoint())
        .with_local_credentials();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository.create_table().await.unwrap();
    Arc::new(repository)
}

crm_domain::repository_contract_tests!(fresh);
