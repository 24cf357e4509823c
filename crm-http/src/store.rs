//! Building the repository once per process (per Lambda cold start) from the configuration.

use std::fmt;
use std::sync::Arc;

use crm_domain::CustomerRepository;
#[cfg(feature = "dynamodb")]
use crm_dynamo::DynamoCustomerRepository;
use crm_memory::InMemoryCustomerRepository;

use crate::config::{Config, StoreConfig};

/// Which store the process uses, for the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The in-memory store (local mode without `CRM_TABLE_NAME`): empty at start, gone at exit.
    Memory,
    /// The DynamoDB table of that name.
    DynamoDb(String),
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("the in-memory store (data is lost at exit)"),
            Self::DynamoDb(table) => write!(f, "DynamoDB table {table}"),
        }
    }
}

/// The repository `config` asks for: DynamoDB when `CRM_TABLE_NAME` is set, else the in-memory
/// store, either keeping tombstones for `CRM_TOMBSTONE_DAYS`. No request is made, except that
/// inside Lambda with `CRM_WARM_UP=true` the DynamoDB connection is opened here, during the cold
/// start's init phase, rather than on the first request.
#[cfg_attr(
    not(feature = "dynamodb"),
    expect(
        clippy::unused_async,
        reason = "async for the DynamoDB store, which is compiled out"
    )
)]
pub async fn connect(config: &Config) -> (Arc<dyn CustomerRepository>, StoreKind) {
    match config.store() {
        StoreConfig::Memory => (
            Arc::new(
                InMemoryCustomerRepository::new()
                    .with_tombstone_retention(config.tombstone_retention()),
            ),
            StoreKind::Memory,
        ),
        #[cfg(feature = "dynamodb")]
        StoreConfig::DynamoDb(settings) => {
            let repository = DynamoCustomerRepository::connect(settings)
                .await
                .with_tombstone_retention(config.tombstone_retention());
            if config.in_lambda() && config.warm_up() {
                repository.warm_up().await;
            }
            let kind = StoreKind::DynamoDb(repository.table_name().to_owned());
            (Arc::new(repository), kind)
        }
    }
}
