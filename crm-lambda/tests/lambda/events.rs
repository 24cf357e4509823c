//! Real event shapes (API Gateway REST and HTTP APIs, ALB, function URLs; with and without a stage)
//! through `crm_lambda::answer_http`, the path `crm_lambda::run_http` takes for every event: the
//! event as the runtime hands it over, `lambda_http`'s adapter turning it into a request,
//! `crm_lambda::platform_context` adding what the event knows, the router answering, and the
//! adapter turning the response into the JSON the service expects back.

use std::collections::HashMap;

use base64::Engine as _;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

/// What the Lambda service gets back, whatever the event source.
pub(crate) struct LambdaReply {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Value,
}

/// The response document `crm_lambda::answer_http` gives the Lambda service for `event`.
pub(crate) async fn answer(app: &TestApp, event: &str, request_id: &str) -> Value {
    let mut context = Context::default();
    request_id.clone_into(&mut context.request_id);
    let event = RawValue::from_string(event.to_owned()).expect("JSON");
    let reply = crm_lambda::answer_http(&app.api, LambdaEvent::new(event, context))
        .await
        .unwrap();
    serde_json::from_str(reply.get()).unwrap()
}

pub(crate) async fn invoke(app: &TestApp, event: &str, request_id: &str) -> LambdaReply {
    LambdaReply::from(&answer(app, event, request_id).await)
}

impl From<&Value> for LambdaReply {
    fn from(reply: &Value) -> Self {
        let mut headers = HashMap::new();
        for (name, value) in reply["headers"].as_object().into_iter().flatten() {
            headers.insert(
                name.to_ascii_lowercase(),
                value.as_str().unwrap().to_owned(),
            );
        }
        for (name, values) in reply["multiValueHeaders"].as_object().into_iter().flatten() {
            headers.insert(
                name.to_ascii_lowercase(),
                values[0].as_str().unwrap().to_owned(),
            );
        }
        let text = match (&reply["body"], reply["isBase64Encoded"].as_bool()) {
            (Value::String(b), Some(true)) => {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap())
                    .unwrap()
            }
            (Value::String(b), _) => b.clone(),
            _ => String::new(),
        };
        Self {
            status: u16::try_from(reply["statusCode"].as_u64().unwrap()).unwrap(),
            headers,
            body: if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        }
    }
}

#[tokio::test]
async fn a_rest_api_event_with_a_stage_creates_a_customer() {
    let app = spawn_app();
    let reply = invoke(
        &app,
        include_str!("../fixtures/apigw-rest-v1-create-with-stage.json"),
        "req-rest",
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.headers["location"], "/prod/customers/rest-v1");
    assert_eq!(reply.headers["etag"], "\"1\"");
    assert_eq!(reply.headers["x-request-id"], "req-rest");
    assert_eq!(reply.body["email"], "ada@example.com");
}

/// The REST API create event as API Gateway sends it for a call through a custom domain whose
/// mapping sends `base_path` to the stage `prod`: `path` and `requestContext.path` both hold the
/// client's path, base path included, and no stage (`lambda_http` then serves it as
/// `/prod<base_path>/customers`).
fn through_custom_domain(base_path: &str) -> String {
    let mut event: Value = serde_json::from_str(include_str!(
        "../fixtures/apigw-rest-v1-create-with-stage.json"
    ))
    .unwrap();
    let path = format!("{base_path}/customers");
    event["path"] = json!(path);
    event["requestContext"]["path"] = json!(path);
    event["requestContext"]["stage"] = json!("prod");
    event["requestContext"]["domainName"] = json!("crm.example.com");
    event["headers"]["Host"] = json!("crm.example.com");
    event["multiValueHeaders"]["Host"] = json!(["crm.example.com"]);
    event.to_string()
}

#[tokio::test]
async fn a_rest_api_event_through_a_custom_domain_base_path_gets_a_location_without_the_stage() {
    let app = spawn_app();
    let reply = invoke(&app, &through_custom_domain("/crm"), "req-domain").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.headers["location"], "/crm/customers/rest-v1");
    assert_eq!(app.get("/customers/rest-v1").await.status, 200);
}

