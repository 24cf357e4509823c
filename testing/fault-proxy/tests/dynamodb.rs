//! The proxy between the AWS SDK and DynamoDB Local, and a DynamoDB Local crashed and restarted.
//!
//! DynamoDB Local must answer at `CRM_TEST_DYNAMODB_ENDPOINT` (default `http://127.0.0.1:8000`;
//! `scripts/dynamodb-local.sh start` runs it). Without it these tests fail, saying so: a test
//! that skipped itself would prove nothing. Each test has its own proxy and its own table, and
//! checks outcomes by reading DynamoDB Local directly, never through the proxy.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use fault_proxy::dynamodb_local::LocalDynamo;
use fault_proxy::{Fault, FaultProxy, Policy};

/// Far longer than DynamoDB Local needs, so only an injected fault makes a call fail.
const PATIENT: Duration = Duration::from_secs(10);

fn dynamodb_endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

/// DynamoDB Local's address, after checking that it accepts connections.
fn upstream() -> SocketAddr {
    let url = dynamodb_endpoint();
    let host_port = url.trim_start_matches("http://").trim_end_matches('/');
    let address = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| panic!("CRM_TEST_DYNAMODB_ENDPOINT is not http://HOST:PORT: {url}"));
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok(),
        "DynamoDB Local is not reachable at {url}. Start it with `scripts/dynamodb-local.sh start` \
         (or set CRM_TEST_DYNAMODB_ENDPOINT); these tests never skip themselves."
    );
    address
}

/// An SDK client with one attempt per call: a lost reply surfaces instead of being retried.
fn client(endpoint: &str, attempt_timeout: Duration) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

fn direct() -> Client {
    client(&dynamodb_endpoint(), PATIENT)
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

async fn create_table(client: &Client, prefix: &str) -> String {
    let table = unique(&format!("fault-proxy-{prefix}"));
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the table");
    table
}

async fn put(
    client: &Client,
    table: &str,
    id: &str,
) -> Result<(), SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError>> {
    client
        .put_item()
        .table_name(table)
        .item("id", AttributeValue::S(id.into()))
        .item("v", AttributeValue::S("1".into()))
        .send()
        .await
        .map(drop)
}

/// The item's `v`, read consistently; `None` when there is no such item.
async fn value(client: &Client, table: &str, id: &str) -> Option<String> {
    let output = client
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get the item");
    let item = output.item?;
    Some(item.get("v")?.as_s().expect("v is a string").clone())
}

#[tokio::test]
async fn without_faults_requests_pass_through() {
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let through = client(&proxy.endpoint(), PATIENT);

    let table = create_table(&through, "pass").await;
    put(&through, &table, "a")
        .await
        .expect("put through the proxy");
    assert_eq!(value(&through, &table, "a").await.as_deref(), Some("1"));
    assert_eq!(value(&direct(), &table, "a").await.as_deref(), Some("1"));

    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 3, "{stats:?}");
    assert!(
        stats.faults.is_empty() && stats.by_operation.is_empty(),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_dropped_reply_fails_the_call_but_the_write_is_applied() {
    let direct = direct();
    let table = create_table(&direct, "drop").await;
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let through = client(&proxy.endpoint(), PATIENT);
    proxy.inject_next("PutItem", Fault::DropReply);

    let error = put(&through, &table, "a")
        .await
        .expect_err("the reply was dropped");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    assert_eq!(
        value(&direct, &table, "a").await.as_deref(),
        Some("1"),
        "applied all the same"
    );

    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 1);
    assert_eq!(stats.faults_of("drop-reply"), 1);
    assert_eq!(stats.faults.len(), 1, "{stats:?}");
    assert_eq!(stats.faults_on("PutItem"), 1);
    assert_eq!(stats.by_operation.len(), 1, "{stats:?}");

    put(&through, &table, "b")
        .await
        .expect("the one-shot fault is spent");
    assert_eq!(proxy.stats().faults_of("drop-reply"), 1);
}

#[tokio::test]
async fn a_reset_fails_the_call_and_the_write_never_happens() {
    let direct = direct();
    let table = create_table(&direct, "reset").await;
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let through = client(&proxy.endpoint(), PATIENT);
    proxy.inject_next("PutItem", Fault::Reset);

    // Another operation does not consume the PutItem's fault.
    assert_eq!(value(&through, &table, "a").await, None);
    let error = put(&through, &table, "a")
        .await
        .expect_err("the request was reset");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    assert_eq!(
        value(&direct, &table, "a").await,
        None,
        "DynamoDB never saw it"
    );

    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 1, "only the GetItem: {stats:?}");
    assert_eq!(stats.faults_of("reset"), 1);
    assert_eq!(stats.faults_on("PutItem"), 1);
}

