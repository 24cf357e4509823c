//! What every DynamoDB test shares: the DynamoDB Local endpoint, a fresh table per test, and a
//! record of the requests a repository sends ([`Requests`]).
//!
//! The endpoint is `CRM_TEST_DYNAMODB_ENDPOINT`, by default `http://127.0.0.1:8000`, where
//! `scripts/dynamodb-local.sh start` runs Amazon's DynamoDB Local. When nothing answers there the
//! tests fail, saying how to start it: a suite that skipped itself would prove nothing.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::StreamSpecification;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
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

/// A repository on a new table, through settings the caller chose: the table of
/// `create_table`, but with its stream turned off (see [`repository_with_stream`]).
pub(crate) async fn repository_with(settings: DynamoSettings) -> DynamoCustomerRepository {
    let repository = repository_with_stream(settings.clone()).await;
    // A table operation, with a table operation's time: not the test's data-plane timeouts
    // (2 s in the lost-reply tests), under which a busy DynamoDB Local could see it sent twice.
    let control = settings.with_operation_timeout(Duration::from_mins(1));
    let client = aws_sdk_dynamodb::Client::from_conf(control.sdk_config().await);
    client
        .update_table()
        .table_name(repository.table_name())
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(false)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("turning the test table's stream off failed: {e:?}"));
    repository
}

/// A repository on a new table exactly as `create_table` makes it, stream on, for the tests
/// that read the stream or the table's description. The others turn it off: DynamoDB Local
/// keeps every stream record of every table, deleted or not, and each write slows down with
/// their number (a put took 24 instead of 9 ms after one run of this suite), until a long
/// suite's operations miss their deadlines.
pub(crate) async fn repository_with_stream(settings: DynamoSettings) -> DynamoCustomerRepository {
    require_dynamodb_local();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("creating the test table failed: {e:?}"));
    repository
}

/// Records the DynamoDB operation of every request put on the wire, and the IAM actions each
/// needs: each operation once, however often the SDK sent it again.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests {
    operations: Arc<Mutex<Vec<String>>>,
    actions: Arc<Mutex<BTreeSet<String>>>,
}

/// Whether the request about to be sent is the SDK's retry of an attempt already recorded.
pub(crate) fn is_retry(config: &ConfigBag) -> bool {
    config
        .load::<RequestAttempts>()
        .is_some_and(|attempts| attempts.attempts() > 1)
}

/// A repository on `table` whose client runs `interceptor` on every request, as another process
/// with the same settings would be.
pub(crate) async fn intercepted(
    settings: &DynamoSettings,
    table: &str,
    interceptor: impl Intercept + 'static,
) -> DynamoCustomerRepository {
    let config = settings
        .sdk_config()
        .await
        .to_builder()
        .interceptor(interceptor)
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    // `connect`'s deadline too, not `from_client`'s 3 s: a multi-request write on a busy test
    // server can take longer, and these repositories count requests, not deadlines.
    DynamoCustomerRepository::from_client(client, table).with_deadline(settings.operation_timeout())
}

impl Requests {
    /// A repository on the table of `table` whose requests this records.
    pub(crate) async fn on(
        settings: &crm_dynamo::DynamoSettings,
        table: &str,
    ) -> (DynamoCustomerRepository, Self) {
        let log = Self::default();
        (intercepted(settings, table, log.clone()).await, log)
    }

    /// The operations since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .operations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Forgets every request so far.
    pub(crate) fn clear(&self) {
        self.take();
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The IAM actions of every request so far.
    pub(crate) fn actions(&self) -> BTreeSet<String> {
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The IAM actions a request of `operation` with `body` needs: a transaction needs the action of
/// each of its items.
pub(crate) fn iam_actions(operation: &str, body: &[u8]) -> Vec<String> {
    let items = match operation {
        "TransactWriteItems" | "TransactGetItems" => {
            let body: serde_json::Value = serde_json::from_slice(body).unwrap();
            body["TransactItems"].as_array().unwrap().clone()
        }
        _ => return vec![format!("dynamodb:{operation}")],
    };
    items
        .iter()
        .flat_map(|item| item.as_object().unwrap().keys())
        .map(|kind| match kind.as_str() {
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:{other}Item"),
        })
        .collect()
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // An attempt the SDK sent again: timed out or throttled on a slow test machine, or a
        // transaction conflict the repository's client retries; the code under test asked once.
        if is_retry(config) {
            return Ok(());
        }
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
