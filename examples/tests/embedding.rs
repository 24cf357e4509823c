//! The embedding example's host application, with the customers API nested under `/crm`, over the
//! in-memory store and over DynamoDB Local: the host's middleware runs for the nested routes,
//! `Location` headers and the OpenAPI server URL carry the prefix, and every problem document is
//! exactly what the customers API answers on its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use crm_domain::{CustomerRepository, CustomerService};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use crm_examples::host;
use crm_http::{AppState, Config};
use crm_memory::InMemoryCustomerRepository;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const TOKEN: &str = "test-token";

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

const AUTHORIZED: (&str, &str) = ("authorization", "Bearer test-token");
const JSON: (&str, &str) = ("content-type", "application/json");

/// The customers API over `repository`, alone and nested in the host application.
fn apps(repository: Arc<dyn CustomerRepository>) -> (Router, Router) {
    // As the example builds it: nested under the host's mount, nothing strips stage prefixes.
    let state = AppState::new(CustomerService::new(repository), &Config::default())
        .without_stage_prefixes();
    let alone = crm_http::router(state.clone());
    let hosted = host::app(crm_http::router(state), TOKEN);
    (alone, hosted)
}

/// Everything the embedding promises, on one store.
async fn the_nested_api_keeps_its_promises(repository: Arc<dyn CustomerRepository>) {
    let (alone, hosted) = apps(repository);
    the_hosts_middleware_runs_for_the_nested_routes(&hosted).await;
    location_headers_and_the_openapi_server_carry_the_prefix(&alone, &hosted).await;
    problem_documents_are_the_apis_own(&alone, &hosted).await;
}

async fn the_hosts_middleware_runs_for_the_nested_routes(hosted: &Router) {
    // The host's own routes, and its outer layer on them.
    let home = send(hosted, "GET", "/", &[], None).await;
    assert_eq!(home.status, 200);
    assert_eq!(home.header(host::SERVED_BY), Some("host-app"));

    // The host's authentication runs before any nested route: its own 401, not the API's.
    for (method, uri) in [
        ("GET", "/crm/customers"),
        ("GET", "/crm/health"),
        ("GET", "/crm/openapi.json"),
        ("POST", "/crm/customers"),
        ("GET", "/crm/no/such/route"),
    ] {
        let refused = send(hosted, method, uri, &[], Some("{}")).await;
        assert_eq!(refused.status, 401, "{method} {uri}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(refused.header(host::SERVED_BY), Some("host-app"));
        assert!(refused.header("x-request-id").is_none(), "{method} {uri}");
    }
    let wrong = send(
        hosted,
        "GET",
        "/crm/health",
        &[("authorization", "Bearer nope")],
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Authorized: the API answers, inside the host's outer layer.
    let health = send(hosted, "GET", "/crm/health", &[AUTHORIZED], None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header(host::SERVED_BY), Some("host-app"));
    assert!(health.header("x-request-id").is_some());
}

async fn location_headers_and_the_openapi_server_carry_the_prefix(alone: &Router, hosted: &Router) {
    let created = send(
        hosted,
        "POST",
        "/crm/customers",
        &[AUTHORIZED, JSON],
        Some(
            r#"{"firstName": "Ada", "lastName": "Lovelace", "email": "ada.embedded@example.com"}"#,
        ),
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let location = created.header("location").unwrap().to_owned();
    assert_eq!(location, format!("/crm/customers/{id}"));
    let followed = send(hosted, "GET", &location, &[AUTHORIZED], None).await;
    assert_eq!(followed.status, 200);
    assert_eq!(followed.json()["id"], id.as_str());
    assert_eq!(followed.header("etag"), Some("\"1\""));

    // No stage prefixes under the host's mount: a path the routes do not have is the API's 404, not
    // an alias of one of its routes that a rule of the host keyed on paths would not expect.
    let aliased = send(
        hosted,
        "GET",
        &format!("/crm/public{}", &location[4..]),
        &[AUTHORIZED],
        None,
    )
    .await;
    assert_eq!(aliased.status, 404);
    assert_eq!(aliased.json()["type"], "urn:problem:crm:no-such-route");

    // The OpenAPI document names the prefix as its server; alone, the root.
    let nested = send(hosted, "GET", "/crm/openapi.json", &[AUTHORIZED], None).await;
    assert_eq!(nested.status, 200);
    assert_eq!(nested.json()["servers"], json!([{"url": "/crm"}]));
    let root = send(alone, "GET", "/openapi.json", &[], None).await;
    assert_eq!(root.json()["servers"], json!([{"url": "/"}]));
    let (mut nested, mut root) = (nested.json(), root.json());
    nested.as_object_mut().unwrap().remove("servers");
    root.as_object_mut().unwrap().remove("servers");
    assert_eq!(nested, root, "the document is otherwise the same");
}

/// A request that the customers API refuses.
struct Refused {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
}

const fn refused(
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
) -> Refused {
    Refused {
        method,
        path,
        headers,
        body,
    }
}

async fn problem_documents_are_the_apis_own(alone: &Router, hosted: &Router) {
    const PATCH: (&str, &str) = ("content-type", "application/merge-patch+json");
    const TEXT: (&str, &str) = ("content-type", "text/plain");
    let cases = [
        refused("GET", "/customers/nobody", &[], None),
        refused("GET", "/customers/not%20an%20id", &[], None),
        refused("POST", "/customers", &[JSON], Some(r#"{"firstName": ""}"#)),
        refused("POST", "/customers", &[JSON], Some("{not json")),
        refused("POST", "/customers", &[TEXT], Some("{}")),
        refused("PUT", "/customers", &[], None),
        refused("GET", "/customers?cursor=%21%21", &[], None),
        refused("GET", "/no/such/route", &[], None),
        refused(
            "PATCH",
            "/customers/nobody",
            &[PATCH],
            Some(r#"{"lastName": "X"}"#),
        ),
    ];
    for Refused {
        method,
        path,
        headers,
        body,
    } in cases
    {
        let direct = send(alone, method, path, headers, body).await;
        let mut with_token = headers.to_vec();
        with_token.push(AUTHORIZED);
        let nested = send(hosted, method, &format!("/crm{path}"), &with_token, body).await;
        assert!(direct.status >= 400, "{method} {path}: {}", direct.status);
        assert_eq!(nested.status, direct.status, "{method} {path}");
        assert_eq!(
            nested.header("content-type"),
            Some("application/problem+json"),
            "{method} {path}"
        );
        assert_eq!(
            nested.header("allow"),
            direct.header("allow"),
            "{method} {path}"
        );
        assert_eq!(
            nested.json(),
            direct.json(),
            "{method} {path}: the nested problem differs"
        );
    }
}

#[tokio::test]
async fn the_nested_api_keeps_its_promises_over_the_memory_store() {
    the_nested_api_keeps_its_promises(Arc::new(InMemoryCustomerRepository::new())).await;
}

#[tokio::test]
async fn the_nested_api_keeps_its_promises_over_dynamodb() {
    let endpoint = std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let table = format!("crm-embedding-{}", crm_domain::CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")
        .unwrap()
        .with_endpoint(&endpoint)
        .with_local_credentials()
        .with_operation_timeout(Duration::from_secs(10));
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository.create_table().await.unwrap_or_else(|e| {
        panic!(
            "DynamoDB Local must run at {endpoint} (scripts/dynamodb-local.sh start); this test never skips: {e:?}"
        )
    });
    the_nested_api_keeps_its_promises(Arc::new(repository)).await;
}
