//! The harness: the API over a fresh in-memory store, as `crm-lambda` serves it (`crm_http::api`),
//! with the few helpers the tests need to look at the store through the same API.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use crm_domain::{CustomerRepository, CustomerService};
use crm_http::{AppState, Config, api};
use crm_memory::InMemoryCustomerRepository;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

pub(crate) struct TestApp {
    /// What `answer_http` serves: `crm_http::api`, or a service of a test's own.
    pub(crate) api:
        BoxCloneSyncService<axum::extract::Request, axum::response::Response, Infallible>,
    pub(crate) state: AppState,
}

/// The app over an empty in-memory store, with the default configuration.
pub(crate) fn spawn_app() -> TestApp {
    spawn_app_over(Arc::new(InMemoryCustomerRepository::new()))
}

/// The app over `repository`, with the default configuration.
pub(crate) fn spawn_app_over(repository: Arc<dyn CustomerRepository>) -> TestApp {
    let service = CustomerService::new(repository);
    let state = AppState::new(service, &Config::default());
    TestApp {
        api: BoxCloneSyncService::new(api(state.clone())),
        state,
    }
}

/// A response as a client of the API sees it.
pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Value,
}

impl TestResponse {
    /// Asserts a problem document with `status`.
    #[track_caller]
    pub(crate) fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(self.body[member].is_string(), "{member} in {}", self.body);
        }
        &self.body
    }
}

impl TestApp {
    async fn send(&self, method: Method, uri: &str, body: Option<&Value>) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .api
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            content_type,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub(crate) async fn get(&self, uri: &str) -> TestResponse {
        self.send(Method::GET, uri, None).await
    }

    /// Creates a customer through `POST /customers`, asserting a 201.
    pub(crate) async fn create(&self, body: Value) -> Value {
        let response = self.send(Method::POST, "/customers", Some(&body)).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }
}
