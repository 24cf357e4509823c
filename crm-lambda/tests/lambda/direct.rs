//! Direct (non-HTTP) invocations of the `DynamoDBManager` envelope: the same envelope as
//! `POST /DynamoDBManager`, its failures Lambda function errors named by the problem code.

use http::StatusCode;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::support::spawn_app;

fn item(id: &str) -> Value {
    json!({"id": id, "firstName": "Bob", "lastName": "Builder", "address": "1 Yard Rd"})
}

fn event(payload: Value) -> LambdaEvent<Value> {
    let mut context = Context::default();
    "direct-1".clone_into(&mut context.request_id);
    LambdaEvent::new(payload, context)
}

#[tokio::test]
async fn a_direct_invocation_runs_the_same_envelope() {
    let app = spawn_app();
    let created = crm_lambda::invoke_direct(
        &app.state,
        event(json!({"operation": "create", "payload": {"Item": item("d1")}})),
    )
    .await
    .unwrap();
    assert_eq!(created["Item"]["id"], "d1");
    // The HTTP route sees what the direct invocation wrote: one service, one store.
    assert_eq!(app.get("/customers/d1").await.status, StatusCode::OK);
    assert_eq!(
        crm_lambda::invoke_direct(&app.state, event(json!({"operation": "ping"})))
            .await
            .unwrap(),
        json!("pong")
    );
}

#[tokio::test]
async fn a_failed_direct_invocation_is_a_lambda_error_with_the_problem_code() {
    let app = spawn_app();
    let duplicate = json!({"operation": "create", "payload": {"Item": item("d1")}});
    crm_lambda::invoke_direct(&app.state, event(duplicate.clone()))
        .await
        .unwrap();
    let diagnostic = crm_lambda::invoke_direct(&app.state, event(duplicate))
        .await
        .unwrap_err();
    assert_eq!(diagnostic.error_type, "id-taken");
    assert_eq!(
        diagnostic.error_message,
        "a customer with this id already exists"
    );

    let diagnostic = crm_lambda::invoke_direct(
        &app.state,
        event(json!({"operation": "create", "payload": {"Item": {"firstName": ""}}})),
    )
    .await
    .unwrap_err();
    assert_eq!(diagnostic.error_type, "validation-failed");
    assert!(
        diagnostic.error_message.contains("lastName: is required"),
        "{diagnostic:?}"
    );
}