#[tokio::test]
async fn a_reply_delayed_past_the_attempt_timeout_times_out_but_the_write_is_applied() {
    let direct = direct();
    let table = create_table(&direct, "delay").await;
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let through = client(&proxy.endpoint(), Duration::from_secs(1));
    proxy.inject_next("PutItem", Fault::DelayReply(Duration::from_secs(4)));

    let started = Instant::now();
    let error = put(&through, &table, "a")
        .await
        .expect_err("the reply came too late");
    assert!(matches!(error, SdkError::TimeoutError(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout, not the reply, ended it"
    );
    assert_eq!(
        value(&direct, &table, "a").await.as_deref(),
        Some("1"),
        "applied all the same"
    );

    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 1);
    assert_eq!(stats.faults_of("delay-reply"), 1);
    assert_eq!(stats.faults_on("PutItem"), 1);
}

#[tokio::test]
async fn a_certain_policy_on_writes_faults_every_write_and_no_read() {
    let direct = direct();
    let table = create_table(&direct, "policy").await;
    put(&direct, &table, "a").await.unwrap();
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let through = client(&proxy.endpoint(), PATIENT);
    proxy.set_policy(Policy::writes(1.0, 7).with_kinds(&[Fault::Reset]));

    for id in ["b", "c", "d"] {
        put(&through, &table, id)
            .await
            .expect_err("every write is reset");
    }
    let update = through
        .update_item()
        .table_name(&table)
        .key("id", AttributeValue::S("a".into()))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", AttributeValue::S("2".into()))
        .send()
        .await;
    assert!(update.is_err(), "{update:?}");
    let delete = through
        .delete_item()
        .table_name(&table)
        .key("id", AttributeValue::S("a".into()))
        .send()
        .await;
    assert!(delete.is_err(), "{delete:?}");

    assert_eq!(value(&through, &table, "a").await.as_deref(), Some("1"));
    let query = through
        .query()
        .table_name(&table)
        .key_condition_expression("id = :id")
        .expression_attribute_values(":id", AttributeValue::S("a".into()))
        .send()
        .await
        .expect("a query is a read");
    assert_eq!(query.count, 1);
    let scan = through
        .scan()
        .table_name(&table)
        .consistent_read(true)
        .send()
        .await
        .expect("a scan is a read");
    assert_eq!(scan.count, 1, "no faulted write was applied");

    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 3, "the three reads: {stats:?}");
    assert_eq!(stats.faults_of("reset"), 5);
    assert_eq!(stats.faults_on("PutItem"), 3);
    assert_eq!(stats.faults_on("UpdateItem"), 1);
    assert_eq!(stats.faults_on("DeleteItem"), 1);
    assert_eq!(stats.by_operation.len(), 3, "{stats:?}");

    proxy.set_policy(Policy::none());
    put(&through, &table, "e").await.expect("faults are off");
    assert_eq!(value(&direct, &table, "e").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn an_outage_refuses_every_request_until_it_ends() {
    let direct = direct();
    let table = create_table(&direct, "outage").await;
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let through = client(&proxy.endpoint(), PATIENT);

    proxy.set_outage(true);
    let get = through
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S("a".into()))
        .send()
        .await;
    assert!(matches!(get, Err(SdkError::DispatchFailure(_))), "{get:?}");
    put(&through, &table, "a").await.expect_err("refused");
    proxy.set_outage(false);
    put(&through, &table, "b")
        .await
        .expect("the outage is over");

    assert_eq!(value(&direct, &table, "a").await, None);
    assert_eq!(value(&direct, &table, "b").await.as_deref(), Some("1"));
    let stats = proxy.stats();
    assert_eq!(stats.faults_of("outage"), 2);
    assert_eq!(stats.forwarded, 1);
}

#[tokio::test]
async fn shutting_down_closes_the_listener() {
    // Nothing listens upstream: no request is made.
    let proxy = FaultProxy::start("127.0.0.1:9".parse().unwrap())
        .await
        .unwrap();
    let address = proxy.local_addr();
    tokio::net::TcpStream::connect(address)
        .await
        .expect("it listens");
    let clone = proxy.clone();
    drop(proxy);
    tokio::net::TcpStream::connect(address)
        .await
        .expect("a clone keeps it alive");
    clone.shutdown();
    let deadline = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(Instant::now() < deadline, "still listening after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Removes its directory when dropped, even when the test fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_killed_dynamodb_local_restarts_with_its_data() {
    // A port of its own: never the shared instance (8000), nor crm-http's crash test (8011).
    const PORT: u16 = 8021;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = TempDir(std::env::temp_dir().join(unique("fault-proxy-db")));
    let local = LocalDynamo::start(&LocalDynamo::default_repo_root(), PORT, &dir.0).unwrap();
    assert_eq!(local.endpoint(), format!("http://127.0.0.1:{PORT}"));
    let pid = local.pid().expect("it runs");
    let again = LocalDynamo::start(&LocalDynamo::default_repo_root(), PORT, &dir.0);
    assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        local.pid(),
        Some(pid),
        "a refused start leaves the running instance alone"
    );
    let main = LocalDynamo::start(&LocalDynamo::default_repo_root(), 8000, &dir.0);
    assert_eq!(main.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);

    let table = runtime.block_on(async {
        let client = client(&local.endpoint(), PATIENT);
        let table = create_table(&client, "crash").await;
        put(&client, &table, "a").await.unwrap();
        table
    });
    assert!(
        dir.0.join("shared-local-instance.db").is_file(),
        "its data is on disk"
    );

    local.kill().unwrap();
    assert_eq!(local.pid(), None, "PID {pid} is gone");
    let address: SocketAddr = ([127, 0, 0, 1], PORT).into();
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "nothing answers on port {PORT} after the crash"
    );

    local.restart().unwrap();
    assert_ne!(local.pid(), Some(pid));
    assert!(local.pid().is_some(), "it runs again");
    let after = runtime.block_on(async {
        // A new client: the old one's pooled connections died with the process.
        value(&client(&local.endpoint(), PATIENT), &table, "a").await
    });
    assert_eq!(after.as_deref(), Some("1"), "the write survived the crash");

    local.stop().unwrap();
    assert_eq!(local.pid(), None);
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err());
}
