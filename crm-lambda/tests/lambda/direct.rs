//! Direct (non-HTTP) invocations of the `DynamoDBManager` envelope: the same envelope as
//! `POST /DynamoDBManager`, its failures Lambda function errors named by the problem code.

use std::sync::Arc;

use crm_memory::InMemoryCustomerRepository;
use http::StatusCode;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::panicking::{PANIC_ID, PANIC_SECRET, PanicOn};
use crate::support::{spawn_app, spawn_app_over};

fn item(id: &str) -> Value {
    json!({"id": id, "firstName": "Bob", "lastName": "Builder", "address": "1 Yard Rd"})
}

fn event(payload: &Value) -> LambdaEvent<Box<RawValue>> {
    let mut context = Context::default();
    "direct-1".clone_into(&mut context.request_id);
    LambdaEvent::new(serde_json::value::to_raw_value(payload).unwrap(), context)
}

#[tokio::test]
async fn a_direct_invocation_runs_the_same_envelope() {
    let app = spawn_app();
    let created = crm_lambda::invoke_direct(
        &app.state,
        event(&json!({"operation": "create", "payload": {"Item": item("d1")}})),
    )
    .await
    .unwrap();
    assert_eq!(created["Item"]["id"], "d1");
    // The HTTP route sees what the direct invocation wrote: one service, one store.
    assert_eq!(app.get("/customers/d1").await.status, StatusCode::OK);
    assert_eq!(
        crm_lambda::invoke_direct(&app.state, event(&json!({"operation": "ping"})))
            .await
            .unwrap(),
        json!("pong")
    );
}

#[tokio::test]
async fn a_failed_direct_invocation_is_a_lambda_error_with_the_problem_code() {
    let app = spawn_app();
    let duplicate = json!({"operation": "create", "payload": {"Item": item("d1")}});
    crm_lambda::invoke_direct(&app.state, event(&duplicate))
        .await
        .unwrap();
    let diagnostic = crm_lambda::invoke_direct(&app.state, event(&duplicate))
        .await
        .unwrap_err();
    assert_eq!(diagnostic.error_type, "id-taken");
    assert_eq!(
        diagnostic.error_message,
        "a customer with this id already exists"
    );

    let diagnostic = crm_lambda::invoke_direct(
        &app.state,
        event(&json!({"operation": "create", "payload": {"Item": {"firstName": ""}}})),
    )
    .await
    .unwrap_err();
    assert_eq!(diagnostic.error_type, "validation-failed");
    assert!(
        diagnostic.error_message.contains("lastName: is required"),
        "{diagnostic:?}"
    );
}

#[tokio::test]
async fn a_panic_in_a_direct_invocation_is_an_internal_error_without_its_message() {
    let app = spawn_app_over(Arc::new(PanicOn(Arc::new(
        InMemoryCustomerRepository::new(),
    ))));
    let read = |id: &str| event(&json!({"operation": "read", "payload": {"Key": {"id": id}}}));
    let diagnostic = crm_lambda::invoke_direct(&app.state, read(PANIC_ID))
        .await
        .unwrap_err();
    assert_eq!(diagnostic.error_type, "internal-error");
    assert_eq!(
        diagnostic.error_message,
        "the server failed to answer this request; it has been logged"
    );
    assert!(!format!("{diagnostic:?}").contains(PANIC_SECRET));
    // The same state serves the next invocation.
    crm_lambda::invoke_direct(
        &app.state,
        event(&json!({"operation": "create", "payload": {"Item": item("d2")}})),
    )
    .await
    .unwrap();
    let found = crm_lambda::invoke_direct(&app.state, read("d2"))
        .await
        .unwrap();
    assert_eq!(found["Item"]["id"], "d2");
}

#[test]
fn an_invocation_s_deadline_reaches_the_router() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use lambda_http::RequestExt as _;

    let in_one_second = SystemTime::now() + Duration::from_secs(1);
    let mut context = Context::default();
    "req-deadline".clone_into(&mut context.request_id);
    context.deadline = u64::try_from(
        in_one_second
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let request = lambda_http::Request::default().with_lambda_context(context);
    let request = crm_lambda::platform_context(request);
    let platform = request
        .extensions()
        .get::<crm_http::PlatformContext>()
        .unwrap();
    assert_eq!(platform.request_id(), Some("req-deadline"));
    // Five seconds configured, one left in the invocation: the router gives the request less.
    let limit = platform.time_limit(Duration::from_secs(5));
    assert!(
        limit <= Duration::from_secs(1).saturating_sub(crm_http::DEADLINE_MARGIN),
        "{limit:?}"
    );
}
