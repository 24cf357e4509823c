//! OpenTelemetry spans as `crm-server` exports them (feature `otel`), read by a fake OTLP/HTTP
//! collector (`support/otlp_collector.rs`): over a table on DynamoDB Local
//! (`CRM_TEST_DYNAMODB_ENDPOINT`, default `http://127.0.0.1:8000`; `scripts/dynamodb-local.sh
//! start`; the test fails, never skips, without it), a request that carries the caller's trace
//! context yields one server span named by its route template in the caller's trace, under the
//! caller's span, and one client span under it per DynamoDB call (counted by the server's own
//! `dynamodb_calls` metric), and no byte sent to the collector holds the customer data of the
//! request. The batch processor's schedule is set to ten minutes, so the spans can only arrive
//! through the flush of the server's shutdown.
//!
//! This file is built only with the feature (the package's dev-dependency on itself turns it on
//! for `cargo test`), and with the DynamoDB store and the Prometheus metrics it reads.

#![cfg(all(
    target_os = "linux",
    feature = "otel",
    feature = "dynamodb",
    feature = "prometheus"
))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

#[path = "support/otlp_collector.rs"]
mod otlp_collector;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use otlp_collector::{Collector, ExportedSpan, KIND_CLIENT, KIND_SERVER};

/// Customer values planted in the request bodies and paths: none may reach the collector.
const PLANTED: &[&str] = &[
    "Zephyrine",
    "Quillfeather",
    "zq.planted@example.org",
    "zq.planted",
    "planted-id-77",
    "Zephyr",
];

/// The caller's trace and span, as a `traceparent` carries them.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The caller's X-Ray trace, as an `X-Amzn-Trace-Id` header carries it (REST API, ALB).
const XRAY_ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const XRAY_PARENT: &str = "53995c3f42cd8ad8";

/// A third caller's trace: a search by name, whose index reads run in tasks of their own.
const SEARCH_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SEARCH_SPAN: &str = "b7ad6b7169203331";

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
    DynamoCustomerRepository::connect(&settings)
        .await
        .create_table()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "DynamoDB Local must run at {} (scripts/dynamodb-local.sh start): {e:?}",
                endpoint()
            )
        });
    table
}

/// The server process, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `crm-server` on a free port with `vars`; returns it and its address.
fn start(vars: &[(&str, String)]) -> (Running, String) {
    let (server, address, _) = start_with_log(vars);
    (server, address)
}

