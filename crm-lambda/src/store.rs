//! Building the repository once per process (per Lambda cold start) from the configuration.

use std::fmt;
use std::sync::Arc;

use crm_domain::CustomerRepository;
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings, SettingsError};
use crm_memory::InMemoryCustomerRepository;

use crate::config::Config;

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

/// The store could not be set up; one line naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct StoreError(#[from] SettingsError);

/// The repository `config` asks for: DynamoDB when `CRM_TABLE_NAME` is set, else the in-memory
/// store. Inside Lambda the DynamoDB connection is warmed up here, during the cold start's init
/// phase, rather than on the first request.
///
/// # Errors
/// When the DynamoDB settings (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, …) are invalid.
pub async fn connect(
    config: &Config,
) -> Result<(Arc<dyn CustomerRepository>, StoreKind), StoreError> {
    if config.table_name().is_none() {
        return Ok((
            Arc::new(InMemoryCustomerRepository::new()),
            StoreKind::Memory,
        ));
    }
    // `Config` and `DynamoSettings` read the same `CRM_TABLE_NAME` (both treat empty as absent), so
    // settings are present here; the fallback only guards against the two drifting apart.
    let settings = DynamoSettings::from_env()?.ok_or_else(|| SettingsError {
        variable: "CRM_TABLE_NAME",
        problem: "was not readable by the DynamoDB settings".to_owned(),
    })?;
    let repository = DynamoCustomerRepository::connect(&settings).await?;
    if config.in_lambda() && config.warm_up() {
        repository.warm_up().await;
    }
    let kind = StoreKind::DynamoDb(repository.table_name().to_owned());
    Ok((Arc::new(repository), kind))
}