#[tokio::test]
async fn a_rest_api_event_through_a_multi_level_base_path_is_served_too() {
    let app = spawn_app();
    let reply = invoke(&app, &through_custom_domain("/api/v1"), "req-domain-2").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.headers["location"], "/api/v1/customers/rest-v1");
}

#[tokio::test]
async fn a_rest_api_event_through_a_custom_domain_without_a_base_path_gets_a_bare_location() {
    let app = spawn_app();
    let reply = invoke(&app, &through_custom_domain(""), "req-domain-3").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.headers["location"], "/customers/rest-v1");
}

#[tokio::test]
async fn a_rest_api_event_with_a_query_string_lists_a_page() {
    let app = spawn_app();
    app.create(json!({"id": "a", "firstName": "A", "lastName": "B"}))
        .await;
    app.create(json!({"id": "b", "firstName": "A", "lastName": "B"}))
        .await;
    let reply = invoke(
        &app,
        include_str!("../fixtures/apigw-rest-v1-list-with-stage.json"),
        "req-list",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 1);
    assert!(reply.body["nextCursor"].is_string());
}

#[tokio::test]
async fn a_rest_api_event_reaches_the_envelope() {
    let app = spawn_app();
    app.create(json!({"id": "rest-v1", "firstName": "A", "lastName": "B"}))
        .await;
    let reply = invoke(
        &app,
        include_str!("../fixtures/apigw-rest-v1-envelope.json"),
        "req-env",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["Item"]["id"], "rest-v1");
}

#[tokio::test]
async fn an_http_api_event_on_the_default_stage_with_a_base64_body_creates_a_customer() {
    let app = spawn_app();
    let reply = invoke(
        &app,
        include_str!("../fixtures/apigw-http-v2-create-default-stage.json"),
        "req-v2",
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.headers["location"], "/customers/http-v2");
    assert_eq!(reply.body["phone"], "+12025550123");
}

#[tokio::test]
async fn an_http_api_event_on_a_named_stage_reads_a_customer() {
    let app = spawn_app();
    app.create(json!({"id": "http-v2", "firstName": "Grace", "lastName": "Hopper"}))
        .await;
    let reply = invoke(
        &app,
        include_str!("../fixtures/apigw-http-v2-get-named-stage.json"),
        "req-v2s",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["etag"], "\"1\"");
    assert_eq!(reply.body["id"], "http-v2");
}

#[tokio::test]
async fn an_http_api_event_looks_up_an_email_from_the_query_string() {
    let app = spawn_app();
    app.create(json!({"id": "g", "firstName": "Grace", "lastName": "Hopper", "email": "grace.hopper@example.com"}))
        .await;
    let reply = invoke(
        &app,
        include_str!("../fixtures/apigw-http-v2-email-lookup.json"),
        "req-email",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["items"][0]["id"], "g");
}

#[tokio::test]
async fn an_alb_event_deletes_at_a_version() {
    let app = spawn_app();
    app.create(json!({"id": "alb-1", "firstName": "A", "lastName": "B"}))
        .await;
    let reply = invoke(&app, include_str!("../fixtures/alb-delete.json"), "req-alb").await;
    assert_eq!(reply.status, 204);
    app.get("/customers/alb-1").await.problem(404);
}

#[tokio::test]
async fn an_alb_event_for_an_unknown_path_is_a_404_problem() {
    let app = spawn_app();
    let reply = invoke(
        &app,
        include_str!("../fixtures/alb-unknown-path.json"),
        "req-404",
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.body["status"], 404);
}

#[tokio::test]
async fn a_function_url_event_patches_a_customer() {
    let app = spawn_app();
    app.create(json!({"id": "url-1", "firstName": "Grace", "lastName": "Hopper"}))
        .await;
    let reply = invoke(
        &app,
        include_str!("../fixtures/function-url-patch.json"),
        "req-url",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["etag"], "\"2\"");
    assert_eq!(reply.body["lastName"], "Murray");
    assert_eq!(reply.body["address"]["country"], "US");
}
