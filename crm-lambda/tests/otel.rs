//! OpenTelemetry spans as the HTTP bootstrap exports them (feature `otel`), under the fake Lambda
//! Runtime API (`support/fake_runtime.rs`) over a table on DynamoDB Local (`scripts/dynamodb-local.sh
//! start`; the test fails, never skips, without it), to a fake OTLP/HTTP collector (crm-http's
//! `tests/support/otlp_collector.rs`).
//!
//! Lambda may freeze the sandbox as soon as an invocation's answer is posted, so its spans must
//! have reached the collector by then: the batch processor's schedule is set to ten minutes, and
//! the collector must hold the invocation's spans the moment `invoke` has the answer (the fake
//! runtime hands it over only once the bootstrap has posted it). Only the flush before the answer
//! can have sent them.
//!
//! Built only with the feature, which this package's dev-dependency on itself turns on for
//! `cargo test`.

#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/fake_runtime.rs"]
mod fake_runtime;
#[path = "../../crm-http/tests/support/otlp_collector.rs"]
mod otlp_collector;

use std::process::Stdio;
use std::time::Duration;

use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use fake_runtime::FakeRuntime;
use otlp_collector::{Collector, KIND_CLIENT, KIND_SERVER};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

/// Customer values planted in the events: none may reach the collector.
const PLANTED: &[&str] = &[
    "Zephyrine",
    "Quillfeather",
    "zq.planted@example.org",
    "planted-id-77",
];

fn endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

/// A new table on DynamoDB Local, or a failure that says how to start it.
async fn fresh_table() -> String {
    let table = format!("crm-otel-{}", crm_domain::CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")
        .unwrap()
        .with_endpoint(endpoint())
        .with_local_credentials();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository.create_table().await.unwrap_or_else(|e| {
        panic!(
            "DynamoDB Local must run at {} (scripts/dynamodb-local.sh start): {e:?}",
            endpoint()
        )
    });
    table
}

/// Starts `binary` as Lambda would, exporting spans to the collector at `collector` (a URL).
fn launch(binary: &str, runtime: &FakeRuntime, table: &str, collector: &str) -> Child {
    Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "crm-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint())
        .env("CRM_TABLE_NAME", table)
        .env("CRM_METRICS", "off")
        .env("RUST_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
        // Spans leave only when flushed.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

/// Stops the function and returns everything it printed.
async fn stop(mut child: Child) -> String {
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut printed = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut printed).await;
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut printed).await;
    }
    printed
}

