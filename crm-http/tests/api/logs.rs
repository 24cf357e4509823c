//! No customer field ever reaches a log line; every request, and every direct invocation of the
//! envelope, leaves exactly one.

use std::collections::HashSet;
use std::sync::Arc;

use crm_domain::RepositoryError;
use crm_http::{PlatformContext, envelope};
use http::Method;
use serde_json::{Value, json};

use crate::helpers::{FailingRepository, TestApp, TestResponse, logs, spawn_app, spawn_app_with};

/// The customer data of the session below; none of it may appear in any log line of any test.
const SECRETS: &[&str] = &[
    "Zephyrine",
    "Quillfeather",
    "zephyrine.q@example.org",
    "+447700900123",
    "+447700900999",
    "Marigold",
    "Thistleton",
    "Bramblewick",
    "Obadiah",
    "obadiah@example.net",
];

/// Every kind of request, successes and failures, with customer data in bodies, paths and queries;
/// returns the request ids.
async fn crud_session(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    let mut expect = |status: u16, response: TestResponse| {
        assert_eq!(
            response.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        ids.push(response.header("x-request-id").to_owned());
    };
    let zephyrine = json!({
        "id": "z-1", "firstName": "Zephyrine", "lastName": "Quillfeather",
        "email": "zephyrine.q@example.org", "phone": "+447700900123",
        "address": {"line1": "17 Marigold Lane", "city": "Thistleton", "country": "GB"}
    });
    expect(201, app.post_json("/customers", &zephyrine).await);
    expect(200, app.get("/customers/z-1").await);
    expect(200, app.get("/customers?limit=10").await);
    expect(
        200,
        app.get("/customers?email=ZEPHYRINE.Q%40example.org").await,
    );
    expect(200, app.get("/customers?email=obadiah%40example.net").await);
    expect(
        422,
        app.post_json(
            "/customers",
            &json!({"firstName": "Obadiah", "email": "Bramblewick", "phone": "+447700900999x",
                    "Thistleton": "Marigold"}),
        )
        .await,
    );
    expect(
        409,
        app.post_json(
            "/customers",
            &json!({"firstName": "Obadiah", "lastName": "Bramblewick", "email": "zephyrine.q@example.org"}),
        )
        .await,
    );
    expect(
        400,
        app.request(
            Method::POST,
            "/customers",
            &[("content-type", "application/json")],
            "{\"firstName\": \"Obadiah\"",
        )
        .await,
    );
    expect(
        200,
        app.patch_json(
            "/customers/z-1",
            &json!({"phone": "+447700900999", "address": {"city": "Bramblewick"}}),
            Some("\"1\""),
        )
        .await,
    );
    expect(
        412,
        app.patch_json(
            "/customers/z-1",
            &json!({"firstName": "Obadiah"}),
            Some("\"1\""),
        )
        .await,
    );
    expect(
        200,
        app.send_json(
            Method::POST,
            "/Customers",
            &json!({"id": "o-1", "firstName": "Obadiah", "lastName": "Bramblewick", "Address": "Marigold Cottage"}),
        )
        .await,
    );
    expect(200, app.get("/Customers").await);
    expect(
        200,
        app.envelope(json!({"operation": "read", "payload": {"Key": {"id": "o-1"}}}))
            .await,
    );
    expect(
        200,
        app.envelope(json!({"operation": "update", "payload": {"Key": {"id": "o-1"},
            "UpdateExpression": "SET email = :e", "ExpressionAttributeValues": {":e": "obadiah@example.net"}}}))
            .await,
    );
    expect(
        400,
        app.envelope(json!({"operation": "Zephyrine", "tableName": "Quillfeather"}))
            .await,
    );
    expect(404, app.get("/customers/Zephyrine").await);
    expect(404, app.get("/Zephyrine/Quillfeather").await);
    find_then_delete(app, &mut expect).await;
    ids
}

/// The end of the session: searches with names and emails in queries and bodies, found and
/// refused; the delete of the customer; the change feed with its tombstone.
async fn find_then_delete(app: &TestApp, expect: &mut impl FnMut(u16, TestResponse)) {
    expect(200, app.get("/customers?name=Zephyrine&limit=1").await);
    expect(200, app.get("/customers?sort=name&limit=1").await);
    expect(
        200,
        app.post_json("/customers/search", &json!({"name": "quillfeather z"}))
            .await,
    );
    expect(
        200,
        app.post_json(
            "/customers/search",
            &json!({"email": "zephyrine.q@example.org"}),
        )
        .await,
    );
    expect(
        422,
        app.post_json(
            "/customers/search",
            &json!({"name": "Bramblewick".repeat(10)}),
        )
        .await,
    );
    expect(
        400,
        app.post_json(
            "/customers/search",
            &json!({"name": "Obadiah", "email": "obadiah@example.net"}),
        )
        .await,
    );
    expect(204, app.delete("/customers/z-1", None).await);
    expect(
        200,
        app.get("/customers?updatedSince=2000-01-01T00:00:00Z")
            .await,
    );
}

#[tokio::test]
async fn a_full_crud_session_logs_one_line_per_request_and_no_customer_data() {
    let app = spawn_app();
    let ids = crud_session(&app).await;

    let logs = logs();
    let lowercase = logs.to_ascii_lowercase();
    for secret in SECRETS {
        assert!(
            !lowercase.contains(&secret.to_ascii_lowercase()),
            "{secret} was logged:\n{logs}"
        );
    }
    let ours: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let request_lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .filter(|l| l["message"] == "request")
        .filter(|l| l["request_id"].as_str().is_some_and(|id| ours.contains(id)))
        .collect();
    assert_eq!(request_lines.len(), ids.len(), "{logs}");
    for line in &request_lines {
        for field in ["request_id", "method", "route", "status", "latency_ms"] {
            assert!(!line[field].is_null(), "{field} missing in {line}");
        }
    }
    let routes: HashSet<&str> = request_lines
        .iter()
        .map(|l| l["route"].as_str().unwrap())
        .collect();
    for route in [
        "/customers",
        "/customers/search",
        "/customers/{id}",
        "/Customers",
        "/DynamoDBManager",
        "unmatched",
    ] {
        assert!(routes.contains(route), "{route} not in {routes:?}");
    }
}

/// The `invocation` lines of `request_id`.
fn invocation_lines(request_id: &str) -> Vec<Value> {
    logs()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .filter(|l| l["message"] == "invocation" && l["request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn a_direct_invocation_logs_one_invocation_line_with_its_status_and_no_customer_data() {
    let app = spawn_app();
    let run = uuid_like();
    let create = json!({"operation": "create", "payload": {"Item": {
        "id": "inv-1", "firstName": "Zephyrine", "lastName": "Quillfeather",
        "email": "zephyrine.q@example.org", "address": "17 Marigold Lane"}}});
    let cases = [
        ("ok", json!({"operation": "ping"}), "ping", 200),
        ("create", create.clone(), "create", 200),
        ("duplicate", create, "create", 409),
        (
            "missing",
            json!({"operation": "delete", "payload": {"Key": {"id": "ghost"}}}),
            "delete",
            404,
        ),
        (
            "invalid",
            json!({"operation": "update", "payload": {"Key": {"id": "inv-1"},
                "UpdateExpression": "SET phone = :p", "ExpressionAttributeValues": {":p": "+447700900999x"}}}),
            "update",
            422,
        ),
        (
            "table",
            json!({"operation": "read", "tableName": "Bramblewick", "payload": {"Key": {"id": "inv-1"}}}),
            "read",
            403,
        ),
        // The caller's operation name is never logged: it could be anything, customer data included.
        (
            "unknown",
            json!({"operation": "Obadiah", "payload": {}}),
            "unknown",
            400,
        ),
        ("not-an-object", json!(["Thistleton"]), "unknown", 400),
    ];
    for (name, payload, operation, status) in cases {
        let request_id = format!("{run}-{name}");
        let result = envelope::invoke_direct(
            &app.state,
            &PlatformContext::new().with_request_id(request_id.clone()),
            &payload.to_string(),
        )
        .await;
        assert_eq!(result.is_ok(), status == 200, "{name}");
        let lines = invocation_lines(&request_id);
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["operation"], operation, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert!(line["latency_ms"].is_u64(), "{line}");
    }
    let logs = logs().to_ascii_lowercase();
    for secret in SECRETS.iter().chain(&["obadiah", "17 marigold lane"]) {
        assert!(
            !logs.contains(&secret.to_ascii_lowercase()),
            "{secret} was logged"
        );
    }
}

#[tokio::test]
async fn a_failed_store_logs_its_invocation_as_a_5xx_for_the_alarm() {
    fn broken() -> RepositoryError {
        RepositoryError::unexpected("boom")
    }
    fn throttled() -> RepositoryError {
        RepositoryError::unavailable("throttled")
    }
    let run = uuid_like();
    for (name, make, status) in [
        ("broken", broken as fn() -> RepositoryError, 500),
        ("throttled", throttled, 503),
    ] {
        let app = spawn_app_with(&[], Arc::new(FailingRepository(make)));
        let request_id = format!("{run}-{name}");
        let payload = json!({"operation": "read", "payload": {"Key": {"id": "x"}}});
        let error = envelope::invoke_direct(
            &app.state,
            &PlatformContext::new().with_request_id(request_id.clone()),
            &payload.to_string(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.status().as_u16(), status);
        let lines = invocation_lines(&request_id);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["status"], status);
        assert_eq!(lines[0]["operation"], "read");
    }
}

/// An id no other test uses, so that the lines found are this test's own.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "inv-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A request the store fails logs its error chain once, inside the request's span, so the error
/// line carries the request id of the request line (and the response's `x-request-id`).
#[tokio::test]
async fn a_failed_request_logs_its_error_with_the_request_id_of_its_request_line() {
    fn broken() -> RepositoryError {
        RepositoryError::unexpected("boom")
    }
    let app = spawn_app_with(&[], Arc::new(FailingRepository(broken)));
    let response = app.get("/customers/someone").await;
    assert_eq!(response.status, 500);
    let request_id = response.header("x-request-id").to_owned();
    let lines: Vec<Value> = logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["request_id"] == request_id.as_str() || l["span"]["request_id"] == request_id.as_str()
        })
        .collect();
    let request_lines: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let error_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request failed")
        .collect();
    assert_eq!(request_lines.len(), 1, "{lines:?}");
    assert_eq!(request_lines[0]["status"], 500);
    assert_eq!(error_lines.len(), 1, "{lines:?}");
    assert_eq!(error_lines[0]["span"]["request_id"], request_id.as_str());
    assert_eq!(error_lines[0]["level"], "ERROR");
    assert!(
        error_lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("boom")),
        "the chain is logged in full: {:?}",
        error_lines[0]
    );
}

