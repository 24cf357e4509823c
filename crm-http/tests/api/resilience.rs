//! Deadlines, outages, failures and panics: always a problem document, never internals.

use std::sync::Arc;
use std::time::Duration;

use crm_domain::RepositoryError;
use crm_http::PlatformContext;

use crate::helpers::{FailingRepository, PanickingRepository, SlowRepository, spawn_app_with};

#[tokio::test]
async fn a_request_past_its_deadline_is_a_503_with_retry_after() {
    let app = spawn_app_with(
        &[("CRM_REQUEST_DEADLINE_MS", "50")],
        Arc::new(SlowRepository(Duration::from_secs(5))),
    );
    let started = std::time::Instant::now();
    let response = app.get("/customers/slow").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let problem = response.problem(503);
    assert_eq!(problem["type"], "urn:problem:crm:deadline-exceeded");
    assert_eq!(response.header("retry-after"), "1");
}

#[tokio::test]
async fn a_platform_deadline_sooner_than_the_configured_one_bounds_the_request() {
    // Configured: five seconds. The platform (a Lambda invocation) stops waiting in 400 ms, so the
    // request gets 200 ms, and its 503 goes out before the platform cuts it off.
    let app = spawn_app_with(
        &[("CRM_REQUEST_DEADLINE_MS", "5000")],
        Arc::new(SlowRepository(Duration::from_secs(5))),
    );
    let mut request = http::Request::get("/customers/slow")
        .body(axum::body::Body::empty())
        .unwrap();
    request.extensions_mut().insert(
        PlatformContext::new()
            .with_deadline(std::time::SystemTime::now() + Duration::from_millis(400)),
    );
    let started = std::time::Instant::now();
    let response = app.send(request).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let problem = response.problem(503);
    assert_eq!(problem["type"], "urn:problem:crm:deadline-exceeded");
}

#[tokio::test]
async fn an_unavailable_store_is_a_503_with_its_retry_hint() {
    fn throttled() -> RepositoryError {
        RepositoryError::Unavailable {
            retry_after: Some(Duration::from_secs(3)),
            source: "ProvisionedThroughputExceededException".into(),
        }
    }
    let app = spawn_app_with(&[], Arc::new(FailingRepository(throttled)));
    let response = app.get("/customers?limit=5").await;
    let problem = response.problem(503);
    assert_eq!(problem["type"], "urn:problem:crm:store-unavailable");
    assert_eq!(response.header("retry-after"), "3");
    assert!(!String::from_utf8_lossy(&response.body).contains("Throughput"));
}

#[tokio::test]
async fn an_unexpected_failure_is_a_500_that_says_nothing_of_internals() {
    fn broken() -> RepositoryError {
        RepositoryError::unexpected("SerializationException at table crm-prod: attribute version")
    }
    let app = spawn_app_with(&[], Arc::new(FailingRepository(broken)));
    let response = app.get("/customers/x").await;
    let problem = response.problem(500);
    let body = String::from_utf8_lossy(&response.body);
    for leak in ["Serialization", "crm-prod", "version", "attribute"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
    assert_eq!(problem["type"], "urn:problem:crm:internal-error");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem() {
    let app = spawn_app_with(&[], Arc::new(PanickingRepository));
    let response = app.get("/customers/x").await;
    let problem = response.problem(500);
    assert!(!String::from_utf8_lossy(&response.body).contains("on purpose"));
    assert_eq!(problem["type"], "urn:problem:crm:internal-error");
    // The router still serves after the panic.
    assert_eq!(app.get("/health").await.status, 200);
}
