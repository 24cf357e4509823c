//! The harness: the API (`crm_http::api`) over a fresh in-memory store, driven without a socket,
//! and typed helpers.
//!
//! Every response goes through [`TestApp::send`], which also checks it against `openapi.json`: its
//! status must be one the document lists for the operation, its required headers present, its
//! documented headers and its body must match their schemas (JSON Schema 2020-12, checked by the
//! `jsonschema` crate). So every API test is also a test of the document.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use crm_domain::idempotency::{KeyLease, KeyState, KeyedWrite, Written};
use crm_domain::{
    BulkReport, Change, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository,
    CustomerService, Email, Idempotency, Listing, Page, PageLimit, RepositoryError, Timestamp,
    Version,
};
use crm_http::{Api, AppState, Config, api};
use crm_memory::InMemoryCustomerRepository;

use crate::log_buffer::LogBuffer;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

#[derive(Clone)]
pub(crate) struct TestApp {
    /// The API as `crm-server` and `crm-lambda` serve it (`crm_http::router` is this inside a
    /// `Router`, which the embedding tests drive).
    pub(crate) api: Api,
    pub(crate) state: AppState,
}

/// The app over an empty in-memory store, with the default configuration.
pub(crate) fn spawn_app() -> TestApp {
    spawn_app_with(&[], Arc::new(InMemoryCustomerRepository::new()))
}

/// The app over `repository`, configured by `vars` (environment variable pairs).
pub(crate) fn spawn_app_with(
    vars: &[(&str, &str)],
    repository: Arc<dyn CustomerRepository>,
) -> TestApp {
    spawn_service(vars, CustomerService::new(repository))
}

/// The app over `service` (a clock of the test's own, say), configured by `vars`.
pub(crate) fn spawn_service(vars: &[(&str, &str)], service: CustomerService) -> TestApp {
    capture_logs();
    let config = Config::from_vars(vars.iter().copied()).expect("valid test configuration");
    let state = AppState::new(service, &config);
    TestApp {
        api: api(state.clone()),
        state,
    }
}

/// Every log line of this test binary, at every level, in the JSON format the binaries write.
///
/// The subscriber is the process-wide default, installed before the first request: a scoped one
/// (`set_default`) can miss events whose callsites other test threads registered first.
fn capture_logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let sink = buffer.clone();
        tracing::subscriber::set_global_default(crm_http::telemetry::subscriber(
            "trace",
            move || sink.clone(),
        ))
        .expect("the only global subscriber of the test binary");
        buffer
    })
}

/// The log lines written so far by every test of this binary.
pub(crate) fn logs() -> String {
    capture_logs().text()
}

pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl TestResponse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// Asserts a problem document with `status` and returns it.
    #[track_caller]
    pub(crate) fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), "application/problem+json");
        let problem = self.json();
        assert_eq!(problem["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(problem[member].is_string(), "{member} in {problem}");
        }
        problem
    }

    /// The `field`s of a 422 problem.
    #[track_caller]
    pub(crate) fn invalid_fields(&self) -> Vec<String> {
        self.problem(422)["errors"]
            .as_array()
            .expect("errors list")
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl TestApp {
    /// Sends `request` through the API and checks the response against the OpenAPI document.
    pub(crate) async fn send(&self, request: Request<Body>) -> TestResponse {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let preflight = method == Method::OPTIONS
            && request
                .headers()
                .contains_key("access-control-request-method");
        let response = self.api.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let response = TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        check_against_document(&method, &path, preflight, &response);
        response
    }

    pub(crate) async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(body.into()).unwrap()).await
    }

    pub(crate) async fn get(&self, uri: &str) -> TestResponse {
        self.request(Method::GET, uri, &[], Body::empty()).await
    }

    pub(crate) async fn post_json(&self, uri: &str, body: &Value) -> TestResponse {
        self.request(
            Method::POST,
            uri,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    pub(crate) async fn patch_json(
        &self,
        uri: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> TestResponse {
        let mut headers = vec![("content-type", "application/merge-patch+json")];
        if let Some(tag) = if_match {
            headers.push(("if-match", tag));
        }
        self.request(Method::PATCH, uri, &headers, body.to_string())
            .await
    }

    pub(crate) async fn delete(&self, uri: &str, if_match: Option<&str>) -> TestResponse {
        let headers: Vec<(&str, &str)> = if_match.map(|t| ("if-match", t)).into_iter().collect();
        self.request(Method::DELETE, uri, &headers, Body::empty())
            .await
    }

    /// Sends a JSON body with any method, for the compatibility routes.
    pub(crate) async fn send_json(&self, method: Method, uri: &str, body: &Value) -> TestResponse {
        self.request(
            method,
            uri,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    /// Creates a customer through the API; returns it.
    pub(crate) async fn create(&self, body: Value) -> Value {
        let response = self.post_json("/customers", &body).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        response.json()
    }

    pub(crate) async fn envelope(&self, body: Value) -> TestResponse {
        self.send_json(Method::POST, "/DynamoDBManager", &body)
            .await
    }
}

/// A complete, valid customer.
pub(crate) fn ada() -> Value {
    json!({
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.com",
        "phone": "+441234567890",
        "address": {"line1": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}
    })
}

/// A minimal valid customer with the given id.
pub(crate) fn named(id: &str) -> Value {
    json!({"id": id, "firstName": "Grace", "lastName": "Hopper"})
}

// ---------------------------------------------------------------------------------------------
// Repositories that misbehave on purpose.

/// A repository whose every call takes `delay` and then finds nothing.
#[derive(Debug)]
pub(crate) struct SlowRepository(pub Duration);

/// A repository whose every call fails with the error `make` builds.
pub(crate) struct FailingRepository(pub fn() -> RepositoryError);

/// A repository whose every call panics.
#[derive(Debug)]
pub(crate) struct PanickingRepository;

macro_rules! repository {
    ($type:ty, |$this:ident| $body:expr) => {
        #[async_trait]
        impl CustomerRepository for $type {
            async fn create(&self, _: &Customer) -> Result<(), RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| ())
            }
            async fn get(&self, _: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
                let $this = self;
                $body
            }
            async fn find_by_email(&self, _: &Email) -> Result<Option<Customer>, RepositoryError> {
                let $this = self;
                $body
            }
            async fn update(
                &self,
                _: &CustomerId,
                _: &CustomerPatch,
                _: Option<Version>,
                _: Timestamp,
            ) -> Result<Customer, RepositoryError> {
                let $this = self;
                $body.and_then(|c: Option<Customer>| c.ok_or(RepositoryError::NotFound))
            }
            async fn delete(
                &self,
                _: &CustomerId,
                _: Option<Version>,
            ) -> Result<(), RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| ())
            }
            async fn list<'c>(
                &self,
                _: &Listing,
                _: PageLimit,
                _: Option<&'c Cursor>,
            ) -> Result<Page<Customer>, RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| Page {
                    items: vec![],
                    next_cursor: None,
                })
            }
            async fn changes<'c>(
                &self,
                _: Timestamp,
                _: PageLimit,
                _: Option<&'c Cursor>,
            ) -> Result<Page<Change>, RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| Page {
                    items: vec![],
                    next_cursor: None,
                })
            }
            async fn put_many(&self, _: &[Customer]) -> Result<BulkReport, RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| BulkReport::default())
            }
            async fn begin_keyed(
                &self,
                _: &Idempotency,
                _: Duration,
            ) -> Result<KeyState, RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| KeyState::OtherRequest)
            }
            async fn write_keyed(
                &self,
                _: &KeyedWrite,
                _: &KeyLease,
            ) -> Result<Written, RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| Written::Deleted)
            }
            async fn release_key(&self, _: &KeyLease) -> Result<(), RepositoryError> {
                let $this = self;
                $body.map(|_: Option<Customer>| ())
            }
        }
    };
}

repository!(SlowRepository, |this| {
    tokio::time::sleep(this.0).await;
    Ok::<Option<Customer>, RepositoryError>(None)
});
repository!(FailingRepository, |this| Err::<Option<Customer>, _>((this
    .0)(
)));
repository!(PanickingRepository, |this| {
    let _ = this;
    broken()
});

fn broken() -> Result<Option<Customer>, RepositoryError> {
    panic!("the repository broke on purpose")
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document as a test oracle.

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::from_str(crm_http::openapi::DOCUMENT).unwrap())
}

/// The documented path template that `path` (stage prefix already dropped) matches: as OpenAPI
/// has it, a concrete path before a templated one (`/customers/search` before `/customers/{id}`).
pub(crate) fn template_of(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        .min_by_key(|template| template.matches('{').count())
        .cloned()
}