/// The lines of the request whose response carried `request_id`: its request line and every line
/// logged inside it.
fn lines_of(request_id: &str) -> Vec<Value> {
    logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["request_id"] == request_id || l["span"]["request_id"] == request_id)
        .collect()
}

/// A trace case: the request's headers, what the platform adds, the trace id its lines must carry.
type TraceCase<'a> = (
    Vec<(&'a str, String)>,
    Option<PlatformContext>,
    Option<&'a str>,
);

/// The incoming trace id is on every line of its request (the request line and the error logged
/// inside it): X-Ray's root from the platform or `X-Amzn-Trace-Id`, else W3C `traceparent`'s trace
/// id. A malformed header puts nothing on a line.
#[tokio::test]
async fn the_incoming_trace_id_is_on_every_log_line_of_its_request() {
    fn broken() -> RepositoryError {
        RepositoryError::unexpected("boom")
    }
    let app = spawn_app_with(&[], Arc::new(FailingRepository(broken)));
    let xray = "1-5759e988-bd862e3fe1be46a994272793";
    let w3c = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{w3c}-00f067aa0ba902b7-01");
    let platform_root = "1-6759e988-cd862e3fe1be46a994272793";
    let cases: Vec<TraceCase<'_>> = vec![
        (
            vec![("x-amzn-trace-id", format!("Root={xray};Sampled=1"))],
            None,
            Some(xray),
        ),
        (vec![("traceparent", traceparent.clone())], None, Some(w3c)),
        (
            vec![
                ("traceparent", traceparent.clone()),
                ("x-amzn-trace-id", format!("Root={xray}")),
            ],
            None,
            Some(xray),
        ),
        (
            vec![("x-amzn-trace-id", format!("Root={xray}"))],
            Some(PlatformContext::new().with_trace_header(format!(
                "Root={platform_root};Parent=53995c3f42cd8ad8;Sampled=0"
            ))),
            Some(platform_root),
        ),
        (
            vec![(
                "traceparent",
                "00-zephyrine.q@example.org-00f067aa0ba902b7-01".to_owned(),
            )],
            None,
            None,
        ),
        (vec![], None, None),
    ];
    for (headers, platform, expected) in cases {
        let mut request = http::Request::builder()
            .method(Method::GET)
            .uri("/customers/someone");
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(axum::body::Body::empty()).unwrap();
        if let Some(platform) = platform {
            request.extensions_mut().insert(platform);
        }
        let response = app.send(request).await;
        assert_eq!(response.status, 500);
        let request_id = response.header("x-request-id").to_owned();
        let lines = lines_of(&request_id);
        assert_eq!(lines.len(), 2, "the request line and the error: {lines:?}");
        for line in &lines {
            let trace = if line["message"] == "request" {
                &line["trace_id"]
            } else {
                &line["span"]["trace_id"]
            };
            assert_eq!(trace.as_str(), expected, "{headers:?}: {line}");
        }
    }
    assert!(
        !logs().contains("zephyrine"),
        "a malformed header was logged"
    );
}
