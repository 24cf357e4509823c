//! `POST /customers/batch`: up to 100 creates in one request, each answered as `POST /customers`
//! would answer it alone, in input order; its body limit; `Idempotency-Key`; the customer whose id
//! is `batch`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use crm_domain::idempotency::{KeyLease, KeyState, KeyedWrite, Written};
use crm_domain::{
    BulkReport, Change, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository,
    CustomerService, Email, Idempotency, Listing, Page, PageLimit, RepositoryError, Timestamp,
    Version,
};
use crm_memory::InMemoryCustomerRepository;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestResponse, ada, logs, named, spawn_app, spawn_app_with, spawn_service,
};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn post_batch(app: &TestApp, customers: &[Value], key: Option<&str>) -> TestResponse {
    let mut headers = vec![JSON];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    let body = json!({ "customers": customers }).to_string();
    app.request(Method::POST, "/customers/batch", &headers, body)
        .await
}

/// The results of a batch's answer.
fn results(response: &TestResponse) -> Vec<Value> {
    response.json()["results"].as_array().unwrap().clone()
}

fn statuses(response: &TestResponse) -> Vec<u64> {
    results(response)
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

/// How many customers the store holds, walking every page.
async fn count(app: &TestApp) -> usize {
    let mut seen = 0;
    let mut uri = "/customers?limit=100".to_owned();
    loop {
        let page = app.get(&uri).await.json();
        seen += page["items"].as_array().unwrap().len();
        match page["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/customers?limit=100&cursor={cursor}"),
            None => return seen,
        }
    }
}

// --- what a batch answers --------------------------------------------------------------------

#[tokio::test]
async fn a_batch_whose_customers_are_all_created_is_a_200_with_each_customer_in_input_order() {
    let app = spawn_app();
    let mut without_id = ada();
    without_id["firstName"] = json!("Augusta");
    let response = post_batch(&app, &[named("b-2"), without_id, named("b-1")], None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), "application/json");
    // Results carry their customers; the response has no Location or ETag of its own.
    assert!(response.headers.get("location").is_none());
    assert!(response.headers.get("etag").is_none());
    assert!(response.headers.get("idempotent-replayed").is_none());
    let results = results(&response);
    assert_eq!(statuses(&response), [201, 201, 201]);
    assert_eq!(results[0]["customer"]["id"], "b-2");
    assert_eq!(results[2]["customer"]["id"], "b-1");
    let generated = results[1]["customer"]["id"].as_str().unwrap();
    assert_eq!(generated.len(), 36, "a generated UUIDv7, as POST gives");
    for result in &results {
        let customer = &result["customer"];
        assert_eq!(customer["version"], 1);
        let id = customer["id"].as_str().unwrap();
        let stored = app.get(&format!("/customers/{id}")).await;
        assert_eq!(stored.header("etag"), "\"1\"");
        assert_eq!(&stored.json(), customer);
    }
    assert_eq!(results[1]["customer"]["email"], "ada@example.com");
}

#[tokio::test]
async fn a_mixed_batch_is_a_207_and_each_refusal_is_what_post_customers_answers_for_it_alone() {
    let app = spawn_app();
    app.create(named("taken")).await;
    let mut unknown = named("unknown");
    unknown["Address"] = json!({"line1": "1 Main St"});
    let items = [
        named("fresh"),
        json!({"firstName": "", "email": "not-an-email", "phone": "0123"}),
        named("taken"),
        unknown,
        json!({"id": "first-mail", "firstName": "A", "lastName": "B", "email": "shared@example.com"}),
        json!({"id": "second-mail", "firstName": "C", "lastName": "D", "email": "SHARED@example.com"}),
        named("fresh"),
        json!(["not", "an", "object"]),
    ];
    let response = post_batch(&app, &items, None).await;
    assert_eq!(response.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        statuses(&response),
        [201, 422, 409, 422, 201, 409, 409, 422]
    );
    let results = results(&response);
    assert_eq!(results[1]["problem"]["errors"].as_array().unwrap().len(), 4);
    assert_eq!(
        results[3]["problem"]["errors"],
        json!([{"field": "Address", "message": "unknown field `Address`; did you mean `address`?"}])
    );
    assert_eq!(results[2]["problem"]["type"], "urn:problem:crm:id-taken");
    assert_eq!(results[5]["problem"]["type"], "urn:problem:crm:email-taken");
    assert_eq!(results[6]["problem"]["type"], "urn:problem:crm:id-taken");
    // Sent alone after the batch, each refused item is answered the same way: the earlier item of
    // the batch that took its id or email is in the store now.
    for (item, result) in items.iter().zip(&results) {
        if result["status"] == 201 {
            continue;
        }
        let alone = app.post_json("/customers", item).await;
        assert_eq!(json!(alone.status.as_u16()), result["status"], "{item}");
        assert_eq!(alone.json(), result["problem"], "{item}");
        assert!(result.get("retryAfter").is_none());
    }
    assert_eq!(count(&app).await, 3, "taken, fresh, first-mail");
    assert_eq!(
        app.get("/customers/taken").await.json()["firstName"],
        "Grace"
    );
}

