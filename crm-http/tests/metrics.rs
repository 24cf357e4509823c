//! `GET /metrics`: the request metrics as Prometheus text, for a state given a Prometheus handle
//! (`crm-server` with `CRM_METRICS=prometheus`). Not an API operation, so these tests drive the
//! router directly rather than through the API tests' harness, which checks every response
//! against openapi.json. The recorder is local to each test (`metrics::with_local_recorder` over
//! a current-thread runtime), so the tests need no process of their own.

#![cfg(feature = "prometheus")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use crm_domain::CustomerService;
use crm_http::{AppState, Config, router};
use crm_memory::InMemoryCustomerRepository;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// Customer values planted in bodies, paths and queries: none may appear in the metrics.
const PLANTED: &[&str] = &["Zephyrine", "Quillfeather", "zq.planted", "planted-id-77"];

fn state() -> AppState {
    AppState::new(
        CustomerService::new(Arc::new(InMemoryCustomerRepository::new())),
        &Config::default(),
    )
}

async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// One sample line of the Prometheus text format: `name{label="value",…} number`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format as a scraper does; panics on any line it cannot read.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            assert!(matches!(words.first(), Some(&("TYPE" | "HELP"))), "{line}");
            if words[0] == "TYPE" {
                assert!(
                    matches!(words[2], "counter" | "gauge" | "histogram" | "summary"),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect(line)),
            None => (series, ""),
        };
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "{line}"
        );
        let mut parsed = BTreeMap::new();
        // Label values here hold no `",` sequence (route templates, classes, methods).
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once("=\"").expect(line);
            parsed.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels: parsed,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Runs `test` with a local Prometheus recorder, on a current-thread runtime (the recorder is
/// the thread's).
fn with_recorder(test: impl AsyncFnOnce(AppState)) {
    let recorder = crm_http::metrics::prometheus_recorder();
    let state = state().with_prometheus(recorder.handle());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        crm_http::metrics::describe();
        runtime.block_on(test(state));
    });
}

/// Every series of a request metric has exactly the three labels (and a summary's quantile).
fn assert_three_labels(samples: &[Sample]) {
    for sample in samples
        .iter()
        .filter(|s| s.name.starts_with("http_request"))
    {
        let keys: Vec<&str> = sample
            .labels
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "quantile")
            .collect();
        assert_eq!(keys, ["method", "route", "status_class"], "{sample:?}");
    }
}

#[test]
fn every_request_is_counted_by_route_template_method_and_status_class() {
    with_recorder(async |state| {
        let app = router(state);
        let body = r#"{"id":"planted-id-77","firstName":"Zephyrine","lastName":"Quillfeather","email":"zq.planted@example.org"}"#;
        assert_eq!(
            send(&app, Method::POST, "/customers", Some(body)).await.0,
            StatusCode::CREATED
        );
        assert_eq!(
            send(&app, Method::GET, "/customers/planted-id-77", None)
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::GET, "/prod/customers/planted-id-77", None)
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::GET, "/customers/Zephyrine-missing", None)
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        send(
            &app,
            Method::GET,
            "/customers?email=zq.planted%40example.org",
            None,
        )
        .await;
        send(&app, Method::GET, "/Zephyrine/Quillfeather/x", None).await;
        let custom = Method::from_bytes(b"ZEPHYRINE").unwrap();
        send(&app, custom, "/customers", None).await;

        let (status, text) = send(&app, Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        for planted in PLANTED {
            assert!(!text.contains(planted), "{planted} in the metrics: {text}");
        }
        let samples = parse(&text);
        let requests = |route, method, class| {
            value(
                &samples,
                "http_requests",
                &[
                    ("route", route),
                    ("method", method),
                    ("status_class", class),
                ],
            )
        };
        assert_eq!(requests("/customers", "POST", "2xx"), Some(1.0), "{text}");
        // The stage prefix is not part of the template: both reads are one series.
        assert_eq!(
            requests("/customers/{id}", "GET", "2xx"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            requests("/customers/{id}", "GET", "4xx"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(requests("/customers", "GET", "2xx"), Some(1.0), "{text}");
        assert_eq!(requests("unmatched", "GET", "4xx"), Some(1.0), "{text}");
        assert_eq!(requests("/customers", "other", "4xx"), Some(1.0), "{text}");
        // Latency: a summary per series, in milliseconds.
        let count = value(
            &samples,
            "http_request_duration_ms_count",
            &[
                ("route", "/customers/{id}"),
                ("method", "GET"),
                ("status_class", "2xx"),
            ],
        );
        assert_eq!(count, Some(2.0), "{text}");
        assert_three_labels(&samples);
        assert!(text.contains("# TYPE http_requests counter"), "{text}");

        // The scrape itself is counted, as the next scrape shows.
        let (_, text) = send(&app, Method::GET, "/metrics", None).await;
        let samples = parse(&text);
        assert_eq!(
            value(
                &samples,
                "http_requests",
                &[
                    ("route", "/metrics"),
                    ("method", "GET"),
                    ("status_class", "2xx")
                ]
            ),
            Some(1.0),
            "{text}"
        );
    });
}

#[test]
fn without_a_handle_there_is_no_metrics_route() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = router(state());
        let (status, body) = send(&app, Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    });
}

#[test]
fn the_metrics_route_speaks_the_prometheus_text_format() {
    with_recorder(async |state| {
        let app = router(state);
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
    });
}

/// `crm-server` with `CRM_METRICS=prometheus`: it says where the metrics are, and serves them.
#[test]
fn crm_server_serves_its_metrics_when_asked_to() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::process::{Command, Stdio};

    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let get = |address: &str, path: &str| {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let mut server = Running(
        Command::new(env!("CARGO_BIN_EXE_crm-server"))
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("CRM_BIND", "127.0.0.1:0")
            .env("CRM_METRICS", "prometheus")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first_line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let address = first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    assert!(
        first_line.contains(&format!("metrics at http://{address}/metrics")),
        "{first_line}"
    );
    assert!(get(&address, "/health").starts_with("HTTP/1.1 200"));
    let response = get(&address, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let samples = parse(body);
    assert_eq!(
        value(
            &samples,
            "http_requests",
            &[
                ("route", "/health"),
                ("method", "GET"),
                ("status_class", "2xx")
            ]
        ),
        Some(1.0),
        "{body}"
    );
    // Its description and unit come from `describe`.
    assert!(body.contains("# HELP http_requests"), "{body}");
}

/// EMF outside Lambda would be written for nobody: the server refuses it in one line.
#[test]
fn crm_server_refuses_emf() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .env_clear()
        .env("CRM_METRICS", "emf")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("crm-server: invalid configuration: CRM_METRICS=\"emf\""),
        "{stderr}"
    );
}
