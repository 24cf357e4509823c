//! How the repository meets DynamoDB's "not now" answers, which DynamoDB Local never gives: a
//! scripted endpoint on loopback answers each request with the next canned response.
//!
//! - A single-item write that meets an item a transaction holds (`TransactionConflictException`) is
//!   retried, not reported: it is a race, and every write is conditional.
//! - Throttling that outlasts the SDK's retries is `Unavailable` with a retry hint.
//! - An operation that keeps losing races gives up at the repository's deadline.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crm_domain::{CustomerId, CustomerPatch, CustomerRepository, RepositoryError, Timestamp};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A canned answer: HTTP status and JSON body.
type Answer = (u16, String);

/// An endpoint that answers the requests it gets with `script`, in order; once the script is out,
/// with `then` for ever. It records the `X-Amz-Target` of each request.
struct Scripted {
    url: String,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    async fn start(script: Vec<Answer>, then: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&targets);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let script = Arc::clone(&script);
                let then = then.clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(serve(socket, script, then, recorded));
            }
        });
        Self { url, targets }
    }

    fn targets(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Answers the HTTP/1.1 requests of one connection.
async fn serve(
    mut socket: TcpStream,
    script: Arc<Mutex<VecDeque<Answer>>>,
    then: Answer,
    recorded: Arc<Mutex<Vec<String>>>,
) {
    let mut buffer = Vec::new();
    loop {
        // Read the head, then as much body as Content-Length says.
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..head_end + length);
        let target = header("x-amz-target").unwrap_or_default();
        recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target.rsplit('.').next().unwrap_or_default().to_owned());
        let (status, body) = script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_else(|| then.clone());
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn error(code: &str) -> Answer {
    (
        400,
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": "scripted"})
            .to_string(),
    )
}

/// A stored customer item, as DynamoDB's JSON protocol sends it.
fn item(version: u32, email: Option<&str>) -> serde_json::Value {
    let mut item = json!({
        "pk": {"S": "CUSTOMER#a"}, "kind": {"S": "customer"}, "id": {"S": "a"},
        "firstName": {"S": "Ada"}, "lastName": {"S": "Lovelace"},
        "createdAt": {"S": "2026-01-01T00:00:00.000Z"},
        "updatedAt": {"S": "2026-01-01T00:00:00.000Z"},
        "version": {"N": version.to_string()}
    });
    if let Some(email) = email {
        item["email"] = json!({"S": email});
        item["emailKey"] = json!({"S": email.to_lowercase()});
    }
    item
}

async fn repository(endpoint: &Scripted, deadline: Duration) -> DynamoCustomerRepository {
    let settings = DynamoSettings::new("customers", "us-east-1")
        .unwrap()
        .with_endpoint(&endpoint.url)
        .with_local_credentials()
        .with_operation_timeout(Duration::from_secs(2));
    DynamoCustomerRepository::connect(&settings)
        .await
        .with_deadline(deadline)
}

fn patch(value: serde_json::Value) -> CustomerPatch {
    CustomerPatch::from_json(&value).unwrap()
}

#[tokio::test]
async fn a_patch_that_meets_a_running_transaction_is_retried_not_reported() {
    let endpoint = Scripted::start(
        vec![error("TransactionConflictException")],
        (200, json!({"Attributes": item(2, None)}).to_string()),
    )
    .await;
    let repo = repository(&endpoint, Duration::from_secs(5)).await;
    let updated = repo
        .update(
            &CustomerId::parse("a").unwrap(),
            // Both names: one UpdateItem, no read first (a patch of one name reads the other).
            &patch(json!({"firstName": "Ada", "lastName": "Lovelace"})),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(updated.version().get(), 2);
    assert_eq!(endpoint.targets(), ["UpdateItem", "UpdateItem"]);
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_unavailable_with_a_hint() {
    let endpoint = Scripted::start(vec![], error("ProvisionedThroughputExceededException")).await;
    let repo = repository(&endpoint, Duration::from_secs(10)).await;
    let result = repo.get(&CustomerId::parse("a").unwrap()).await;
    assert!(
        matches!(
            result,
            Err(RepositoryError::Unavailable {
                retry_after: Some(_),
                ..
            })
        ),
        "{result:?}"
    );
    // The SDK's standard retry: three attempts in all.
    assert_eq!(endpoint.targets(), ["GetItem"; 3]);
}

#[tokio::test]
async fn a_validation_error_is_unexpected_not_unavailable() {
    let endpoint = Scripted::start(vec![], error("ValidationException")).await;
    let repo = repository(&endpoint, Duration::from_secs(5)).await;
    let result = repo.get(&CustomerId::parse("a").unwrap()).await;
    assert!(
        matches!(result, Err(RepositoryError::Unexpected(_))),
        "{result:?}"
    );
    assert_eq!(endpoint.targets(), ["GetItem"]);
}

#[tokio::test]
async fn an_email_change_that_keeps_losing_races_gives_up_at_the_deadline() {
    // Every read finds the customer; every transaction is cancelled by a conflicting one.
    let conflict = (
        400,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "message": "scripted",
            "CancellationReasons": [
                {"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}
            ]
        })
        .to_string(),
    );
    let read = (
        200,
        json!({"Item": item(1, Some("old@example.com"))}).to_string(),
    );
    let script: Vec<Answer> = (0..50)
        .flat_map(|_| [read.clone(), conflict.clone()])
        .collect();
    let endpoint = Scripted::start(script, conflict.clone()).await;
    let deadline = Duration::from_millis(150);
    let repo = repository(&endpoint, deadline).await;
    let started = Instant::now();
    let result = repo
        .update(
            &CustomerId::parse("a").unwrap(),
            &patch(json!({"email": "new@example.com"})),
            None,
            Timestamp::now(),
        )
        .await;
    let waited = started.elapsed();
    assert!(
        matches!(
            result,
            Err(RepositoryError::Unavailable {
                retry_after: Some(_),
                ..
            })
        ),
        "{result:?}"
    );
    assert!(waited >= deadline, "gave up early: {waited:?}");
    assert!(waited < deadline * 4, "overran its deadline: {waited:?}");
    assert!(
        endpoint.targets().len() >= 4,
        "it retried: {:?}",
        endpoint.targets()
    );
}

/// What a test recorder saw: counter totals and histogram values by `name{operation}`.
#[derive(Default)]
struct Seen {
    counters: Mutex<std::collections::BTreeMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    histograms: Mutex<std::collections::BTreeMap<String, Arc<Values>>>,
}

#[derive(Default)]
struct Values(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Values {
    fn record(&self, value: f64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(value);
    }
}

fn series(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for Seen {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::Counter::from_arc(Arc::clone(counters.entry(series(key)).or_default()))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let mut histograms = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        metrics::Histogram::from_arc(Arc::clone(histograms.entry(series(key)).or_default()))
    }
}

impl Seen {
    /// Counter totals, taken (so that the next look sees only what came after).
    fn take(&self) -> Vec<(String, u64)> {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .map(|(k, v)| (k.clone(), v.swap(0, std::sync::atomic::Ordering::Relaxed)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    fn durations(&self, series: &str) -> usize {
        self.values(series).len()
    }

    /// The values recorded in a histogram.
    fn values(&self, series: &str) -> Vec<f64> {
        let histograms = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        histograms.get(series).map_or_else(Vec::new, |v| {
            v.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
        })
    }
}

/// The DynamoDB call metrics (`crm_dynamo::metrics`) count calls, retries, throttled attempts and
/// errors per operation, through whatever recorder is installed (here a local one).
#[test]
fn call_metrics_count_throttles_retries_and_errors_per_operation() {
    let seen = Seen::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    metrics::with_local_recorder(&seen, || {
        runtime.block_on(async {
            // Throttled once, then found nothing: one call, one retry, one throttle, no error.
            let endpoint = Scripted::start(
                vec![error("ThrottlingException")],
                (200, json!({}).to_string()),
            )
            .await;
            let repo = repository(&endpoint, Duration::from_secs(5)).await;
            repo.get(&CustomerId::parse("a").unwrap()).await.unwrap();
            assert_eq!(
                seen.take(),
                count(&[
                    ("dynamodb_calls{operation=GetItem}", 1),
                    ("dynamodb_retries{operation=GetItem}", 1),
                    ("dynamodb_throttles{operation=GetItem}", 1),
                ])
            );
            assert_eq!(
                seen.durations("dynamodb_call_duration_ms{operation=GetItem}"),
                1
            );

            // Throttled on every attempt: three throttles, two retries, and an error.
            let endpoint =
                Scripted::start(vec![], error("ProvisionedThroughputExceededException")).await;
            let repo = repository(&endpoint, Duration::from_secs(10)).await;
            repo.get(&CustomerId::parse("a").unwrap())
                .await
                .unwrap_err();
            assert_eq!(
                seen.take(),
                count(&[
                    ("dynamodb_calls{operation=GetItem}", 1),
                    ("dynamodb_errors{operation=GetItem}", 1),
                    ("dynamodb_retries{operation=GetItem}", 2),
                    ("dynamodb_throttles{operation=GetItem}", 3),
                ])
            );

            // A validation error: no throttle, no retry, one error.
            let endpoint = Scripted::start(vec![], error("ValidationException")).await;
            let repo = repository(&endpoint, Duration::from_secs(5)).await;
            repo.get(&CustomerId::parse("a").unwrap())
                .await
                .unwrap_err();
            assert_eq!(
                seen.take(),
                count(&[
                    ("dynamodb_calls{operation=GetItem}", 1),
                    ("dynamodb_errors{operation=GetItem}", 1),
                ])
            );
        });
    });
}

/// An endpoint that takes requests and never answers them: every call waits until it is cut.
async fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// A call that a deadline cuts is dropped by the SDK's caller before the SDK's own end of it: it
/// counts as cancelled, with its time until then among the durations, and in no other counter.
#[test]
fn a_call_cut_by_the_deadline_counts_as_cancelled_with_its_duration() {
    let seen = Seen::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&seen, || {
        runtime.block_on(async {
            let endpoint = Scripted {
                url: silent().await,
                targets: Arc::default(),
            };
            let deadline = Duration::from_millis(100);
            let repo = repository(&endpoint, deadline).await;
            let started = Instant::now();
            let result = repo.get(&CustomerId::parse("a").unwrap()).await;
            let waited = started.elapsed().as_secs_f64() * 1000.0;
            assert!(
                matches!(result, Err(RepositoryError::Unavailable { .. })),
                "{result:?}"
            );
            assert_eq!(
                seen.take(),
                [("dynamodb_cancelled{operation=GetItem}".to_owned(), 1)]
            );
            let durations = seen.values("dynamodb_call_duration_ms{operation=GetItem}");
            assert_eq!(durations.len(), 1, "{durations:?}");
            // From the call's start (after the deadline's timer was set) to its drop.
            assert!(
                durations[0] >= 90.0 && durations[0] <= waited,
                "{durations:?} of {waited} ms"
            );
        });
    });
}
