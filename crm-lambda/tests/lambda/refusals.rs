//! Events that cannot become HTTP requests: each is answered 400 with a `bad-request` problem in
//! its source's response shape, before `lambda_http`'s conversion (which would panic on it) sees
//! it. The problem names the part at fault, never its value; the next event is served as usual.
//!
//! The two console events are `aws_lambda_events`' fixtures (MIT): the Lambda console's API Gateway
//! test event (`example-apigw-console-request.json`), whose `Host` is
//! `1234567890.execute-api.{dns_suffix}`, and the API Gateway console's test invocation
//! (`example-apigw-console-test-request.json`), with no headers at all.

use axum::Router;
use axum::routing::post;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tower::util::BoxCloneSyncService;

use crate::events::{LambdaReply, answer, invoke};
use crate::support::{TestApp, spawn_app};

const LAMBDA_CONSOLE_EVENT: &str = include_str!("../fixtures/apigw-lambda-console-test-event.json");
const API_GATEWAY_CONSOLE_TEST: &str = include_str!("../fixtures/apigw-console-test-invoke.json");
const REST: &str = include_str!("../fixtures/apigw-rest-v1-create-with-stage.json");
const HTTP: &str = include_str!("../fixtures/apigw-http-v2-get-named-stage.json");
const ALB: &str = include_str!("../fixtures/alb-delete.json");

/// What the callers below put into the events: it must come back nowhere.
const CALLER_TEXT: &str = "zephyrine";

/// `fixture` with `change` applied.
fn changed(fixture: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut event: Value = serde_json::from_str(fixture).unwrap();
    change(&mut event);
    event.to_string()
}

/// The members of a response document, and the content type of those that carry headers: what
/// tells the Lambda service which source the document answers.
fn shape(reply: &Value) -> Vec<String> {
    reply
        .as_object()
        .unwrap()
        .iter()
        .map(|(member, value)| match value.get("content-type") {
            Some(content_type) => format!("{member}: content-type {content_type}"),
            None => member.clone(),
        })
        .collect()
}

/// Asserts that `event` is refused with a 400 problem whose detail is `detail`, in the shape of
/// `routed` (the router's answer to an event from the same source), quoting nothing of the caller.
async fn assert_refused(app: &TestApp, event: &str, detail: &str, routed: &Value) {
    let reply = answer(app, event, "req-refused").await;
    assert_eq!(shape(&reply), shape(routed), "{reply}");
    let parsed = LambdaReply::from(&reply);
    assert_eq!(parsed.status, 400, "{reply}");
    assert_eq!(parsed.headers["content-type"], "application/problem+json");
    assert_eq!(parsed.headers["x-request-id"], "req-refused");
    assert_eq!(
        parsed.body,
        json!({
            "type": "urn:problem:crm:bad-request",
            "title": "Bad request",
            "status": 400,
            "detail": detail,
        })
    );
    assert!(
        !reply.to_string().to_lowercase().contains(CALLER_TEXT),
        "{reply}"
    );
}

const HOST: &str = "the Host header is not a valid URI host";
const SCHEME: &str = "the X-Forwarded-Proto header is not a valid URI scheme";
const PATH: &str = "the path is not valid in a URI";
const QUERY: &str = "the query string is not valid in a URI";
const HEADERS: &str = "a header name or value is not valid HTTP";
const BODY: &str = "the body is marked base64-encoded but is not valid base64";

#[tokio::test]
async fn the_lambda_console_s_api_gateway_test_event_is_a_400_problem_not_a_panic() {
    let app = spawn_app();
    let routed = answer(&app, &changed(REST, |e| e["path"] = json!("/nowhere")), "r").await;
    assert_refused(&app, LAMBDA_CONSOLE_EVENT, HOST, &routed).await;

    // API Gateway's own console test, without headers, is served: its /myPath is no route here.
    let reply = invoke(&app, API_GATEWAY_CONSOLE_TEST, "req-test-invoke").await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["type"], "urn:problem:crm:no-such-route");
    assert_eq!(invoke(&app, REST, "req-after").await.status, 201);
}