/// The path as routed: without a prefix of up to four segments (a stage, a custom domain's base
/// path) before a documented root.
fn without_stage(path: &str) -> String {
    if template_of(path).is_some() {
        return path.to_owned();
    }
    let segments: Vec<&str> = path.split('/').collect();
    (2..segments.len().min(6))
        .map(|skip| format!("/{}", segments[skip..].join("/")))
        .find(|rest| template_of(rest).is_some())
        .unwrap_or_else(|| path.to_owned())
}

fn check_against_document(method: &Method, path: &str, preflight: bool, response: &TestResponse) {
    let context = format!("{method} {path} → {}", response.status);
    assert!(
        response.headers.contains_key("x-request-id"),
        "{context}: no x-request-id"
    );
    let Some(template) = template_of(&without_stage(path)) else {
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{context}: undocumented path"
        );
        response.problem(404);
        return;
    };
    let operation = &document()["paths"][&template][method.as_str().to_ascii_lowercase()];
    if operation.is_null() {
        if preflight
            && response
                .headers
                .contains_key("access-control-allow-methods")
        {
            // A CORS preflight, answered before routing (with or without an allowed origin).
            assert_eq!(response.status, StatusCode::OK, "{context}: preflight");
            assert!(response.body.is_empty(), "{context}: preflight body");
            return;
        }
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{context}: undocumented method"
        );
        assert!(
            response.headers.contains_key(header::ALLOW),
            "{context}: 405 without Allow"
        );
        response.problem(405);
        return;
    }
    let status = response.status.as_str();
    assert!(
        !operation["responses"][status].is_null(),
        "{context}: status not documented for {template}"
    );
    let (documented_at, documented) = dereference(&format!(
        "/paths/{}/{}/responses/{status}",
        escape(&template),
        method.as_str().to_ascii_lowercase()
    ));
    for name in documented["headers"]
        .as_object()
        .into_iter()
        .flat_map(|headers| headers.keys())
    {
        let (spec_at, spec) = dereference(&format!("{documented_at}/headers/{}", escape(name)));
        match response.headers.get(name.as_str()) {
            Some(value) => {
                let value = Value::String(value.to_str().unwrap().to_owned());
                let errors = schema_errors(&format!("{spec_at}/schema"), &value);
                assert!(
                    errors.is_empty(),
                    "{context}: header {name} does not match its schema: {errors:?}"
                );
            }
            None => assert!(spec["required"] != true, "{context}: no {name} header"),
        }
    }
    match documented["content"].as_object() {
        None => assert!(response.body.is_empty(), "{context}: undocumented body"),
        Some(media_types) => {
            let media = response
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                media_types.contains_key(media),
                "{context}: content type {media:?} not documented"
            );
            let body: Value = serde_json::from_slice(&response.body)
                .unwrap_or_else(|e| panic!("{context}: body is not JSON: {e}"));
            let errors = schema_errors(
                &format!("{documented_at}/content/{}/schema", escape(media)),
                &body,
            );
            assert!(
                errors.is_empty(),
                "{context}: body does not match the schema: {errors:?}\n{body}"
            );
        }
    }
}

/// The object at `pointer` in the document, after the OpenAPI references (`$ref`) it leads
/// through; with its own pointer.
fn dereference(pointer: &str) -> (String, &'static Value) {
    let value = document()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("nothing at {pointer} in the document"));
    match value["$ref"].as_str() {
        Some(reference) => dereference(
            reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not in the document")),
        ),
        None => (pointer.to_owned(), value),
    }
}

/// `name` as one segment of a JSON pointer.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The document's name in the schema registry: a name only, nothing is fetched.
const DOCUMENT_URI: &str = "urn:crm:openapi";