/// [`start`], and the server's log lines (its stdout after the first line) as they come.
fn start_with_log(vars: &[(&str, String)]) -> (Running, String, mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm-server"));
    command
        .env_clear()
        .env("CRM_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut server = Running(command.spawn().unwrap());
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let address = first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .trim_end_matches(';')
        .to_owned();
    (server, address, log)
}

/// One HTTP/1.1 request; the status and the body.
fn send(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    if let Some(body) = body {
        let _ = write!(
            request,
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The server's `dynamodb_calls` counter, by operation.
fn dynamodb_calls(address: &str) -> BTreeMap<String, u64> {
    let (status, text) = send(address, "GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("dynamodb_calls{operation=\"")?;
            let (operation, value) = rest.split_once("\"} ")?;
            Some((operation.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The calls made between `before` and `after`, by operation, as span names.
fn calls_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(operation, n)| {
            (
                format!("DynamoDB.{operation}"),
                n - before.get(operation).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Stops the server with SIGTERM and waits for it to exit, successfully.
fn stop(server: &mut Running) {
    let terminated = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// The names of the process's threads.
fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The one server span of `spans`, and its DynamoDB calls: the client spans under it, by name.
fn request_and_calls(spans: &[ExportedSpan]) -> (ExportedSpan, BTreeMap<String, u64>) {
    let servers: Vec<&ExportedSpan> = spans.iter().filter(|s| s.kind == KIND_SERVER).collect();
    assert_eq!(servers.len(), 1, "{spans:#?}");
    let server = servers[0].clone();
    let mut calls = BTreeMap::new();
    for span in spans.iter().filter(|s| s.kind != KIND_SERVER) {
        assert_eq!(span.kind, KIND_CLIENT, "{span:#?}");
        assert_eq!(span.parent_span_id, server.span_id, "{span:#?}");
        *calls.entry(span.name.clone()).or_insert(0) += 1;
    }
    (server, calls)
}

#[test]
fn a_request_s_spans_reach_the_collector_in_the_caller_s_trace_without_customer_data() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = runtime.block_on(Collector::start());
    let table = runtime.block_on(fresh_table());
    let (mut server, address) = start(&[
        ("CRM_TABLE_NAME", table),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("CRM_METRICS", "prometheus".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_SERVICE_NAME", "crm-otel-test".to_owned()),
        // Spans leave only when flushed: at shutdown.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
    ]);
    assert!(
        threads(server.0.id())
            .iter()
            .any(|name| name == "crm-otel-export"),
        "{:?}",
        threads(server.0.id())
    );

    // A create, from a caller whose W3C trace context the request carries.
    let before = dynamodb_calls(&address);
    let body = r#"{"id":"planted-id-77","firstName":"Zephyrine","lastName":"Quillfeather","email":"zq.planted@example.org"}"#;
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, created) = send(
        &address,
        "POST",
        "/customers",
        &[("traceparent", &traceparent)],
        Some(body),
    );
    assert_eq!(status, 201, "{created}");
    let after_create = dynamodb_calls(&address);

    // A read, from a caller in an X-Ray trace, with customer data in the path and the query.
    let xray = format!("Root={XRAY_ROOT};Parent={XRAY_PARENT};Sampled=1");
    let (status, read) = send(
        &address,
        "GET",
        "/customers/planted-id-77?email=zq.planted%40example.org",
        &[("x-amzn-trace-id", &xray)],
        None,
    );
    assert_eq!(status, 200, "{read}");
    let after_read = dynamodb_calls(&address);

    // A search by name, with the name in the query: its index reads run in parallel tasks.
    let traceparent = format!("00-{SEARCH_TRACE}-{SEARCH_SPAN}-01");
    let (status, found) = send(
        &address,
        "GET",
        "/customers?name=Zephyr",
        &[("traceparent", &traceparent)],
        None,
    );
    assert_eq!(status, 200, "{found}");
    assert!(found.contains("planted-id-77"), "{found}");
    let after_search = dynamodb_calls(&address);
    assert!(collector.bodies().is_empty(), "exported before a flush");

    stop(&mut server);
    assert_eq!(collector.refused(), 0);
    let bodies = collector.bodies();
    assert!(!bodies.is_empty(), "no span reached the collector");
    for body in &bodies {
        let text = String::from_utf8_lossy(body);
        for planted in PLANTED {
            assert!(!text.contains(planted), "{planted} exported: {text:?}");
        }
    }

    let created = collector.trace(CALLER_TRACE);
    eprintln!(
        "DEBUG {created:#?} {:#?}",
        collector.trace(&XRAY_ROOT[2..].replace('-', ""))
    );
    let (request, calls) = request_and_calls(&created);
    assert_eq!(request.name, "POST /customers");
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.service, "crm-otel-test");
    assert_eq!(request.status, 0, "{request:#?}");
    assert_eq!(
        request
            .attributes
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        [
            "http.request.method",
            "http.response.status_code",
            "http.route",
            "request_id"
        ]
    );
    assert_eq!(request.attributes["http.route"], "/customers");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.response.status_code"], "201");
    let expected = calls_between(&before, &after_create);
    assert!(
        !expected.is_empty(),
        "a create calls DynamoDB: {after_create:?}"
    );
    assert_eq!(calls, expected, "{created:#?}");
    for call in created.iter().filter(|s| s.kind == KIND_CLIENT) {
        assert_eq!(
            call.attributes
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["rpc.method", "rpc.service", "rpc.system"],
            "{call:#?}"
        );
        assert_eq!(call.attributes["rpc.service"], "DynamoDB");
        assert_eq!(call.attributes["rpc.system"], "aws-api");
        assert_eq!(
            call.name,
            format!("DynamoDB.{}", call.attributes["rpc.method"])
        );
        assert_eq!((call.events, call.links), (0, 0));
    }

    let read = collector.trace(&XRAY_ROOT[2..].replace('-', ""));
    let (request, calls) = request_and_calls(&read);
    assert_eq!(request.name, "GET /customers/{id}");
    assert_eq!(request.parent_span_id, XRAY_PARENT);
    assert_eq!(request.attributes["http.route"], "/customers/{id}");
    assert_eq!(
        calls,
        calls_between(&after_create, &after_read),
        "{read:#?}"
    );

    let search = collector.trace(SEARCH_TRACE);
    let (request, calls) = request_and_calls(&search);
    assert_eq!(request.name, "GET /customers");
    assert_eq!(request.parent_span_id, SEARCH_SPAN);
    let expected = calls_between(&after_read, &after_search);
    assert!(
        expected.get("DynamoDB.Query").is_some_and(|n| *n > 1),
        "{expected:?}"
    );
    assert_eq!(calls, expected, "{search:#?}");

    // The scrapes of /metrics, which carried no trace context, are traces of their own.
    let scrapes: Vec<ExportedSpan> = collector
        .spans()
        .into_iter()
        .filter(|s| s.name == "GET /metrics")
        .collect();
    assert_eq!(scrapes.len(), 4, "{scrapes:#?}");
    for scrape in &scrapes {
        assert_eq!(scrape.parent_span_id, "", "{scrape:#?}");
        assert_ne!(scrape.trace_id, CALLER_TRACE);
    }
    assert_eq!(
        collector.spans().len(),
        created.len() + read.len() + search.len() + scrapes.len(),
        "a span outside the requests: {:#?}",
        collector.spans()
    );
}

#[test]
fn without_an_endpoint_nothing_of_opentelemetry_runs() {
    let (mut server, address) = start(&[("OTEL_SERVICE_NAME", "crm-otel-test".to_owned())]);
    assert_eq!(send(&address, "GET", "/health", &[], None).0, 200);
    let names = threads(server.0.id());
    assert!(
        !names
            .iter()
            .any(|name| name == "crm-otel-export" || name.starts_with("OpenTelemetry")),
        "{names:?}"
    );
    stop(&mut server);
}

#[test]
fn a_failed_export_is_counted_and_logged_once_a_minute_and_requests_are_answered() {
    // Nothing listens on the endpoint: every export fails to connect. The port is one of
    // 127.0.0.2, where no other test's server binds: a port of 127.0.0.1, once dropped, could be
    // taken by a server of a test running beside this one (which once answered 404).
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let collector = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (mut server, address, log) = start_with_log(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector),
        // Export every 20 ms, so that each request's span is exported (and fails) on its own.
        ("OTEL_BSP_SCHEDULE_DELAY", "20".to_owned()),
        ("CRM_METRICS", "prometheus".to_owned()),
    ]);
    let started = Instant::now();
    let failures = || {
        let (status, text) = send(&address, "GET", "/metrics", &[], None);
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|line| line.strip_prefix("span_export_failures "))
            .map_or(0, |value| value.trim().parse::<u64>().unwrap())
    };
    while failures() < 3 {
        assert_eq!(send(&address, "GET", "/health", &[], None).0, 200);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no failed export was counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(&mut server);

    // Every line: the reading thread ends, and with it the channel, when the server's stdout closes.
    let lines: Vec<String> = log.iter().collect();
    let reported: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("span export failed"))
        .collect();
    let minutes = started.elapsed().as_secs() / 60;
    assert!(
        !reported.is_empty() && reported.len() as u64 <= 1 + minutes,
        "one warning a minute at most, and one at least: {lines:#?}"
    );
    let line: serde_json::Value = serde_json::from_str(reported[0]).unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(
        line["error"], "Operation failed: HTTP export failed: network error",
        "{line}"
    );
    assert!(line["spans_lost"].as_u64().unwrap() >= 1, "{line}");
}
