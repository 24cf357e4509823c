//! `/customers`, `/health`, `/openapi.json`, unknown paths, wrong methods, stages, CORS.

use std::sync::Arc;

use axum::body::Body;
use crm_memory::InMemoryCustomerRepository;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ada, named, spawn_app, spawn_app_with};

// --- POST /customers -----------------------------------------------------------------------

#[tokio::test]
async fn a_valid_customer_is_created_with_location_and_etag() {
    let app = spawn_app();
    let response = app.post_json("/customers", &ada()).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let customer = response.json();
    let id = customer["id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUIDv7");
    assert_eq!(response.header("location"), format!("/customers/{id}"));
    assert_eq!(response.header("etag"), "\"1\"");
    assert_eq!(response.header("content-type"), "application/json");
    assert_eq!(customer["version"], 1);
    assert_eq!(customer["createdAt"], customer["updatedAt"]);
    assert_eq!(customer["address"]["country"], "GB");
    assert_eq!(customer["email"], "ada@example.com");
}

#[tokio::test]
async fn a_given_id_is_kept_and_names_are_trimmed() {
    let app = spawn_app();
    let customer = app
        .create(json!({"id": "c-1", "firstName": "  Grace ", "lastName": "Hopper"}))
        .await;
    assert_eq!(customer["id"], "c-1");
    assert_eq!(customer["firstName"], "Grace");
    assert!(
        customer.get("email").is_none(),
        "absent optional fields are omitted"
    );
}