#[tokio::test]
async fn rest_api_events_that_cannot_become_requests_are_400_problems() {
    let app = spawn_app();
    let routed = answer(&app, &changed(REST, |e| e["path"] = json!("/nowhere")), "r").await;
    let cases = [
        (
            changed(REST, |e| {
                e["headers"]["Host"] = json!("zephyrine quillfeather");
                e["multiValueHeaders"]["Host"] = json!(["zephyrine quillfeather"]);
            }),
            HOST,
        ),
        (
            changed(REST, |e| {
                e["headers"]["X-Forwarded-Proto"] = json!("zephyrine quillfeather");
            }),
            SCHEME,
        ),
        // The stage an HTTP API gives a payload 1.0 event: lambda_http puts none in front.
        (
            changed(REST, |e| {
                e["requestContext"]["stage"] = json!("$default");
                e["path"] = json!(":zephyrine");
            }),
            PATH,
        ),
        (
            changed(REST, |e| {
                e["multiValueHeaders"]["X-Note"] = json!(["zephyrine\u{7f}"]);
            }),
            HEADERS,
        ),
        (
            changed(REST, |e| {
                e["isBase64Encoded"] = json!(true);
                e["body"] = json!("zephyrine quillfeather!");
            }),
            BODY,
        ),
    ];
    for (event, detail) in &cases {
        assert_refused(&app, event, detail, &routed).await;
    }
    assert_eq!(invoke(&app, REST, "req-after").await.status, 201);
}

#[tokio::test]
async fn http_api_events_that_cannot_become_requests_are_400_problems() {
    let app = spawn_app();
    app.create(json!({"id": "http-v2", "firstName": "Grace", "lastName": "Hopper"}))
        .await;
    let routed = answer(
        &app,
        &changed(HTTP, |e| e["rawPath"] = json!("/prod/nowhere")),
        "r",
    )
    .await;
    let cases = [
        (
            changed(HTTP, |e| {
                e["headers"]["host"] = json!("zephyrine quillfeather");
            }),
            HOST,
        ),
        (
            changed(HTTP, |e| {
                e["requestContext"]["stage"] = json!("$default");
                e["rawPath"] = json!(":zephyrine");
            }),
            PATH,
        ),
        (
            changed(HTTP, |e| {
                e["rawQueryString"] = json!("name=zephyrine quillfeather");
            }),
            QUERY,
        ),
        (
            changed(HTTP, |e| {
                e["headers"]["x-note"] = json!("zephyrine\nquillfeather");
            }),
            HEADERS,
        ),
        (
            changed(HTTP, |e| {
                e["isBase64Encoded"] = json!(true);
                e["body"] = json!("zephyrine quillfeather!");
            }),
            BODY,
        ),
    ];
    for (event, detail) in &cases {
        assert_refused(&app, event, detail, &routed).await;
    }
    let reply = invoke(&app, HTTP, "req-after").await;
    assert_eq!((reply.status, &reply.body["id"]), (200, &json!("http-v2")));
}

#[tokio::test]
async fn alb_events_that_cannot_become_requests_are_400_problems() {
    let app = spawn_app();
    app.create(json!({"id": "alb-1", "firstName": "A", "lastName": "B"}))
        .await;
    let routed = answer(&app, include_str!("../fixtures/alb-unknown-path.json"), "r").await;
    let cases = [
        (
            changed(ALB, |e| {
                e["headers"]["host"] = json!("zephyrine quillfeather");
            }),
            HOST,
        ),
        (changed(ALB, |e| e["path"] = json!(":zephyrine")), PATH),
        (
            changed(ALB, |e| e["headers"]["x-note"] = json!("zephyrine\u{0}")),
            HEADERS,
        ),
        (
            changed(ALB, |e| {
                e["isBase64Encoded"] = json!(true);
                e["body"] = json!("zephyrine quillfeather!");
            }),
            BODY,
        ),
    ];
    for (event, detail) in &cases {
        assert_refused(&app, event, detail, &routed).await;
    }
    assert_eq!(invoke(&app, ALB, "req-after").await.status, 204);
}

#[tokio::test]
async fn an_event_from_no_http_source_is_a_function_error() {
    let app = spawn_app();
    let event = RawValue::from_string(r#"{"operation": "ping"}"#.to_owned()).unwrap();
    let diagnostic = crm_lambda::answer_http(&app.api, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap_err();
    assert_eq!(diagnostic.error_type, "unsupported-event");
}

#[tokio::test]
async fn a_panic_outside_the_router_s_catcher_is_a_500_problem_in_the_event_s_shape() {
    async fn panics() -> &'static str {
        panic!("quoting {CALLER_TEXT}")
    }
    // A router without crm-http's layers, so without its panic catcher.
    let bare = TestApp {
        api: BoxCloneSyncService::new(Router::new().route("/prod/customers", post(panics))),
        state: spawn_app().state,
    };
    let app = spawn_app();
    let routed = answer(&app, &changed(REST, |e| e["path"] = json!("/nowhere")), "r").await;
    let reply = answer(&bare, REST, "req-panic").await;
    assert_eq!(shape(&reply), shape(&routed), "{reply}");
    let parsed = LambdaReply::from(&reply);
    assert_eq!(parsed.status, 500);
    assert_eq!(parsed.body["type"], "urn:problem:crm:internal-error");
    assert_eq!(parsed.headers["x-request-id"], "req-panic");
    assert!(!reply.to_string().contains(CALLER_TEXT), "{reply}");
}
