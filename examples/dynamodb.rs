//! The quickstart against DynamoDB: DynamoDB Local by default, creating its own table.
//!
//! ```text
//! scripts/dynamodb-local.sh start
//! cargo run --example dynamodb
//! ```
//!
//! `CRM_EXAMPLE_ENDPOINT` points it elsewhere (default `http://127.0.0.1:8000`). It signs with
//! dummy credentials, which DynamoDB Local accepts; to run against AWS, build the repository from
//! settings for your region and credentials instead (`DynamoSettings::new(table, region)`).
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use anyhow::Context as _;
use crm_domain::{CustomerId, CustomerService};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};

#[path = "shared.rs"]
mod shared;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::var("CRM_EXAMPLE_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let table = format!("crm-example-{}", CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")?
        .with_endpoint(&endpoint)
        .with_local_credentials();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository.create_table().await.with_context(|| {
        format!("creating table {table} at {endpoint} (is DynamoDB Local running? scripts/dynamodb-local.sh start)")
    })?;
    println!("created table {table} at {endpoint}");
    shared::tour(&CustomerService::new(Arc::new(repository))).await
}
