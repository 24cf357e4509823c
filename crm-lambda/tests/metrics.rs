//! The metrics as the Lambda functions write them: `CloudWatch` Embedded Metric Format lines, read
//! here as `CloudWatch` Logs reads them (`support/emf.rs`), with every metric, its unit and its
//! dimensions, and no customer value anywhere. HTTP events go through `answer_http` and the API
//! over a table on DynamoDB Local (`scripts/dynamodb-local.sh start`); a scripted endpoint on
//! loopback throttles one DynamoDB call, which DynamoDB Local never does.
//!
//! The EMF recorder is the process's global `metrics` recorder, so this file is a test binary of
//! its own with one test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_cmp
)]

#[path = "support/emf.rs"]
mod emf;

use std::collections::BTreeSet;
use std::sync::Arc;

use crm_domain::{CustomerId, CustomerRepository as _, CustomerService};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use crm_http::{Api, AppState, Config};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Customer values planted in bodies and paths: none may appear in any metrics line.
const PLANTED: &[&str] = &[
    "Zephyrine",
    "Quillfeather",
    "zq.planted",
    "planted-id-77",
    "example.org",
];

fn endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

fn settings(table: &str, endpoint: &str) -> DynamoSettings {
    DynamoSettings::new(table, "us-east-1")
        .unwrap()
        .with_endpoint(endpoint)
        .with_local_credentials()
}

/// An API Gateway HTTP API (payload 2.0) event, answered as the HTTP function answers it; its
/// status.
async fn answer(api: &Api, method: &str, path: &str, body: Option<&Value>) -> u64 {
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.test", "content-type": "application/json"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "api", "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "request-1", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000", "timeEpoch": 1_795_320_000_000_u64
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    });
    let event = RawValue::from_string(event.to_string()).unwrap();
    let response = crm_lambda::answer_http(api, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let response: Value = serde_json::from_str(response.get()).unwrap();
    response["statusCode"].as_u64().unwrap()
}

