//! No customer field ever reaches a log line; every request leaves exactly one.

use std::collections::HashSet;

use http::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResponse, logs, spawn_app};

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
    expect(204, app.delete("/customers/z-1", None).await);
    ids
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
        "/customers/{id}",
        "/Customers",
        "/DynamoDBManager",
        "unmatched",
    ] {
        assert!(routes.contains(route), "{route} not in {routes:?}");
    }
}