#[tokio::test]
async fn a_batch_of_which_nothing_was_created_is_a_207_too() {
    let app = spawn_app();
    let response = post_batch(&app, &[json!({}), json!({"firstName": "Ada"})], None).await;
    assert_eq!(response.status, StatusCode::MULTI_STATUS);
    assert_eq!(statuses(&response), [422, 422]);
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn results_follow_the_order_of_the_request_with_and_without_a_key() {
    for key in [None, Some("order-key")] {
        let app = spawn_app();
        // Ids in no sorted order, and customers without an id between them.
        let items: Vec<Value> = (0..40)
            .map(|n| {
                if n % 5 == 0 {
                    json!({"firstName": format!("N{n}"), "lastName": "Anon"})
                } else {
                    named(&format!("c{:02}", (n * 17) % 40))
                }
            })
            .collect();
        let response = post_batch(&app, &items, key).await;
        assert_eq!(response.status, StatusCode::OK, "{key:?}");
        for (item, result) in items.iter().zip(results(&response)) {
            match item.get("id") {
                Some(id) => assert_eq!(&result["customer"]["id"], id),
                None => assert_eq!(result["customer"]["firstName"], item["firstName"]),
            }
        }
        assert_eq!(count(&app).await, 40);
    }
}

// --- the shape of the request ----------------------------------------------------------------

#[tokio::test]
async fn no_customers_or_more_than_a_hundred_is_a_422_that_names_the_limit() {
    let app = spawn_app();
    let many: Vec<Value> = (0..101).map(|n| named(&format!("m{n}"))).collect();
    for items in [&[][..], &many[..]] {
        let problem = post_batch(&app, items, None).await.problem(422);
        assert_eq!(problem["type"], "urn:problem:crm:validation-failed");
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["field"], "customers");
        assert!(
            errors[0]["message"].as_str().unwrap().contains("1 to 100"),
            "{problem}"
        );
    }
    assert_eq!(count(&app).await, 0);
    let hundred = post_batch(&app, &many[..100], None).await;
    assert_eq!(hundred.status, StatusCode::OK);
    assert_eq!(count(&app).await, 100);
}