/// Why `instance` does not match the schema at `pointer` (a JSON pointer into the document), one
/// message per failing keyword, each after the instance path it is about (`$` is the instance
/// itself, `$/items/0/id` a member of it). Empty when it matches.
///
/// The schemas are JSON Schema 2020-12, as OpenAPI 3.1 has them, checked by the `jsonschema` crate
/// with the whole document as a resource, so `$ref`s into `#/components` resolve; `format` is
/// checked too. Each schema is compiled once.
pub(crate) fn schema_errors(pointer: &str, instance: &Value) -> Vec<String> {
    static REGISTRY: OnceLock<jsonschema::Registry<'static>> = OnceLock::new();
    static COMPILED: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let validator = {
        let mut compiled = COMPILED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(compiled.entry(pointer.to_owned()).or_insert_with(|| {
            let registry = REGISTRY.get_or_init(|| {
                let version = document()["openapi"].as_str().unwrap_or_default();
                assert!(
                    version.starts_with("3.1."),
                    "OpenAPI {version}: its schemas are not JSON Schema 2020-12"
                );
                jsonschema::Registry::new()
                    .draft(jsonschema::Draft::Draft202012)
                    .add(DOCUMENT_URI, document())
                    .and_then(jsonschema::RegistryBuilder::prepare)
                    .expect("the document as a schema resource")
            });
            let fragment: String = pointer
                .bytes()
                .map(|byte| match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                        char::from(byte).to_string()
                    }
                    _ => format!("%{byte:02X}"),
                })
                .collect();
            let schema = json!({"$ref": format!("{DOCUMENT_URI}#{fragment}")});
            Arc::new(
                jsonschema::draft202012::options()
                    .with_registry(registry)
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}")),
            )
        }))
    };
    validator
        .iter_errors(instance)
        .map(|error| format!("${}: {error}", error.instance_path()))
        .collect()
}

#[test]
fn the_schema_check_reports_what_does_not_match() {
    let etag = "/components/headers/ETag/schema";
    for (value, valid) in [
        ("\"1\"", true),
        ("\"12\"", true),
        ("1", false),
        ("W/\"1\"", false),
        ("\"01\"", false),
    ] {
        let errors = schema_errors(etag, &json!(value));
        assert_eq!(errors.is_empty(), valid, "{value}: {errors:?}");
    }
    let errors = schema_errors(
        "/components/schemas/Problem/properties/type",
        &json!("about:blank"),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    let page = "/components/schemas/FindPage";
    let tombstone = json!({"id": "a", "deleted": true, "version": 2,
        "updatedAt": "2026-01-01T00:00:00.000Z"});
    for (items, valid) in [
        (json!([]), true),
        (json!([tombstone.clone()]), true),
        (
            json!([{"id": "a", "deleted": false, "version": 2,
            "updatedAt": "2026-01-01T00:00:00.000Z"}]),
            false,
        ),
        (json!([{"id": "a", "deleted": true, "version": 2}]), false),
        (json!([tombstone, {"id": "a", "firstName": "A"}]), false),
    ] {
        let body = json!({"items": items, "nextCursor": null});
        let errors = schema_errors(page, &body);
        assert_eq!(errors.is_empty(), valid, "{body}: {errors:?}");
    }
    let errors = schema_errors("/components/headers/Retry-After/schema", &json!("0"));
    assert_eq!(errors.len(), 1, "{errors:?}");
}

/// A body of the wrong shape fails the check of every response, naming the response and the
/// failing members.
#[test]
#[should_panic(
    expected = "GET /customers/c1 → 200 OK: body does not match the schema: [\"$/version: \\\"2\\\" is not of type \\\"integer\\\"\", \"$: Additional properties are not allowed ('nickname' was unexpected)\"]"
)]
fn a_response_that_does_not_match_its_schema_fails_the_test() {
    let mut customer = json!({"id": "c1", "firstName": "Ada", "lastName": "Lovelace",
        "version": 1, "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z"});
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", "r1".parse().unwrap());
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    headers.insert(header::ETAG, "\"2\"".parse().unwrap());
    let conforming = TestResponse {
        status: StatusCode::OK,
        headers: headers.clone(),
        body: Bytes::from(customer.to_string()),
    };
    check_against_document(&Method::GET, "/customers/c1", false, &conforming);
    customer["version"] = json!("2");
    customer["nickname"] = json!("Ada");
    let wrong = TestResponse {
        status: StatusCode::OK,
        headers,
        body: Bytes::from(customer.to_string()),
    };
    check_against_document(&Method::GET, "/customers/c1", false, &wrong);
}

#[test]
fn a_concrete_path_is_matched_before_a_templated_one() {
    assert_eq!(
        template_of("/customers/search").as_deref(),
        Some("/customers/search")
    );
    assert_eq!(
        template_of("/customers/searching").as_deref(),
        Some("/customers/{id}")
    );
    assert_eq!(template_of("/customers").as_deref(), Some("/customers"));
}
