//! The built binaries run as AWS Lambda runs them: a fake Lambda Runtime API on loopback hands
//! them events through the documented `/2018-06-01/runtime/invocation/next` loop, and the tests read
//! what they post back. Inside Lambda the binaries need DynamoDB, so each test makes a table on
//! DynamoDB Local (`scripts/dynamodb-local.sh start`; the tests fail, never skip, without it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/fake_runtime.rs"]
mod fake_runtime;
// The store runs in the probe binary; the tests need its id and message.
#[allow(dead_code)]
#[path = "support/panicking.rs"]
mod panicking;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use fake_runtime::{FakeRuntime, Outcome};
use panicking::{PANIC_ID, PANIC_SECRET};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

fn endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

/// A new table on DynamoDB Local, or a failure that says how to start it.
async fn fresh_table() -> String {
    let table = format!("crm-bootstrap-{}", crm_domain::CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")
        .unwrap()
        .with_endpoint(endpoint())
        .with_local_credentials();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository.create_table().await.unwrap_or_else(|e| {
        panic!(
            "DynamoDB Local must run at {} (scripts/dynamodb-local.sh start): {e:?}",
            endpoint()
        )
    });
    table
}

/// Starts `binary` as Lambda would: a clean environment holding what the service sets.
fn launch(binary: &str, runtime: &FakeRuntime, table: &str) -> Child {
    launch_with(binary, runtime, table, &[])
}

/// [`launch`], with `extra` variables set too.
fn launch_with(binary: &str, runtime: &FakeRuntime, table: &str, extra: &[(&str, &str)]) -> Child {
    Command::new(binary)
        .env_clear()
        .envs(extra.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "crm-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/crm-test")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]0")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint())
        .env("CRM_TABLE_NAME", table)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

/// Stops the function and returns everything it printed.
async fn stop(mut child: Child) -> String {
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut printed = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut printed).await;
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut printed).await;
    }
    printed
}

/// An API Gateway HTTP API (payload 2.0) event.
fn http_event(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert("host".into(), "api.example.test".into());
    for (name, value) in headers {
        header_map.insert((*name).into(), (*value).into());
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "api",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "request-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000",
            "timeEpoch": 1_795_320_000_000_u64
        },
        "body": body.map(|b| base64::engine::general_purpose::STANDARD.encode(b.to_string())),
        "isBase64Encoded": true
    })
}