#[tokio::test]
async fn a_duplicate_id_is_a_conflict_and_nothing_is_overwritten() {
    let app = spawn_app();
    app.create(named("dup")).await;
    let mut other = named("dup");
    other["firstName"] = json!("Other");
    let problem = app.post_json("/customers", &other).await.problem(409);
    assert_eq!(problem["type"], "urn:problem:crm:id-taken");
    assert_eq!(app.get("/customers/dup").await.json()["firstName"], "Grace");
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app();
    app.create(ada()).await;
    let mut twin = named("twin");
    twin["email"] = json!("ADA@Example.com");
    let problem = app.post_json("/customers", &twin).await.problem(409);
    assert_eq!(problem["type"], "urn:problem:crm:email-taken");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let app = spawn_app();
    for body in [
        "{",
        "",
        "not json",
        "{\"firstName\":}",
        "{\"a\":1}}",
        "\u{feff}{}",
    ] {
        let response = app
            .request(
                Method::POST,
                "/customers",
                &[("content-type", "application/json")],
                body,
            )
            .await;
        let problem = response.problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:malformed-json",
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn a_member_given_twice_is_a_400_on_every_json_route_and_writes_nothing() {
    let app = spawn_app();
    app.create(named("kept")).await;
    let twice = [
        (
            Method::POST,
            "/customers",
            r#"{"id": "twice", "firstName": "Ada", "lastName": "Lovelace", "email": "a@example.com", "email": "b@example.com"}"#,
            "email",
        ),
        (
            Method::POST,
            "/customers",
            r#"{"id": "twice", "firstName": "Ada", "lastName": "Lovelace", "address": {"line1": "1 Main St", "line1": "2 Main St"}}"#,
            "line1",
        ),
        (
            Method::PATCH,
            "/customers/kept",
            r#"{"lastName": "Byron", "lastName": "King"}"#,
            "lastName",
        ),
        (
            Method::POST,
            "/customers/batch",
            r#"{"customers": [{"id": "twice", "firstName": "Ada", "firstName": "Augusta", "lastName": "King"}]}"#,
            "firstName",
        ),
        (
            Method::POST,
            "/customers/search",
            r#"{"name": "ad", "name": "by"}"#,
            "name",
        ),
        (
            Method::POST,
            "/Customers",
            r#"{"id": "twice", "firstName": "Ada", "lastName": "Lovelace", "address": "1 Main St", "address": "2 Main St"}"#,
            "address",
        ),
        (
            Method::POST,
            "/DynamoDBManager",
            r#"{"operation": "read", "operation": "delete", "payload": {"Key": {"id": "kept"}}}"#,
            "operation",
        ),
    ];
    for (method, path, body, member) in twice {
        let response = app
            .request(
                method.clone(),
                path,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        let problem = response.problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:malformed-json",
            "{method} {path}"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("member `{member}` is given more than once")),
            "{method} {path}: {detail}"
        );
    }
    assert_eq!(
        app.get("/customers/twice").await.status,
        StatusCode::NOT_FOUND
    );
    let kept = app.get("/customers/kept").await.json();
    assert_eq!(kept["version"], 1, "the patch wrote nothing");
}

#[tokio::test]
async fn a_json_document_that_is_not_an_object_is_a_422_on_the_document() {
    let app = spawn_app();
    for body in [json!([]), json!("Ada"), json!(1), json!(null)] {
        let response = app.post_json("/customers", &body).await;
        assert_eq!(response.invalid_fields(), ["$"], "{body}");
    }
}

#[tokio::test]
async fn wrong_json_types_are_a_422_naming_each_field() {
    let app = spawn_app();
    let response = app
        .post_json(
            "/customers",
            &json!({"firstName": 1, "lastName": true, "email": [], "phone": {}, "address": "x", "id": 7}),
        )
        .await;
    assert_eq!(
        response.invalid_fields(),
        ["id", "firstName", "lastName", "email", "phone", "address"]
    );
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once_without_its_value() {
    let app = spawn_app();
    let response = app
        .post_json(
            "/customers",
            &json!({"firstName": "", "email": "secret-not-an-email", "phone": "0123",
                    "address": {"line1": "x", "country": "XX"}}),
        )
        .await;
    assert_eq!(
        response.invalid_fields(),
        ["firstName", "lastName", "email", "phone", "address.country"]
    );
    let body = String::from_utf8_lossy(&response.body);
    assert!(!body.contains("secret-not-an-email"), "{body}");
}

#[tokio::test]
async fn an_unknown_field_is_rejected_with_a_suggestion() {
    let app = spawn_app();
    let mut input = named("u");
    input["Address"] = json!({"line1": "1 Main St"});
    let problem = app.post_json("/customers", &input).await.problem(422);
    assert_eq!(
        problem["errors"],
        json!([{"field": "Address", "message": "unknown field `Address`; did you mean `address`?"}])
    );
}

#[tokio::test]
async fn server_set_fields_cannot_be_given() {
    let app = spawn_app();
    let mut input = named("s");
    input["version"] = json!(7);
    input["createdAt"] = json!("2020-01-01T00:00:00Z");
    let response = app.post_json("/customers", &input).await;
    assert_eq!(response.invalid_fields(), ["createdAt", "version"]);
}

#[tokio::test]
async fn a_body_over_16_kib_is_a_413_before_it_is_parsed() {
    let app = spawn_app();
    // Not JSON at all: a 413 rather than a 400 shows the size was checked first.
    let body = "x".repeat(16 * 1024 + 1);
    let problem = app
        .request(
            Method::POST,
            "/customers",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .problem(413);
    assert_eq!(problem["type"], "urn:problem:crm:body-too-large");
}

#[tokio::test]
async fn a_large_content_length_is_refused_without_reading_the_body() {
    let app = spawn_app();
    app.request(
        Method::POST,
        "/customers",
        &[
            ("content-type", "application/json"),
            ("content-length", "10000000"),
        ],
        Body::empty(),
    )
    .await
    .problem(413);
}

#[tokio::test]
async fn a_streamed_body_over_16_kib_without_content_length_is_a_413() {
    let app = spawn_app();
    let chunks = Body::from(vec![b' '; 40 * 1024]).into_data_stream();
    let response = app
        .request(
            Method::POST,
            "/customers",
            &[("content-type", "application/json")],
            Body::from_stream(chunks),
        )
        .await;
    response.problem(413);
}

#[tokio::test]
async fn a_body_of_exactly_16_kib_is_read() {
    let app = spawn_app();
    let json = named("edge").to_string();
    let body = format!("{json}{}", " ".repeat(16 * 1024 - json.len()));
    assert_eq!(body.len(), crm_http::BODY_LIMIT);
    let response = app
        .request(
            Method::POST,
            "/customers",
            &[("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_content_type_other_than_json_is_a_415() {
    let app = spawn_app();
    let body = named("ct").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/merge-patch+json"),
        Some("application/json; charset=iso-8859-1"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let problem = app
            .request(Method::POST, "/customers", &headers, body.clone())
            .await
            .problem(415);
        assert_eq!(problem["type"], "urn:problem:crm:unsupported-media-type");
    }
}

#[tokio::test]
async fn json_with_a_utf8_charset_is_accepted() {
    let app = spawn_app();
    let response = app
        .request(
            Method::POST,
            "/customers",
            &[("content-type", "Application/JSON; charset=UTF-8")],
            named("cs").to_string(),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
}

// --- GET /customers/{id} -------------------------------------------------------------------

#[tokio::test]
async fn a_customer_is_read_with_its_etag() {
    let app = spawn_app();
    let created = app.create(ada()).await;
    let response = app
        .get(&format!("/customers/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("etag"), "\"1\"");
    assert_eq!(response.json(), created);
}

#[tokio::test]
async fn an_unknown_id_is_a_404() {
    let app = spawn_app();
    let problem = app.get("/customers/nobody").await.problem(404);
    assert_eq!(problem["type"], "urn:problem:crm:customer-not-found");
}

#[tokio::test]
async fn an_id_that_cannot_exist_is_a_404() {
    let app = spawn_app();
    for path in [
        "/customers/a%20b".to_owned(),
        format!("/customers/{}", "a".repeat(65)),
        "/customers/%C3%A9".to_owned(),
        "/customers/%FF".to_owned(),
    ] {
        app.get(&path).await.problem(404);
    }
}

// --- GET /customers?limit=&cursor= ---------------------------------------------------------

async fn seed(app: &crate::helpers::TestApp, n: usize) {
    for i in 0..n {
        app.create(named(&format!("c{i:03}"))).await;
    }
}

#[tokio::test]
async fn the_first_page_has_25_customers_and_a_cursor() {
    let app = spawn_app();
    seed(&app, 30).await;
    let page = app.get("/customers").await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 25);
    assert!(page["nextCursor"].is_string());
}

#[tokio::test]
async fn walking_the_cursor_returns_every_customer_exactly_once() {
    let app = spawn_app();
    seed(&app, 30).await;
    let mut seen = Vec::new();
    let mut uri = "/customers?limit=7".to_owned();
    loop {
        let page = app.get(&uri).await.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/customers?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 30);
    assert_eq!(unique.len(), 30);
}

#[tokio::test]
async fn an_empty_store_lists_no_items_and_a_null_cursor() {
    let app = spawn_app();
    assert_eq!(
        app.get("/customers?limit=100").await.json(),
        json!({"items": [], "nextCursor": null})
    );
}

#[tokio::test]
async fn bad_limits_are_a_400() {
    let app = spawn_app();
    for limit in [
        "0",
        "101",
        "x",
        "-1",
        "+5",
        "%2B5",
        "%205",
        "",
        "1.5",
        "99999999999999999999",
    ] {
        let problem = app
            .get(&format!("/customers?limit={limit}"))
            .await
            .problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("1 to 100"),
            "{limit}: {problem}"
        );
    }
}

#[tokio::test]
async fn a_forged_cursor_is_a_400_never_a_500() {
    let app = spawn_app();
    seed(&app, 3).await;
    for cursor in ["garbage", "abc", "not%20a%20cursor", "", "djE6", "djI6eA"] {
        let problem = app
            .get(&format!("/customers?cursor={cursor}"))
            .await
            .problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:invalid-cursor",
            "{cursor}"
        );
    }
}

#[tokio::test]
async fn unknown_or_repeated_query_parameters_are_a_400() {
    let app = spawn_app();
    for query in [
        "page=2",
        "Limit=3",
        "limit=1&limit=2",
        "email=a@b.co&email=c@d.co",
    ] {
        app.get(&format!("/customers?{query}")).await.problem(400);
    }
}

// --- GET /customers?email= -----------------------------------------------------------------

#[tokio::test]
async fn an_email_lookup_returns_the_one_match_case_insensitively() {
    let app = spawn_app();
    let ada = app.create(ada()).await;
    app.create(named("other")).await;
    let page = app.get("/customers?email=ADA%40example.COM").await.json();
    assert_eq!(page, json!({"items": [ada], "nextCursor": null}));
}

#[tokio::test]
async fn an_email_lookup_without_a_match_returns_no_items() {
    let app = spawn_app();
    app.create(ada()).await;
    let page = app
        .get("/customers?email=nobody%40example.com")
        .await
        .json();
    assert_eq!(page, json!({"items": [], "nextCursor": null}));
}

#[tokio::test]
async fn an_invalid_email_lookup_is_a_422() {
    let app = spawn_app();
    for email in ["not-an-email", "", "a%40b"] {
        let response = app.get(&format!("/customers?email={email}")).await;
        assert_eq!(response.invalid_fields(), ["email"], "{email}");
    }
}

#[tokio::test]
async fn email_with_limit_or_cursor_is_a_400() {
    let app = spawn_app();
    app.get("/customers?email=ada%40example.com&limit=5")
        .await
        .problem(400);
    app.get("/customers?cursor=abc&email=ada%40example.com")
        .await
        .problem(400);
}

// --- PATCH /customers/{id} -----------------------------------------------------------------

async fn created(app: &crate::helpers::TestApp) -> String {
    app.create(ada()).await["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_given_and_moves_the_etag() {
    let app = spawn_app();
    let id = created(&app).await;
    let response = app
        .patch_json(
            &format!("/customers/{id}"),
            &json!({"lastName": "King", "address": {"city": "Ockham"}}),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("etag"), "\"2\"");
    let customer = response.json();
    assert_eq!(customer["lastName"], "King");
    assert_eq!(customer["firstName"], "Ada");
    assert_eq!(customer["address"]["city"], "Ockham");
    assert_eq!(customer["address"]["line1"], "12 St James's Square");
    assert_eq!(customer["version"], 2);
}

#[tokio::test]
async fn null_clears_an_optional_field() {
    let app = spawn_app();
    let id = created(&app).await;
    let customer = app
        .patch_json(
            &format!("/customers/{id}"),
            &json!({"email": null, "address": null}),
            None,
        )
        .await
        .json();
    assert!(customer.get("email").is_none());
    assert!(customer.get("address").is_none());
    assert_eq!(customer["phone"], "+441234567890");
}

#[tokio::test]
async fn a_patch_at_the_current_etag_applies_and_a_stale_one_is_a_412() {
    let app = spawn_app();
    let id = created(&app).await;
    let uri = format!("/customers/{id}");
    let first = app
        .patch_json(&uri, &json!({"firstName": "Augusta"}), Some("\"1\""))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let stale = app
        .patch_json(&uri, &json!({"firstName": "Lost"}), Some("\"1\""))
        .await;
    let problem = stale.problem(412);
    assert!(
        problem["detail"].as_str().unwrap().contains("version 2"),
        "{problem}"
    );
    assert_eq!(app.get(&uri).await.json()["firstName"], "Augusta");
}

#[tokio::test]
async fn if_match_star_matches_any_version() {
    let app = spawn_app();
    let id = created(&app).await;
    let response = app
        .patch_json(
            &format!("/customers/{id}"),
            &json!({"firstName": "Augusta"}),
            Some("*"),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn a_malformed_if_match_is_a_400() {
    let app = spawn_app();
    let id = created(&app).await;
    let uri = format!("/customers/{id}");
    for tag in [
        "1",
        "\"1",
        "\"1\" \"2\"",
        "*, \"1\"",
        "W/ \"1\"",
        "w/\"1\"",
        "\"a b\"",
    ] {
        let problem = app
            .patch_json(&uri, &json!({"firstName": "X"}), Some(tag))
            .await
            .problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("If-Match"),
            "{tag}"
        );
        app.delete(&uri, Some(tag)).await.problem(400);
    }
    assert_eq!(app.get(&uri).await.json()["firstName"], "Ada");
}

#[tokio::test]
async fn an_if_match_that_can_never_match_is_a_412_not_a_400() {
    let app = spawn_app();
    let id = created(&app).await;
    let uri = format!("/customers/{id}");
    // Weak tags never match under If-Match's strong comparison, not even W/"1" at version 1; the
    // others are entity tags this API never sends, and an empty list matches nothing.
    for tag in [
        "W/\"1\"",
        "\"0\"",
        "\"01\"",
        "\"x\"",
        "\"\"",
        "",
        "W/\"1\", \"x\"",
    ] {
        let problem = app
            .patch_json(&uri, &json!({"firstName": "X"}), Some(tag))
            .await
            .problem(412);
        assert_eq!(
            problem["type"], "urn:problem:crm:version-mismatch",
            "{tag:?}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("version 1"),
            "{tag:?}: {problem}"
        );
        app.delete(&uri, Some(tag)).await.problem(412);
    }
    assert_eq!(app.get(&uri).await.header("etag"), "\"1\"");
}

#[tokio::test]
async fn an_if_match_list_applies_when_any_tag_is_the_current_etag() {
    let app = spawn_app();
    let id = created(&app).await;
    let uri = format!("/customers/{id}");
    let response = app
        .patch_json(
            &uri,
            &json!({"firstName": "Augusta"}),
            Some("\"7\", W/\"2\", \"1\""),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("etag"), "\"2\"");
    // The list no longer holds the current version.
    let problem = app
        .patch_json(&uri, &json!({"firstName": "Lost"}), Some("\"1\", \"3\""))
        .await
        .problem(412);
    assert!(
        problem["detail"].as_str().unwrap().contains("version 2"),
        "{problem}"
    );
    // Several If-Match lines are one list.
    let response = app
        .request(
            Method::PATCH,
            &uri,
            &[
                ("content-type", "application/merge-patch+json"),
                ("if-match", "\"1\""),
                ("if-match", "\"2\""),
            ],
            json!({"lastName": "King"}).to_string(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("etag"), "\"3\"");
    app.delete(&uri, Some("\"1\", \"2\"")).await.problem(412);
    let deleted = app.delete(&uri, Some("\"2\", \"3\"")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_if_match_on_an_unknown_customer_is_a_404() {
    let app = spawn_app();
    for tag in ["*", "\"1\"", "\"1\", \"2\"", "W/\"1\""] {
        app.patch_json("/customers/ghost", &json!({"firstName": "X"}), Some(tag))
            .await
            .problem(404);
        app.delete("/customers/ghost", Some(tag)).await.problem(404);
    }
}

#[tokio::test]
async fn a_patch_body_over_16_kib_is_a_413() {
    let app = spawn_app();
    app.create(named("big")).await;
    let body = json!({"lastName": "x".repeat(16 * 1024)}).to_string();
    let problem = app
        .request(
            Method::PATCH,
            "/customers/big",
            &[("content-type", "application/merge-patch+json")],
            body,
        )
        .await
        .problem(413);
    assert_eq!(problem["type"], "urn:problem:crm:body-too-large");
    assert_eq!(app.get("/customers/big").await.json()["lastName"], "Hopper");
}

#[tokio::test]
async fn a_patch_of_values_the_customer_has_keeps_its_etag_and_writes_nothing() {
    let app = spawn_app();
    let created = app.create(ada()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let uri = format!("/customers/{id}");
    let whole = json!({
        "firstName": created["firstName"], "lastName": created["lastName"],
        "email": created["email"]
    });
    let same = app.patch_json(&uri, &whole, Some("\"1\"")).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.header("etag"), "\"1\"");
    assert_eq!(
        same.json(),
        created,
        "the customer as it is, updatedAt included"
    );
    // Under a key the outcome is recorded: sent again after the customer changed, the first
    // answer comes back and the patch is not run again.
    let keyed = || {
        app.request(
            Method::PATCH,
            &uri,
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "sync-1"),
            ],
            whole.to_string(),
        )
    };
    assert_eq!(keyed().await.header("etag"), "\"1\"");
    let renamed = app
        .patch_json(&uri, &json!({"lastName": "Byron"}), None)
        .await;
    assert_eq!(renamed.header("etag"), "\"2\"");
    let again = keyed().await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("etag"), "\"1\"");
    assert_eq!(
        app.get(&uri).await.json()["lastName"],
        "Byron",
        "not run again"
    );
}

#[tokio::test]
async fn a_patch_without_a_json_content_type_is_a_415() {
    let app = spawn_app();
    app.create(named("ct")).await;
    let body = json!({"lastName": "Murray"}).to_string();
    for content_type in [None, Some("text/plain")] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let problem = app
            .request(Method::PATCH, "/customers/ct", &headers, body.clone())
            .await
            .problem(415);
        assert_eq!(
            problem["type"], "urn:problem:crm:unsupported-media-type",
            "{content_type:?}"
        );
    }
}

#[tokio::test]
async fn a_patch_with_an_unknown_field_is_a_422_with_a_suggestion() {
    let app = spawn_app();
    app.create(named("u")).await;
    let problem = app
        .patch_json(
            "/customers/u",
            &json!({"lastname": "Murray", "Address": {"line1": "1 Main St"}}),
            None,
        )
        .await
        .problem(422);
    let errors = problem["errors"].as_array().unwrap();
    let message_of = |field: &str| {
        errors
            .iter()
            .find(|e| e["field"] == field)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("no error on {field}: {problem}"))
            .to_owned()
    };
    assert_eq!(
        message_of("Address"),
        "unknown field `Address`; did you mean `address`?"
    );
    assert!(
        message_of("lastname").contains("did you mean `lastName`?"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_patch_with_wrong_json_types_is_a_422_naming_each_field() {
    let app = spawn_app();
    app.create(named("types")).await;
    let response = app
        .patch_json(
            "/customers/types",
            &json!({"firstName": 1, "lastName": true, "email": [], "phone": {}, "address": 7}),
            None,
        )
        .await;
    assert_eq!(
        response.invalid_fields(),
        ["firstName", "lastName", "email", "phone", "address"]
    );
    let patched_nothing = app.get("/customers/types").await;
    assert_eq!(patched_nothing.header("etag"), "\"1\"");
}

#[tokio::test]
async fn a_patch_of_an_unknown_id_is_a_404_and_creates_nothing() {
    let app = spawn_app();
    app.patch_json("/customers/ghost", &json!({"firstName": "Ghost"}), None)
        .await
        .problem(404);
    app.get("/customers/ghost").await.problem(404);
}

#[tokio::test]
async fn a_patch_taking_another_customers_email_is_a_409() {
    let app = spawn_app();
    app.create(ada()).await;
    app.create(named("grace")).await;
    app.patch_json(
        "/customers/grace",
        &json!({"email": "Ada@Example.com"}),
        None,
    )
    .await
    .problem(409);
}

#[tokio::test]
async fn a_patch_that_would_make_the_customer_invalid_is_a_422() {
    let app = spawn_app();
    app.create(named("grace")).await;
    let uri = "/customers/grace";
    let cleared = app
        .patch_json(
            uri,
            &json!({"firstName": null, "id": "other", "phone": "12"}),
            None,
        )
        .await;
    assert_eq!(cleared.invalid_fields(), ["id", "firstName", "phone"]);
    let no_line1 = app
        .patch_json(uri, &json!({"address": {"city": "Arlington"}}), None)
        .await;
    assert_eq!(no_line1.invalid_fields(), ["address.line1"]);
}

#[tokio::test]
async fn a_patch_reads_merge_patch_or_plain_json_only() {
    let app = spawn_app();
    app.create(named("grace")).await;
    let body = json!({"lastName": "Murray"}).to_string();
    let plain = app
        .request(
            Method::PATCH,
            "/customers/grace",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    for content_type in ["text/plain", "application/json-patch+json"] {
        app.request(
            Method::PATCH,
            "/customers/grace",
            &[("content-type", content_type)],
            body.clone(),
        )
        .await
        .problem(415);
    }
    app.request(
        Method::PATCH,
        "/customers/grace",
        &[("content-type", "application/merge-patch+json")],
        "{nope",
    )
    .await
    .problem(400);
}

#[tokio::test]
async fn an_empty_patch_changes_nothing() {
    let app = spawn_app();
    app.create(named("grace")).await;
    let response = app.patch_json("/customers/grace", &json!({}), None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("etag"), "\"1\"");
}

// --- DELETE /customers/{id} ----------------------------------------------------------------

#[tokio::test]
async fn a_delete_is_a_204_and_the_customer_is_gone() {
    let app = spawn_app();
    app.create(named("bye")).await;
    let response = app.delete("/customers/bye", None).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(response.body.is_empty());
    app.get("/customers/bye").await.problem(404);
}

#[tokio::test]
async fn a_delete_of_an_unknown_id_is_a_404() {
    let app = spawn_app();
    app.delete("/customers/nobody", None).await.problem(404);
}

#[tokio::test]
async fn a_delete_at_a_stale_etag_is_a_412_and_keeps_the_customer() {
    let app = spawn_app();
    app.create(named("keep")).await;
    app.patch_json("/customers/keep", &json!({"lastName": "Murray"}), None)
        .await;
    app.delete("/customers/keep", Some("\"1\""))
        .await
        .problem(412);
    assert_eq!(app.get("/customers/keep").await.status, StatusCode::OK);
    let response = app.delete("/customers/keep", Some("\"2\"")).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
}

// --- the rest of the table -----------------------------------------------------------------

#[tokio::test]
async fn health_is_a_200() {
    let app = spawn_app();
    let response = app.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn the_openapi_document_is_served_as_json() {
    let app = spawn_app();
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["openapi"], "3.1.0");
}

#[tokio::test]
async fn an_unknown_path_is_a_404_problem() {
    let app = spawn_app();
    for path in [
        "/",
        "/nope",
        "/customers/a/b",
        "/customer",
        "/prod",
        "/a/b/c/d/e/customers",
        "/prod/nope",
        "/prod/crm/nope",
    ] {
        let problem = app.get(path).await.problem(404);
        assert_eq!(problem["type"], "urn:problem:crm:no-such-route", "{path}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_with_allow() {
    let app = spawn_app();
    let cases = [
        (Method::PUT, "/customers", ["GET", "POST"].as_slice()),
        (Method::DELETE, "/customers", &["GET", "POST"]),
        (Method::POST, "/customers/x", &["GET", "PATCH", "DELETE"]),
        (Method::PUT, "/customers/x", &["GET", "PATCH", "DELETE"]),
        (Method::GET, "/DynamoDBManager", &["POST"]),
        (Method::POST, "/health", &["GET"]),
        (
            Method::PUT,
            "/Customers",
            &["GET", "POST", "PATCH", "DELETE"],
        ),
    ];
    for (method, path, allowed) in cases {
        let response = app.request(method.clone(), path, &[], Body::empty()).await;
        response.problem(405);
        let allow = response.header("allow");
        for m in allowed {
            assert!(allow.contains(m), "{method} {path}: Allow {allow}");
        }
    }
}

#[tokio::test]
async fn a_stage_prefix_is_ignored_and_kept_in_location() {
    let app = spawn_app();
    let response = app.post_json("/prod/customers", &named("staged")).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.header("location"), "/prod/customers/staged");
    assert_eq!(
        app.get("/prod/customers/staged").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/dev_2/customers?limit=1").await.status,
        StatusCode::OK
    );
    assert_eq!(app.get("/v1/health").await.status, StatusCode::OK);
    assert_eq!(app.get("/Prod/Customers").await.status, StatusCode::OK);
    assert_eq!(
        app.envelope_at("/prod/DynamoDBManager", json!({"operation": "ping"}))
            .await
            .json(),
        json!("pong")
    );
    app.request(Method::PUT, "/prod/customers", &[], Body::empty())
        .await
        .problem(405);
}

#[tokio::test]
async fn a_stage_with_a_custom_domain_base_path_is_ignored() {
    let app = spawn_app();
    // A REST API behind a custom domain: `lambda_http` puts the stage before the base path.
    let response = app.post_json("/prod/crm/customers", &named("domain")).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.header("location"), "/prod/crm/customers/domain");
    for path in [
        "/prod/crm/customers/domain",
        "/prod/api/v1/customers/domain",
        "/prod/a/b/c/customers/domain",
        "/crm.v2/customers/domain",
    ] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
    app.get("/prod/a/b/c/d/customers/domain").await.problem(404);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_given_one_is_kept() {
    let app = spawn_app();
    let generated = app.get("/health").await;
    assert_eq!(generated.header("x-request-id").len(), 36);
    let given = app
        .request(
            Method::GET,
            "/health",
            &[("x-request-id", "trace-123")],
            Body::empty(),
        )
        .await;
    assert_eq!(given.header("x-request-id"), "trace-123");
    let odd = app
        .request(
            Method::GET,
            "/health",
            &[("x-request-id", "a b\"c")],
            Body::empty(),
        )
        .await;
    assert_ne!(odd.header("x-request-id"), "a b\"c");
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let app = spawn_app();
    let response = app
        .request(
            Method::GET,
            "/health",
            &[("origin", "https://app.example.com")],
            Body::empty(),
        )
        .await;
    assert!(
        response
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn configured_cors_answers_preflights_and_exposes_etag_and_location() {
    let app = spawn_app_with(
        &[("CRM_CORS_ORIGINS", "https://app.example.com")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    let preflight = app
        .request(
            Method::OPTIONS,
            "/customers/x",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "if-match, content-type"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .to_ascii_lowercase();
    assert!(
        allowed.contains("if-match") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .contains("PATCH")
    );

    let response = app
        .request(
            Method::POST,
            "/customers",
            &[
                ("origin", "https://app.example.com"),
                ("content-type", "application/json"),
            ],
            named("cors").to_string(),
        )
        .await;
    let exposed = response
        .header("access-control-expose-headers")
        .to_ascii_lowercase();
    for header in [
        "etag",
        "location",
        "x-request-id",
        "retry-after",
        "allow",
        "idempotent-replayed",
    ] {
        assert!(exposed.contains(header), "{header} not in {exposed}");
    }

    let stranger = app
        .request(
            Method::GET,
            "/health",
            &[("origin", "https://evil.example.com")],
            Body::empty(),
        )
        .await;
    assert!(
        stranger
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}

async fn preflight(
    app: &crate::helpers::TestApp,
    origin: &str,
    request_headers: &str,
) -> crate::helpers::TestResponse {
    app.request(
        Method::OPTIONS,
        "/customers",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", request_headers),
        ],
        Body::empty(),
    )
    .await
}

#[tokio::test]
async fn cors_with_a_star_allows_any_origin() {
    let app = spawn_app_with(
        &[("CRM_CORS_ORIGINS", "*")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    let answer = preflight(&app, "https://anywhere.example.net", "content-type").await;
    assert_eq!(answer.header("access-control-allow-origin"), "*");
    let response = app
        .request(
            Method::GET,
            "/health",
            &[("origin", "http://localhost:5173")],
            Body::empty(),
        )
        .await;
    assert_eq!(response.header("access-control-allow-origin"), "*");
}

#[tokio::test]
async fn a_preflight_from_an_origin_not_allowed_gets_no_allow_origin() {
    let app = spawn_app_with(
        &[("CRM_CORS_ORIGINS", "https://app.example.com")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    let answer = preflight(&app, "https://evil.example.com", "content-type").await;
    assert!(
        answer.headers.get("access-control-allow-origin").is_none(),
        "{:?}",
        answer.headers
    );
}

#[tokio::test]
async fn a_preflight_may_ask_for_the_api_gateway_headers() {
    let app = spawn_app_with(
        &[("CRM_CORS_ORIGINS", "https://app.example.com")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    let wanted = [
        "content-type",
        "if-match",
        "idempotency-key",
        "authorization",
        "x-api-key",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-request-id",
    ];
    let answer = preflight(&app, "https://app.example.com", &wanted.join(", ")).await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    let allowed: Vec<String> = answer
        .header("access-control-allow-headers")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for header in wanted {
        assert!(
            allowed.iter().any(|a| a == header),
            "{header} not in {allowed:?}"
        );
    }
}

impl crate::helpers::TestApp {
    async fn envelope_at(&self, uri: &str, body: Value) -> crate::helpers::TestResponse {
        self.send_json(Method::POST, uri, &body).await
    }
}