/// An endpoint that answers its first DynamoDB request `ThrottlingException`, and every other
/// `{}` (a `GetItem` that found nothing).
async fn throttling_once() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let throttle = std::mem::replace(&mut first, false);
            tokio::spawn(async move {
                let mut throttle = throttle;
                let mut buffer = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..head_end + length);
                    let (status, body) = if std::mem::replace(&mut throttle, false) {
                        (
                            400,
                            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#,
                        )
                    } else {
                        (200, "{}")
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The test function's dimension.
const FUNCTION: (&str, &str) = ("function", "crm-test-fn");

/// The full dimension set of the HTTP metrics.
const HTTP_SET: &[&str] = &["function", "method", "route", "status_class"];

/// The full dimension set of the DynamoDB metrics.
const DYNAMODB_SET: &[&str] = &["function", "operation"];

/// Every metric is there, in the namespace, with the function dimension, under exactly the
/// dimension sets and with the units `fixtures/emf-metrics.json` promises the templates, and each
/// coarser set holds the same measurements as the full one.
fn assert_filed_as_expected(points: &[emf::Point], written: &str) {
    // cold_starts is counted by crm_lambda::serve, which this test does not run (it answers events
    // itself); tests/bootstrap.rs sees the HTTP bootstrap write it. No call here is cut by a
    // deadline (crm-dynamo's tests/dynamodb/transient.rs cuts one).
    emf::assert_as_contracted(
        points,
        "crm-lambda-http",
        &[
            crm_lambda::metrics::COLD_STARTS,
            crm_dynamo::metrics::CANCELLED,
        ],
    );
    for point in points {
        assert_eq!(point.namespace, "crm-test", "{point:?} in {written}");
        assert_eq!(point.dimensions["function"], "crm-test-fn", "{point:?}");
    }
    emf::assert_rollups_agree(points);
}

/// The DynamoDB calls: known operations, one duration per call, the one error (under the
/// operation and under the function alone, as the alarm reads it), the one throttle and its retry.
fn assert_dynamodb_calls(points: &[emf::Point], written: &str) {
    let operations: BTreeSet<&str> = points
        .iter()
        .filter_map(|p| p.dimensions.get("operation").map(String::as_str))
        .collect();
    assert!(operations.contains("GetItem"), "{operations:?}");
    assert!(
        operations
            .iter()
            .all(|o| crm_dynamo::metrics::OPERATIONS.contains(o)),
        "{operations:?}"
    );
    let calls = emf::total_under(points, "dynamodb_calls", DYNAMODB_SET);
    let durations = emf::samples_under(points, "dynamodb_call_duration_ms", DYNAMODB_SET);
    assert_eq!(
        f64::from(u32::try_from(durations).unwrap()),
        calls,
        "{written}"
    );
    // One error (the missing table, a GetItem); the taken id was the store's own condition.
    assert_eq!(
        emf::total(points, "dynamodb_errors", &[FUNCTION]),
        1.0,
        "{written}"
    );
    assert_eq!(
        emf::total(
            points,
            "dynamodb_errors",
            &[FUNCTION, ("operation", "GetItem")]
        ),
        1.0
    );
    assert_eq!(
        emf::total(
            points,
            "dynamodb_throttles",
            &[FUNCTION, ("operation", "GetItem")]
        ),
        1.0
    );
    assert_eq!(
        emf::total(
            points,
            "dynamodb_retries",
            &[FUNCTION, ("operation", "GetItem")]
        ),
        1.0
    );
}

/// The six requests, under the full set, by status class alone and (their durations) by route
/// alone.
fn assert_http_requests(points: &[emf::Point], written: &str) {
    let requests = |route, method, class| {
        emf::total(
            points,
            "http_requests",
            &[
                FUNCTION,
                ("route", route),
                ("method", method),
                ("status_class", class),
            ],
        )
    };
    assert_eq!(requests("/customers", "POST", "2xx"), 1.0, "{written}");
    assert_eq!(requests("/customers", "POST", "4xx"), 1.0, "{written}");
    assert_eq!(requests("/customers/{id}", "GET", "2xx"), 1.0, "{written}");
    assert_eq!(requests("/customers/{id}", "GET", "4xx"), 1.0, "{written}");
    assert_eq!(requests("unmatched", "GET", "4xx"), 1.0, "{written}");
    assert_eq!(requests("/health", "DELETE", "4xx"), 1.0, "{written}");
    assert_eq!(
        emf::total_under(points, "http_requests", HTTP_SET),
        6.0,
        "{written}"
    );
    // By status class alone, as the server-errors alarm and the dashboard read them.
    let by_class = |class| {
        emf::total(
            points,
            "http_requests",
            &[FUNCTION, ("status_class", class)],
        )
    };
    assert_eq!(
        (by_class("2xx"), by_class("4xx"), by_class("5xx")),
        (2.0, 4.0, 0.0)
    );
    assert_eq!(
        emf::samples_under(points, "http_request_duration_ms", HTTP_SET),
        6,
        "{written}"
    );
    // By route alone, as the dashboard's p99 per route reads them.
    assert_eq!(
        emf::samples(
            points,
            "http_request_duration_ms",
            &[FUNCTION, ("route", "/customers")]
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_is_an_emf_line_that_cloudwatch_reads_without_customer_data() {
    crm_lambda::metrics::install_emf("crm-test", Some("crm-test-fn")).unwrap();
    assert!(crm_lambda::metrics::install_emf("crm-test", None).is_err());

    // The HTTP function over a table on DynamoDB Local.
    let table = format!("crm-metrics-{}", CustomerId::generate());
    let repository = DynamoCustomerRepository::connect(&settings(&table, &endpoint())).await;
    repository.create_table().await.unwrap_or_else(|e| {
        panic!(
            "DynamoDB Local must run at {} (scripts/dynamodb-local.sh start): {e:?}",
            endpoint()
        )
    });
    let state = AppState::new(
        CustomerService::new(Arc::new(repository)),
        &Config::default(),
    );
    let api = crm_http::api(state);
    let ada = json!({"id": "planted-id-77", "firstName": "Zephyrine", "lastName": "Quillfeather",
        "email": "zq.planted@example.org"});
    assert_eq!(answer(&api, "POST", "/customers", Some(&ada)).await, 201);
    assert_eq!(
        answer(&api, "GET", "/customers/planted-id-77", None).await,
        200
    );
    // The same id again: the store's condition says it is taken, which is no DynamoDB error.
    assert_eq!(answer(&api, "POST", "/customers", Some(&ada)).await, 409);
    assert_eq!(
        answer(&api, "GET", "/customers/zq.planted@example.org", None).await,
        404
    );
    assert_eq!(
        answer(&api, "GET", "/Zephyrine/Quillfeather", None).await,
        404
    );
    assert_eq!(answer(&api, "DELETE", "/health", None).await, 405);

    // A table that does not exist: an error. A throttled attempt, retried.
    let missing =
        DynamoCustomerRepository::connect(&settings("crm-metrics-missing", &endpoint())).await;
    missing
        .get(&CustomerId::parse("a").unwrap())
        .await
        .unwrap_err();
    let throttled =
        DynamoCustomerRepository::connect(&settings("customers", &throttling_once().await)).await;
    assert!(
        throttled
            .get(&CustomerId::parse("a").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let mut written = Vec::new();
    crm_lambda::metrics::flush_into(&mut written);
    let written = String::from_utf8(written).unwrap();
    for planted in PLANTED {
        assert!(
            !written.contains(planted),
            "{planted} in the metrics: {written}"
        );
    }
    assert!(written.lines().all(emf::is_emf), "{written}");
    let points = emf::points(&written);

    assert_filed_as_expected(&points, &written);

    assert_http_requests(&points, &written);
    assert_dynamodb_calls(&points, &written);

    // A flush takes what it writes: nothing new, nothing written.
    let mut again = Vec::new();
    crm_lambda::metrics::flush_into(&mut again);
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
    // And the next flush holds only what came after.
    assert_eq!(answer(&api, "GET", "/health", None).await, 200);
    let mut next = Vec::new();
    crm_lambda::metrics::flush_into(&mut next);
    let next = emf::points(&String::from_utf8(next).unwrap());
    assert_eq!(
        emf::total_under(&next, "http_requests", HTTP_SET),
        1.0,
        "{next:?}"
    );
    assert_eq!(
        emf::total(
            &next,
            "http_requests",
            &[
                FUNCTION,
                ("route", "/health"),
                ("method", "GET"),
                ("status_class", "2xx")
            ]
        ),
        1.0
    );
}