/// The status, headers and JSON body of an API Gateway v2 response document.
fn read_response(outcome: Outcome) -> (u64, Value, Value) {
    let response = outcome.response();
    let status = response["statusCode"].as_u64().expect("a statusCode");
    let raw = response["body"].as_str().unwrap_or_default();
    let text = if response["isBase64Encoded"].as_bool() == Some(true) {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    } else {
        raw.to_owned()
    };
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, response["headers"].clone(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_bootstrap_serves_api_gateway_events_through_the_runtime_api() {
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch(env!("CARGO_BIN_EXE_crm-lambda-http"), &runtime, &table);

    let create = json!({"id": "boot-1", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"});
    let (status, headers, body) = read_response(
        runtime
            .invoke(http_event(
                "POST",
                "/customers",
                &[("content-type", "application/json")],
                Some(&create),
            ))
            .await,
    );
    assert!(runtime.first_poll().is_some());
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(body["firstName"], "Ada");

    let (status, _, body) = read_response(
        runtime
            .invoke(http_event("GET", "/customers/boot-1", &[], None))
            .await,
    );
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)));

    let patch = json!({"lastName": "Byron"});
    let headers = [
        ("content-type", "application/merge-patch+json"),
        ("if-match", "\"1\""),
    ];
    let (status, headers_out, body) = read_response(
        runtime
            .invoke(http_event(
                "PATCH",
                "/customers/boot-1",
                &headers,
                Some(&patch),
            ))
            .await,
    );
    assert_eq!((status, body["lastName"].as_str()), (200, Some("Byron")));
    assert_eq!(headers_out["etag"], "\"2\"");

    let (status, _, _) = read_response(
        runtime
            .invoke(http_event(
                "PATCH",
                "/customers/boot-1",
                &headers,
                Some(&patch),
            ))
            .await,
    );
    assert_eq!(status, 412, "a stale If-Match");

    let (status, _, body) = read_response(
        runtime
            .invoke(http_event(
                "POST",
                "/customers",
                &[("content-type", "application/json")],
                Some(&json!({"firstName": ""})),
            ))
            .await,
    );
    assert_eq!(status, 422);
    assert!(
        body["errors"].as_array().is_some_and(|e| e.len() == 2),
        "{body}"
    );

    let (status, _, _) = read_response(
        runtime
            .invoke(http_event("DELETE", "/customers/boot-1", &[], None))
            .await,
    );
    assert_eq!(status, 204);
    let (status, _, _) = read_response(
        runtime
            .invoke(http_event("GET", "/customers/boot-1", &[], None))
            .await,
    );
    assert_eq!(status, 404);

    let printed = stop(function).await;
    assert!(runtime.init_error().is_none(), "{printed}");
    for secret in ["Ada", "Lovelace", "Byron", "ada@example.com"] {
        assert!(
            !printed.contains(secret),
            "the logs hold customer data: {printed}"
        );
    }
    // One request line per invocation, each with the request id Lambda gave that invocation.
    assert_one_line_per_invocation(
        &printed,
        "request",
        &runtime,
        &[201, 200, 200, 412, 422, 204, 404],
    );
}

/// Asserts that `printed` holds one `message` log line per invocation `runtime` handed out, in
/// order, each with the request id of its own invocation and its status; returns the lines.
fn assert_one_line_per_invocation(
    printed: &str,
    message: &str,
    runtime: &FakeRuntime,
    statuses: &[u64],
) -> Vec<Value> {
    let lines = log_lines(printed, message);
    let seen: Vec<(&str, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["request_id"].as_str().unwrap_or_default(),
                l["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let ids = runtime.issued_ids();
    assert_eq!(ids.len(), statuses.len(), "invocations");
    let expected: Vec<(&str, u64)> = ids
        .iter()
        .map(String::as_str)
        .zip(statuses.iter().copied())
        .collect();
    assert_eq!(seen, expected, "{printed}");
    lines
}

/// The JSON log lines of `printed` whose message is `message`.
fn log_lines(printed: &str, message: &str) -> Vec<Value> {
    printed
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_envelope_bootstrap_answers_direct_invocations() {
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch(env!("CARGO_BIN_EXE_crm-lambda-envelope"), &runtime, &table);

    let pong = runtime
        .invoke(json!({"operation": "ping"}))
        .await
        .response();
    assert_eq!(pong, json!("pong"));

    let item = json!({"id": "env-1", "firstName": "Grace", "lastName": "Hopper"});
    runtime
        .invoke(json!({"operation": "create", "tableName": table, "payload": {"Item": item}}))
        .await
        .response();
    let read = runtime
        .invoke(json!({"operation": "read", "payload": {"Key": {"id": "env-1"}}}))
        .await
        .response();
    assert_eq!(read["Item"]["lastName"], "Hopper");

    match runtime
        .invoke(json!({"operation": "create", "payload": {"Item": item}}))
        .await
    {
        Outcome::Error(error) => assert_eq!(error["errorType"], "id-taken", "{error}"),
        Outcome::Response(r) => panic!("a duplicate create succeeded: {r}"),
    }
    match runtime.invoke(json!({"operation": "read", "tableName": "someone-elses-table", "payload": {"Key": {"id": "env-1"}}})).await {
        Outcome::Error(error) => assert_eq!(error["errorType"], "forbidden-table", "{error}"),
        Outcome::Response(r) => panic!("another table was read: {r}"),
    }
    match runtime.invoke(json!({"operation": "drop-table"})).await {
        Outcome::Error(error) => {
            assert_eq!(error["errorType"], "bad-request", "{error}");
            assert!(
                error["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("create, read, update, delete, list, echo, ping")),
                "{error}"
            );
        }
        Outcome::Response(r) => panic!("an unknown operation succeeded: {r}"),
    }
    // A caller-chosen name goes back to the caller, never into a log line.
    let named = json!({"firstName": "Grace", "lastName": "Hopper", "Zephyrine Quillfeather": 1});
    match runtime
        .invoke(json!({"operation": "create", "payload": {"Item": named}}))
        .await
    {
        Outcome::Error(error) => {
            assert_eq!(error["errorType"], "validation-failed", "{error}");
            assert!(
                error["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("Zephyrine Quillfeather")),
                "{error}"
            );
        }
        Outcome::Response(r) => panic!("an unknown field was accepted: {r}"),
    }
    // The same 16 KiB as the HTTP route.
    let huge = json!({"operation": "echo", "payload": "x".repeat(17 * 1024)});
    match runtime.invoke(huge).await {
        Outcome::Error(error) => assert_eq!(error["errorType"], "body-too-large", "{error}"),
        Outcome::Response(_) => panic!("an envelope over 16 KiB was answered"),
    }

    let printed = stop(function).await;
    assert!(
        !printed.contains("Hopper") && !printed.contains("Zephyrine"),
        "the logs hold customer data or caller text: {printed}"
    );
    // Client errors are the caller's to fix, not ours: no line at ERROR for them.
    let errors: Vec<&str> = printed
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "client errors logged at ERROR: {errors:?}"
    );
    // One invocation line per invocation, with its request id, operation and status: the metric
    // filter of the deploy template alarms on `status >= 500` only.
    let lines = assert_one_line_per_invocation(
        &printed,
        "invocation",
        &runtime,
        &[200, 200, 200, 409, 403, 400, 422, 413],
    );
    let operations: Vec<&str> = lines
        .iter()
        .map(|l| l["operation"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        operations,
        [
            // An event over 16 KiB is refused unread, as an HTTP body is: its operation unknown.
            "ping", "create", "read", "create", "read", "unknown", "create", "unknown"
        ]
    );
}

/// The test-only probe (`tests/support/panic_probe.rs`): `crm-lambda-http` over a store that
/// panics on `GET /customers/panic`. `cargo test` builds it in its own profile; to run the test
/// below on a build in the `lambda` profile, as deployed, from the repository root:
///
/// ```text
/// cargo build --profile lambda --target x86_64-unknown-linux-gnu -p crm-lambda \
///   --features panic-probe --bin crm-lambda-panic-probe
/// CRM_LAMBDA_PANIC_PROBE=$PWD/target/x86_64-unknown-linux-gnu/lambda/crm-lambda-panic-probe \
///   cargo test -p crm-lambda --test bootstrap panic
/// ```
fn panic_probe() -> String {
    std::env::var("CRM_LAMBDA_PANIC_PROBE")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_crm-lambda-panic-probe").to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_inside_a_request_is_a_500_problem_and_the_same_process_serves_on() {
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let mut function = launch(&panic_probe(), &runtime, &table);
    let pid = function.id();

    let create = json!({"id": "probe-1", "firstName": "Ada", "lastName": "Lovelace"});
    let created = http_event(
        "POST",
        "/customers",
        &[("content-type", "application/json")],
        Some(&create),
    );
    assert_eq!(read_response(runtime.invoke(created).await).0, 201);
    let panicking = format!("/customers/{PANIC_ID}");
    for round in 1..=2 {
        // `response()` fails on an error document: the runtime got a response, not a crash report.
        let outcome = runtime
            .invoke(http_event("GET", &panicking, &[], None))
            .await;
        let (status, headers, body) = read_response(outcome);
        assert_eq!(status, 500, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["type"], "urn:problem:crm:internal-error", "{body}");
        assert!(
            function.try_wait().unwrap().is_none(),
            "the process ended after panic {round}"
        );
        // The same process, the same store, serves the next request.
        let outcome = runtime
            .invoke(http_event("GET", "/customers/probe-1", &[], None))
            .await;
        let (status, _, body) = read_response(outcome);
        assert_eq!((status, body["lastName"].as_str()), (200, Some("Lovelace")));
    }
    // An event lambda_http could not convert (a Host no URI holds) is refused, not a panic.
    let refused = http_event("GET", "/customers/probe-1", &[("host", PANIC_SECRET)], None);
    let (status, _, body) = read_response(runtime.invoke(refused).await);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:problem:crm:bad-request", "{body}");
    assert_eq!(function.id(), pid, "the process was replaced");
    assert!(function.try_wait().unwrap().is_none(), "the process ended");

    let printed = stop(function).await;
    assert!(runtime.init_error().is_none(), "{printed}");
    assert!(
        !printed.contains(PANIC_SECRET),
        "a panic message or the caller's Host was logged: {printed}"
    );
    let ids = runtime.issued_ids();
    let requests: Vec<(Value, Value)> = log_lines(&printed, "request")
        .iter()
        .map(|l| (l["request_id"].clone(), l["status"].clone()))
        .collect();
    let expected: Vec<(Value, Value)> = ids[..5]
        .iter()
        .zip([201, 500, 200, 500, 200])
        .map(|(id, status)| (json!(id), json!(status)))
        .collect();
    assert_eq!(requests, expected, "{printed}");
    let refusals = log_lines(&printed, "request refused");
    assert_eq!(refusals.len(), 1, "{printed}");
    assert_eq!(
        (&refusals[0]["request_id"], &refusals[0]["part"]),
        (&json!(ids[5]), &json!("host"))
    );
    // Each panic is one ERROR line, the panic hook's: where it happened, in which request.
    let errors: Vec<Value> = printed
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{printed}");
    for (error, id) in errors.iter().zip([&ids[1], &ids[3]]) {
        assert_eq!(error["message"], "panicked", "{error}");
        assert!(
            error["location"]
                .as_str()
                .is_some_and(|l| l.contains("panicking.rs")),
            "{error}"
        );
        assert_eq!(error["span"]["request_id"], id.as_str(), "{error}");
    }
}

/// The `lambda` profile (the deployed bootstraps') unwinds: what the test above shows of the probe
/// holds for them only so.
#[test]
fn the_lambda_profile_unwinds_on_panic() {
    let manifest = include_str!("../../Cargo.toml");
    let section: Vec<&str> = manifest
        .lines()
        .skip_while(|line| line.trim() != "[profile.lambda]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .collect();
    assert!(
        section
            .iter()
            .any(|line| line.trim() == r#"panic = "unwind""#),
        "[profile.lambda] must say panic = \"unwind\": {section:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_lambda_a_missing_table_name_fails_the_init_with_one_clear_line() {
    let runtime = FakeRuntime::start().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-lambda-http"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "crm-test")
        .env("AWS_REGION", "us-east-1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("it exits")
        .unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("CRM_TABLE_NAME"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// `n` requests for customers that do not exist, sent at once; their statuses in order.
async fn gets_at_once(runtime: &Arc<FakeRuntime>, n: usize) -> Vec<u64> {
    let mut sent = tokio::task::JoinSet::new();
    for i in 0..n {
        let runtime = Arc::clone(runtime);
        sent.spawn(async move {
            let event = http_event("GET", &format!("/customers/absent-{i}"), &[], None);
            (i, read_response(runtime.invoke(event).await).0)
        });
    }
    let mut statuses = sent.join_all().await;
    statuses.sort_unstable();
    statuses.into_iter().map(|(_, status)| status).collect()
}

/// The names of a process's threads (Linux truncates them to 15 bytes).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// On Lambda Managed Instances, where Lambda sets `AWS_LAMBDA_MAX_CONCURRENCY` above 1, one sandbox
/// serves that many invocations at once: eight polls wait together, and all eight invocations are
/// in flight at one time, since the runtime takes no answer before the eighth is handed out.
#[tokio::test(flavor = "multi_thread")]
async fn with_a_max_concurrency_of_8_one_sandbox_serves_8_invocations_at_once() {
    let table = fresh_table().await;
    let runtime = Arc::new(FakeRuntime::start().await);
    let function = launch_with(
        env!("CARGO_BIN_EXE_crm-lambda-http"),
        &runtime,
        &table,
        &[("AWS_LAMBDA_MAX_CONCURRENCY", "8")],
    );
    assert!(
        runtime.wait_for_polls(8, Duration::from_secs(20)).await,
        "{} polls waiting, not 8",
        runtime.polling()
    );
    runtime.hold_answers_until(8);
    assert_eq!(gets_at_once(&runtime, 8).await, vec![404; 8]);
    assert_eq!(runtime.most_in_flight(), 8);
    // On tokio's workers, one per CPU (`crm_lambda::runtime`).
    let threads = thread_names(function.id().unwrap());
    assert!(
        threads.iter().any(|name| name.starts_with("tokio-")),
        "{threads:?}"
    );

    let printed = stop(function).await;
    assert!(runtime.init_error().is_none(), "{printed}");
    // One log line per invocation, each with its own request id, and the trace id of its
    // invocation (the fake Runtime API's X-Ray header, `Root=1-00000000-…;Sampled=0`).
    let lines = log_lines(&printed, "request");
    for line in &lines {
        assert_eq!(
            line["trace_id"], "1-00000000-000000000000000000000000",
            "{line}"
        );
    }
    let mut logged: Vec<String> = lines
        .iter()
        .map(|line| line["request_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    logged.sort();
    let mut issued = runtime.issued_ids();
    issued.sort();
    assert_eq!(logged, issued, "{printed}");
}

/// Without `AWS_LAMBDA_MAX_CONCURRENCY` (Lambda's classic sandboxes) one poll waits, and an
/// invocation is answered before the next is taken: the same hold shows one in flight at a time.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_max_concurrency_a_sandbox_takes_invocations_one_by_one() {
    let table = fresh_table().await;
    let runtime = Arc::new(FakeRuntime::start().await);
    let function = launch(env!("CARGO_BIN_EXE_crm-lambda-http"), &runtime, &table);
    assert!(runtime.wait_for_polls(1, Duration::from_secs(20)).await);
    // Time for more polls, were there a second poller.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runtime.polling(), 1);
    // The first answer waits out the hold (a few seconds), since the second invocation is only
    // taken after it.
    runtime.hold_answers_until(2);
    assert_eq!(gets_at_once(&runtime, 2).await, vec![404; 2]);
    assert_eq!(runtime.most_in_flight(), 1);
    // And on one thread (`crm_lambda::runtime`): no tokio worker beside the main thread, which
    // serves the invocations, their DynamoDB calls and the Runtime API's connection.
    let threads = thread_names(function.id().unwrap());
    assert!(
        !threads.iter().any(|name| name.starts_with("tokio-")),
        "{threads:?}"
    );
    let printed = stop(function).await;
    assert!(runtime.init_error().is_none(), "{printed}");
}

// Appended: the metrics of the HTTP bootstrap as Lambda's log stream gets them.
#[allow(dead_code)]
#[path = "support/emf.rs"]
mod emf;

/// The HTTP function writes its metrics as `CloudWatch` EMF lines on stdout (on by default inside
/// Lambda) after every invocation, before the answer is posted: one line per request here, since
/// a classic sandbox takes invocations one by one; one cold start; the function's name as a
/// dimension; and no customer value.
#[allow(clippy::float_cmp)]
#[tokio::test(flavor = "multi_thread")]
async fn the_http_bootstrap_writes_emf_metrics_after_every_invocation() {
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch(env!("CARGO_BIN_EXE_crm-lambda-http"), &runtime, &table);
    for _ in 0..3 {
        let (status, _, _) = read_response(
            runtime
                .invoke(http_event("GET", "/customers/Zephyrine-77", &[], None))
                .await,
        );
        assert_eq!(status, 404);
    }
    let printed = stop(function).await;
    assert!(runtime.init_error().is_none(), "{printed}");
    assert!(!printed.contains("Zephyrine"), "{printed}");
    let points = emf::points(&printed);
    let function = [("function", "crm-test")];
    assert_eq!(
        emf::total(&points, "cold_starts", &function),
        1.0,
        "{printed}"
    );
    let reads = [
        ("function", "crm-test"),
        ("route", "/customers/{id}"),
        ("method", "GET"),
        ("status_class", "4xx"),
    ];
    assert_eq!(
        emf::total(&points, "http_requests", &reads),
        3.0,
        "{printed}"
    );
    // Flushed per invocation: three lines of one request each, not one line at exit.
    let lines: Vec<f64> = points
        .iter()
        .filter(|p| p.name == "http_requests" && p.dimensions.len() == 4)
        .map(|p| p.values.iter().sum())
        .collect();
    assert_eq!(lines, [1.0; 3], "{printed}");
    let get_item = [("function", "crm-test"), ("operation", "GetItem")];
    assert_eq!(
        emf::total(&points, "dynamodb_calls", &get_item),
        3.0,
        "{printed}"
    );
    assert!(points.iter().all(|p| p.namespace == "crm"), "{printed}");
}

/// `CRM_METRICS=off` writes no metrics line.
#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_off_the_bootstrap_writes_no_emf_line() {
    let table = fresh_table().await;
    let runtime = FakeRuntime::start().await;
    let function = launch_with(
        env!("CARGO_BIN_EXE_crm-lambda-http"),
        &runtime,
        &table,
        &[("CRM_METRICS", "off")],
    );
    let (status, _, _) = read_response(
        runtime
            .invoke(http_event("GET", "/customers/boot-1", &[], None))
            .await,
    );
    assert_eq!(status, 404);
    let printed = stop(function).await;
    assert!(!printed.lines().any(emf::is_emf), "{printed}");
    assert!(!log_lines(&printed, "request").is_empty(), "{printed}");
}