/// An API Gateway HTTP API (payload 2.0) event from a caller in the W3C trace `trace`, span `span`.
fn http_event(method: &str, path: &str, trace: &str, span: &str, body: Option<&Value>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "api.example.test",
            "content-type": "application/json",
            "traceparent": format!("00-{trace}-{span}-01")
        },
        "requestContext": {
            "accountId": "000000000000", "apiId": "api", "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "request-1", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000", "timeEpoch": 1_795_320_000_000_u64
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_s_spans_reach_the_collector_before_its_answer_is_posted() {
    let collector = Collector::start().await;
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch(
        env!("CARGO_BIN_EXE_crm-lambda-http"),
        &runtime,
        &table,
        &collector.endpoint(),
    );

    let cases = [
        (
            "POST",
            "/customers",
            "POST /customers",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            Some(json!({"id": "planted-id-77", "firstName": "Zephyrine",
                "lastName": "Quillfeather", "email": "zq.planted@example.org"})),
            201,
        ),
        (
            "GET",
            "/customers/planted-id-77",
            "GET /customers/{id}",
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            None,
            200,
        ),
    ];
    for (method, path, name, trace, caller, body, status) in cases {
        let answer = runtime
            .invoke(http_event(method, path, trace, caller, body.as_ref()))
            .await
            .response();
        assert_eq!(answer["statusCode"], status, "{answer}");
        // Read the moment the answer is in: no waiting.
        let spans = collector.trace(trace);
        let servers: Vec<_> = spans.iter().filter(|s| s.kind == KIND_SERVER).collect();
        assert_eq!(
            servers.len(),
            1,
            "{name}: not exported before the answer: {spans:#?}"
        );
        let server = servers[0];
        assert_eq!(server.name, name);
        assert_eq!(server.parent_span_id, caller);
        assert_eq!(
            server.attributes["http.response.status_code"],
            status.to_string()
        );
        let calls: Vec<_> = spans.iter().filter(|s| s.kind == KIND_CLIENT).collect();
        assert!(!calls.is_empty(), "{name}: no DynamoDB call: {spans:#?}");
        for call in calls {
            assert_eq!(call.parent_span_id, server.span_id, "{call:#?}");
            assert!(call.name.starts_with("DynamoDB."), "{call:#?}");
        }
    }

    let printed = stop(function).await;
    assert_eq!(collector.refused(), 0);
    for body in collector.bodies() {
        let text = String::from_utf8_lossy(&body);
        for planted in PLANTED {
            assert!(!text.contains(planted), "{planted} exported: {text:?}");
        }
    }
    let resource = collector.spans();
    assert!(resource.iter().all(|s| s.service == "crm"), "{resource:#?}");
    assert!(!printed.contains("panicked"), "{printed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_invocation_is_a_server_span_exported_before_its_answer_is_posted() {
    let collector = Collector::start().await;
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch(
        env!("CARGO_BIN_EXE_crm-lambda-envelope"),
        &runtime,
        &table,
        &collector.endpoint(),
    );

    let item = json!({"id": "planted-id-77", "firstName": "Zephyrine", "lastName": "Quillfeather",
        "email": "zq.planted@example.org"});
    runtime
        .invoke(json!({"operation": "create", "tableName": table, "payload": {"Item": item}}))
        .await
        .response();
    // Read the moment the answer is in: no waiting. The fake runtime's X-Ray header names no
    // parent, so the invocation starts a trace of its own.
    let spans = collector.spans();
    let invocations: Vec<_> = spans.iter().filter(|s| s.kind == KIND_SERVER).collect();
    assert_eq!(
        invocations.len(),
        1,
        "not exported before the answer: {spans:#?}"
    );
    let invocation = invocations[0];
    assert_eq!(invocation.name, "DynamoDBManager create");
    assert_eq!(invocation.parent_span_id, "");
    assert_eq!(invocation.attributes["crm.operation"], "create");
    assert_eq!(invocation.attributes["crm.status"], "200");
    let calls: Vec<_> = spans.iter().filter(|s| s.kind == KIND_CLIENT).collect();
    assert!(!calls.is_empty(), "no DynamoDB call: {spans:#?}");
    for call in &calls {
        assert_eq!(call.parent_span_id, invocation.span_id, "{call:#?}");
        assert_eq!(call.trace_id, invocation.trace_id, "{call:#?}");
    }
    assert_eq!(spans.len(), 1 + calls.len(), "{spans:#?}");

    let printed = stop(function).await;
    for body in collector.bodies() {
        let text = String::from_utf8_lossy(&body);
        for planted in PLANTED {
            assert!(!text.contains(planted), "{planted} exported: {text:?}");
        }
    }
    assert!(!printed.contains("panicked"), "{printed}");
}

/// A collector that takes connections and never answers (a hung or black-holed endpoint) never
/// holds an answer past its invocation's deadline: the flush waits at most the time left less the
/// margin kept for posting the answer. Each invocation here gets 1 s, the exporter's own timeout,
/// so an unbounded flush would post every answer after its deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_never_answers_does_not_hold_the_answers_back() {
    // Accepts every connection and keeps it open, reading nothing, answering nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch(
        env!("CARGO_BIN_EXE_crm-lambda-http"),
        &runtime,
        &table,
        &format!("http://{address}"),
    );

    runtime.give_each_invocation(Duration::from_secs(1));
    for (round, trace) in [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0af7651916cd43dd8448eb211c80319c",
    ]
    .into_iter()
    .enumerate()
    {
        let started = std::time::Instant::now();
        let answer = runtime
            .invoke(http_event(
                "GET",
                "/customers/absent",
                trace,
                "00f067aa0ba902b7",
                None,
            ))
            .await
            .response();
        let took = started.elapsed();
        assert_eq!(answer["statusCode"], 404, "{answer}");
        assert!(
            took < Duration::from_secs(1),
            "answer {round} took {took:?}, past its deadline, behind a collector that never answers"
        );
    }
    let printed = stop(function).await;
    held.abort();
    assert!(!printed.contains("panicked"), "{printed}");
}