#[tokio::test]
async fn a_body_that_is_not_the_batch_object_is_a_400() {
    let app = spawn_app();
    for body in [
        json!({"customers": [named("x")], "dryRun": true}),
        json!({}),
        json!({"customers": null}),
        json!({"customers": named("x")}),
        json!([named("x")]),
        json!("customers"),
    ] {
        let problem = app.post_json("/customers/batch", &body).await.problem(400);
        assert_eq!(problem["type"], "urn:problem:crm:bad-request", "{body}");
    }
    let unknown = app
        .post_json(
            "/customers/batch",
            &json!({"customers": [], "dryRun": true}),
        )
        .await
        .problem(400);
    assert!(
        unknown["detail"].as_str().unwrap().contains("`dryRun`"),
        "{unknown}"
    );
    let twice =
        r#"{"customers": [{"id": "a", "firstName": "A", "lastName": "B"}], "customers": []}"#;
    app.request(Method::POST, "/customers/batch", &[JSON], twice)
        .await
        .problem(400);
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn a_batch_that_is_not_json_is_a_400() {
    let app = spawn_app();
    for body in ["{", "", "{\"customers\": [}", "{\"customers\": []}}"] {
        let problem = app
            .request(Method::POST, "/customers/batch", &[JSON], body)
            .await
            .problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:malformed-json",
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn a_batch_with_a_content_type_other_than_json_is_a_415() {
    let app = spawn_app();
    let body = json!({"customers": [named("ct")]}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/merge-patch+json"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let problem = app
            .request(Method::POST, "/customers/batch", &headers, body.clone())
            .await
            .problem(415);
        assert_eq!(problem["type"], "urn:problem:crm:unsupported-media-type");
    }
    assert_eq!(count(&app).await, 0);
}

// --- the body limit --------------------------------------------------------------------------

#[tokio::test]
async fn a_batch_of_customers_full_of_unknown_members_is_answered_in_less_than_its_own_size() {
    // A hundred customers of about 1,300 unknown members each: about 1 MiB. Each member named with
    // its own error would make an answer of some 14 MB, past the 6 MB a Lambda function may
    // answer with (a 502 at the gateway); past ten, they are counted instead.
    let app = spawn_app();
    let mut customer = serde_json::Map::new();
    for i in 0..1_290 {
        customer.insert(format!("{i:x}"), json!(0));
    }
    let customers = vec![Value::Object(customer); 100];
    let body = json!({ "customers": customers }).to_string();
    assert!(body.len() <= crm_http::BATCH_BODY_LIMIT, "{}", body.len());
    let response = post_batch(&app, &customers, None).await;
    assert_eq!(response.status, StatusCode::MULTI_STATUS);
    assert!(
        response.body.len() < body.len(),
        "{} bytes answered to {}",
        response.body.len(),
        body.len()
    );
    for result in results(&response) {
        assert_eq!(result["status"], 422);
        let errors = result["problem"]["errors"].as_array().unwrap();
        assert!(errors.len() <= 13, "{} errors", errors.len());
        assert!(
            errors
                .iter()
                .any(|e| e["message"].as_str().unwrap().ends_with("more not named")),
            "{errors:#?}"
        );
    }
}

#[tokio::test]
async fn the_batch_route_reads_bodies_up_to_1_mib_and_the_other_routes_still_16_kib() {
    let app = spawn_app();
    let json = json!({"customers": [named("edge")]}).to_string();
    let at_limit = format!(
        "{json}{}",
        " ".repeat(crm_http::BATCH_BODY_LIMIT - json.len())
    );
    assert_eq!(at_limit.len(), 1024 * 1024);
    let response = app
        .request(Method::POST, "/customers/batch", &[JSON], at_limit)
        .await;
    assert_eq!(response.status, StatusCode::OK);

    // One byte more, not even JSON: a 413 rather than a 400 shows the size was checked first.
    let over = "x".repeat(crm_http::BATCH_BODY_LIMIT + 1);
    let problem = app
        .request(Method::POST, "/customers/batch", &[JSON], over)
        .await
        .problem(413);
    assert_eq!(problem["type"], "urn:problem:crm:body-too-large");
    assert!(
        problem["detail"].as_str().unwrap().contains("1048576"),
        "{problem}"
    );
    let announced = app
        .request(
            Method::POST,
            "/customers/batch",
            &[JSON, ("content-length", "1048577")],
            Body::empty(),
        )
        .await;
    announced.problem(413);
    let streamed = Body::from(vec![b' '; 2 * 1024 * 1024]).into_data_stream();
    app.request(
        Method::POST,
        "/customers/batch",
        &[JSON],
        Body::from_stream(streamed),
    )
    .await
    .problem(413);

    // A batch well over 16 KiB is read ...
    let long_name = "N".repeat(100);
    let items: Vec<Value> = (0..100)
        .map(|n| json!({"id": format!("big-{n}"), "firstName": long_name, "lastName": long_name}))
        .collect();
    let big = json!({ "customers": items }).to_string();
    assert!(big.len() > 16 * 1024);
    let response = app
        .request(Method::POST, "/customers/batch", &[JSON], big)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    // ... while the other routes keep their 16 KiB.
    let just_over = "x".repeat(crm_http::BODY_LIMIT + 1);
    for uri in ["/customers", "/customers/search"] {
        let problem = app
            .request(Method::POST, uri, &[JSON], just_over.clone())
            .await
            .problem(413);
        assert!(
            problem["detail"].as_str().unwrap().contains("16384"),
            "{uri}: {problem}"
        );
    }
    assert_eq!(count(&app).await, 101);
}

// --- Idempotency-Key -------------------------------------------------------------------------

#[tokio::test]
async fn a_batch_sent_again_with_its_key_is_answered_from_its_records_without_a_second_write() {
    let app = spawn_app();
    app.create(named("taken")).await;
    let items = [
        json!({"firstName": "No", "lastName": "Id"}),
        named("given"),
        json!({"firstName": ""}),
        named("taken"),
        json!({"firstName": "Also", "lastName": "Without", "email": "w@example.com"}),
        json!({"id": "twin", "firstName": "T", "lastName": "W", "email": "W@example.com"}),
    ];
    let first = post_batch(&app, &items, Some("batch-7f3a")).await;
    assert_eq!(first.status, StatusCode::MULTI_STATUS);
    assert_eq!(statuses(&first), [201, 201, 422, 409, 201, 409]);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let stored = count(&app).await;
    assert_eq!(stored, 4);

    let again = post_batch(&app, &items, Some("batch-7f3a")).await;
    assert_eq!(again.status, first.status);
    assert_eq!(statuses(&again), statuses(&first));
    assert_eq!(again.header("idempotent-replayed"), "true");
    for (before, after) in results(&first).iter().zip(results(&again)) {
        if before["status"] == 201 {
            // The record holds no customer field: which customer, and the version it was made at.
            assert_eq!(
                after["customer"],
                json!({"id": before["customer"]["id"], "version": 1})
            );
        } else {
            assert_eq!(after, *before);
        }
    }
    assert_eq!(count(&app).await, stored, "nothing written twice");
}

#[tokio::test]
async fn a_batch_whose_customers_were_all_created_is_replayed_as_a_200() {
    let app = spawn_app();
    let items = [
        json!({"firstName": "A", "lastName": "One"}),
        json!({"firstName": "B", "lastName": "Two"}),
    ];
    let first = post_batch(&app, &items, Some("\"all-1\"")).await;
    assert_eq!(first.status, StatusCode::OK);
    // The same key, bare this time: the same key.
    let again = post_batch(&app, &items, Some("all-1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("idempotent-replayed"), "true");
    let ids = |response: &TestResponse| -> Vec<Value> {
        results(response)
            .iter()
            .map(|r| r["customer"]["id"].clone())
            .collect()
    };
    assert_eq!(ids(&again), ids(&first));
    assert_eq!(count(&app).await, 2);
}

#[tokio::test]
async fn a_key_reused_for_another_batch_or_route_is_a_422_and_writes_nothing() {
    let app = spawn_app();
    post_batch(&app, &[named("k-first")], Some("k-2")).await;
    let other_body = post_batch(&app, &[named("k-second")], Some("k-2")).await;
    let problem = other_body.problem(422);
    assert_eq!(problem["type"], "urn:problem:crm:idempotency-key-reused");
    // Whatever the other body holds: the key refuses it before any write.
    let other_items = post_batch(&app, &[named("k-third"), named("k-first")], Some("k-2")).await;
    other_items.problem(422);
    let single = app
        .request(
            Method::POST,
            "/customers",
            &[JSON, ("idempotency-key", "k-2")],
            named("k-single").to_string(),
        )
        .await;
    single.problem(422);
    assert_eq!(count(&app).await, 1);
    // And a key first used by a single create refuses a batch.
    app.request(
        Method::POST,
        "/customers",
        &[JSON, ("idempotency-key", "k-3")],
        named("k-made").to_string(),
    )
    .await;
    post_batch(&app, &[named("k-made")], Some("k-3"))
        .await
        .problem(422);
    assert_eq!(count(&app).await, 2);
}

#[tokio::test]
async fn a_batch_under_a_key_with_nothing_written_records_nothing() {
    let app = spawn_app();
    app.create(named("held")).await;
    let refused = post_batch(&app, &[named("held"), json!({})], Some("k-4")).await;
    assert_eq!(statuses(&refused), [409, 422]);
    // Refusals change nothing, so the key is free: the same batch runs again once the id is.
    app.delete("/customers/held", None).await;
    let again = post_batch(&app, &[named("held"), json!({})], Some("k-4")).await;
    assert_eq!(statuses(&again), [201, 422]);
    assert!(again.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn an_invalid_key_on_a_batch_is_a_400() {
    let app = spawn_app();
    post_batch(&app, &[named("x")], Some("has space"))
        .await
        .problem(400);
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn a_batch_sent_again_while_the_first_runs_is_a_409_with_retry_after() {
    // The test runs on one thread: the first request runs until it waits in the store, holding
    // the key, before the second is sent; the wait is long enough for the second to be answered
    // on a loaded machine.
    let store = Arc::new(Faulty::new().with_keyed_delay(Duration::from_millis(1500)));
    let app = spawn_app_with(&[], store);
    let items = [named("slow-1"), named("slow-2")];
    let first = {
        let app = app.clone();
        let items = items.clone();
        tokio::spawn(async move { post_batch(&app, &items, Some("slow-batch")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = post_batch(&app, &items, Some("slow-batch")).await;
    let problem = second.problem(409);
    assert_eq!(problem["type"], "urn:problem:crm:idempotency-key-in-use");
    assert_eq!(second.header("retry-after"), "1");
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    let third = post_batch(&app, &items, Some("slow-batch")).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(third.header("idempotent-replayed"), "true");
    assert_eq!(count(&app).await, 2);
}

// --- when the store stops answering ----------------------------------------------------------

#[tokio::test]
async fn customers_the_store_did_not_confirm_are_503_results_with_retry_after() {
    let store = Arc::new(Faulty::new().with_put_many_stopping_after(2));
    let app = spawn_app_with(&[], store);
    let items = [
        named("u-1"),
        named("u-2"),
        json!({}),
        named("u-3"),
        named("u-4"),
    ];
    let response = post_batch(&app, &items, None).await;
    assert_eq!(response.status, StatusCode::MULTI_STATUS);
    assert_eq!(statuses(&response), [201, 201, 422, 503, 503]);
    assert_eq!(response.header("retry-after"), "1");
    for result in &results(&response)[3..] {
        assert_eq!(
            result["problem"]["type"],
            "urn:problem:crm:store-unavailable"
        );
        assert_eq!(result["retryAfter"], 1);
    }
    assert!(results(&response)[2].get("retryAfter").is_none());
    assert_eq!(count(&app).await, 2);
}

#[tokio::test]
async fn a_keyed_batch_that_met_an_outage_is_completed_by_sending_it_again() {
    let store = Arc::new(Faulty::new().failing_once_on("o-3"));
    let service = CustomerService::new(store).with_key_hold(Duration::from_millis(50));
    // The keys a request holds are held for twice its deadline (at least): a deadline of 1 s,
    // generous for a loaded machine, so that those of the request that failed are free after 2 s.
    let app = spawn_service(&[("CRM_REQUEST_DEADLINE_MS", "1000")], service);
    let items = [
        json!({"firstName": "No", "lastName": "Id"}),
        named("o-2"),
        named("o-3"),
        named("o-4"),
    ];
    let first = post_batch(&app, &items, Some("outage-1")).await;
    assert_eq!(first.status, StatusCode::MULTI_STATUS);
    assert_eq!(statuses(&first), [201, 201, 503, 201]);
    assert_eq!(first.header("retry-after"), "1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = post_batch(&app, &items, Some("outage-1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("idempotent-replayed"), "true");
    let again = results(&again);
    assert_eq!(
        again[0]["customer"]["id"],
        results(&first)[0]["customer"]["id"]
    );
    assert_eq!(again[2]["customer"]["id"], "o-3");
    assert_eq!(again[2]["customer"]["firstName"], "Grace", "written now");
    assert_eq!(again[1]["customer"], json!({"id": "o-2", "version": 1}));
    assert_eq!(count(&app).await, 4);
}

// --- privacy ---------------------------------------------------------------------------------

#[tokio::test]
async fn no_customer_field_of_a_batch_reaches_a_log_line() {
    const SECRETS: &[&str] = &[
        "Wolstenholme",
        "Peregrina",
        "peregrina.w@example.org",
        "+447700900456",
        "Cobblestone Wynd",
        "Fennimore",
    ];
    let store = Arc::new(Faulty::new().with_put_many_stopping_after(1));
    let app = spawn_app_with(&[], store);
    let items = [
        json!({"id": "p-1", "firstName": "Peregrina", "lastName": "Wolstenholme",
               "email": "peregrina.w@example.org", "phone": "+447700900456",
               "address": {"line1": "3 Cobblestone Wynd", "country": "GB"}}),
        json!({"id": "p-2", "firstName": "Fennimore", "lastName": "Wolstenholme",
               "email": "PEREGRINA.W@example.org"}),
        json!({"firstName": "Peregrina", "email": "Fennimore", "phone": "+447700900456x",
               "Wolstenholme": "Cobblestone Wynd"}),
        json!({"id": "p-3", "firstName": "Fennimore", "lastName": "Peregrina"}),
    ];
    let response = post_batch(&app, &items, Some("privacy-1")).await;
    assert_eq!(response.status, StatusCode::MULTI_STATUS);
    let plain = post_batch(&app, &items[1..], None).await;
    assert_eq!(statuses(&plain), [409, 422, 503]);
    let logs = logs().to_ascii_lowercase();
    for secret in SECRETS {
        assert!(
            !logs.contains(&secret.to_ascii_lowercase()),
            "{secret} was logged"
        );
    }
    let request_id = plain.header("x-request-id").to_owned();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "request" && l["request_id"] == request_id.as_str())
        .expect("the batch's request line");
    assert_eq!(line["route"], "/customers/batch");
    assert_eq!(line["status"], 207);
}

// --- the customer whose id is `batch` --------------------------------------------------------

#[tokio::test]
async fn get_patch_and_delete_of_customers_batch_are_the_customer_whose_id_is_batch() {
    let app = spawn_app();
    app.get("/customers/batch").await.problem(404);
    app.create(named("batch")).await;
    let read = app.get("/customers/batch").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["id"], "batch");
    let patched = app
        .patch_json(
            "/customers/batch",
            &json!({"lastName": "Murray"}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.header("etag"), "\"2\"");
    assert_eq!(
        app.delete("/customers/batch", Some("\"2\"")).await.status,
        StatusCode::NO_CONTENT
    );
    let wrong = app
        .request(Method::PUT, "/customers/batch", &[], Body::empty())
        .await;
    wrong.problem(405);
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(wrong.header("allow").contains(method), "{method}");
    }
    // Under a stage prefix too.
    let staged = app
        .request(
            Method::POST,
            "/prod/customers/batch",
            &[JSON],
            json!({"customers": [named("staged")]}).to_string(),
        )
        .await;
    assert_eq!(staged.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// A store that misbehaves on purpose, over the in-memory one.

/// The in-memory store, with faults: keyed writes that take a while, a `put_many` that stops
/// answering part-way, keyed writes of some ids that fail once before writing.
struct Faulty {
    inner: InMemoryCustomerRepository,
    keyed_delay: Duration,
    put_many_stops_after: Option<usize>,
    failing_once: Mutex<HashSet<String>>,
}

impl Faulty {
    fn new() -> Self {
        Self {
            inner: InMemoryCustomerRepository::new(),
            keyed_delay: Duration::ZERO,
            put_many_stops_after: None,
            failing_once: Mutex::default(),
        }
    }

    fn with_keyed_delay(mut self, delay: Duration) -> Self {
        self.keyed_delay = delay;
        self
    }

    /// `put_many` writes the first `n` customers, then reports the rest unconfirmed.
    fn with_put_many_stopping_after(mut self, n: usize) -> Self {
        self.put_many_stops_after = Some(n);
        self
    }

    /// The first keyed write of the customer `id` fails as unavailable, writing nothing.
    fn failing_once_on(self, id: &str) -> Self {
        self.failing_once
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned());
        self
    }
}

#[async_trait]
impl CustomerRepository for Faulty {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.inner.create(customer).await
    }
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        self.inner.get(id).await
    }
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        self.inner.find_by_email(email).await
    }
    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        self.inner.update(id, patch, expected, now).await
    }
    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.inner.delete(id, expected).await
    }
    async fn list<'c>(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.inner.list(listing, limit, cursor).await
    }
    async fn changes<'c>(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Change>, RepositoryError> {
        self.inner.changes(since, limit, cursor).await
    }
    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError> {
        let Some(n) = self.put_many_stops_after else {
            return self.inner.put_many(customers).await;
        };
        let (sent, lost) = customers.split_at(n.min(customers.len()));
        let mut report = self.inner.put_many(sent).await?;
        report.unconfirmed = lost.iter().map(|c| c.id().clone()).collect();
        Ok(report)
    }
    async fn begin_keyed(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError> {
        self.inner.begin_keyed(idempotency, hold).await
    }
    async fn write_keyed(
        &self,
        write: &KeyedWrite,
        lease: &KeyLease,
    ) -> Result<Written, RepositoryError> {
        tokio::time::sleep(self.keyed_delay).await;
        if let KeyedWrite::Create(customer) = write
            && self
                .failing_once
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(customer.id().as_str())
        {
            return Err(RepositoryError::unavailable("the store did not answer"));
        }
        self.inner.write_keyed(write, lease).await
    }
    async fn release_key(&self, lease: &KeyLease) -> Result<(), RepositoryError> {
        self.inner.release_key(lease).await
    }
}
