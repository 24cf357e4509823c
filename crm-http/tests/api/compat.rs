//! `/Customers`: the `SimpleCRMAPI` contract, minus its bugs.

use std::sync::Arc;

use axum::body::Body;
use crm_memory::InMemoryCustomerRepository;
use http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{named, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_legacy_customer_is_created_and_listed_with_its_address_as_given() {
    let app = spawn_app();
    let seed = json!({"id": "1", "firstName": "Kai", "lastName": "Liu", "address": "1 George St, Sydney NSW 2000"});
    let created = app.send_json(Method::POST, "/Customers", &seed).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.json(), seed);
    let listed = app.get("/Customers").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json(), json!([seed]));
    let full = app.get("/customers/1").await.json();
    assert_eq!(
        full["address"],
        json!({"line1": "1 George St, Sydney NSW 2000"})
    );
}

#[tokio::test]
async fn the_capitalised_address_and_an_address_object_are_accepted() {
    let app = spawn_app();
    let capital = json!({"id": "a", "firstName": "A", "lastName": "B", "Address": "2 Pitt St"});
    assert_eq!(
        app.send_json(Method::POST, "/Customers", &capital)
            .await
            .json()["address"],
        "2 Pitt St"
    );
    let object = json!({"id": "b", "firstName": "A", "lastName": "B",
                        "address": {"line1": "3 King St", "city": "Sydney", "country": "au"}});
    assert_eq!(
        app.send_json(Method::POST, "/Customers", &object)
            .await
            .json()["address"],
        "3 King St, Sydney, AU"
    );
    let both =
        json!({"id": "c", "firstName": "A", "lastName": "B", "address": "x", "Address": "y"});
    let response = app.send_json(Method::POST, "/Customers", &both).await;
    assert_eq!(response.invalid_fields(), ["Address"]);
}

#[tokio::test]
async fn a_customer_without_address_is_listed_without_one() {
    let app = spawn_app();
    app.create(named("plain")).await;
    assert_eq!(
        app.get("/Customers").await.json(),
        json!([{"id": "plain", "firstName": "Grace", "lastName": "Hopper"}])
    );
}

#[tokio::test]
async fn the_body_is_read_as_json_whatever_the_content_type() {
    let app = spawn_app();
    let body = json!({"id": "curl", "firstName": "A", "lastName": "B"}).to_string();
    let response = app
        .request(
            Method::POST,
            "/Customers",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn a_post_without_an_id_gets_one() {
    let app = spawn_app();
    let response = app
        .send_json(
            Method::POST,
            "/Customers",
            &json!({"firstName": "A", "lastName": "B"}),
        )
        .await;
    assert_eq!(response.json()["id"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn a_duplicate_id_is_a_409_and_never_overwrites() {
    let app = spawn_app();
    let first = json!({"id": "1", "firstName": "Kai", "lastName": "Liu", "address": "x"});
    app.send_json(Method::POST, "/Customers", &first).await;
    let second = json!({"id": "1", "firstName": "Someone", "lastName": "Else", "address": "y"});
    app.send_json(Method::POST, "/Customers", &second)
        .await
        .problem(409);
    assert_eq!(app.get("/Customers").await.json(), json!([first]));
}

#[tokio::test]
async fn invalid_input_is_a_422_naming_the_fields_as_the_client_spelled_them() {
    let app = spawn_app();
    let response = app
        .send_json(
            Method::POST,
            "/Customers",
            &json!({"id": "bad id", "firstName": "", "Address": "", "extra": 1}),
        )
        .await;
    assert_eq!(
        response.invalid_fields(),
        ["extra", "id", "firstName", "lastName", "Address"]
    );
    let long = json!({"id": "x", "firstName": "A", "lastName": "B", "address": "a".repeat(201)});
    assert_eq!(
        app.send_json(Method::POST, "/Customers", &long)
            .await
            .invalid_fields(),
        ["address"]
    );
}

#[tokio::test]
async fn malformed_json_and_huge_bodies_are_problems() {
    let app = spawn_app();
    app.request(Method::POST, "/Customers", &[], "{")
        .await
        .problem(400);
    app.request(Method::POST, "/Customers", &[], "x".repeat(20_000))
        .await
        .problem(413);
    app.request(Method::DELETE, "/Customers", &[], Body::empty())
        .await
        .problem(400);
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_given() {
    let app = spawn_app();
    let seed = json!({"id": "1", "firstName": "Kai", "lastName": "Liu", "address": "1 George St"});
    app.send_json(Method::POST, "/Customers", &seed).await;
    let response = app
        .send_json(
            Method::PATCH,
            "/Customers",
            &json!({"id": "1", "lastName": "Lee"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!({"id": "1", "firstName": "Kai", "lastName": "Lee", "address": "1 George St"})
    );
}

#[tokio::test]
async fn a_patched_one_line_address_replaces_the_whole_address() {
    let app = spawn_app();
    app.create(json!({"id": "p", "firstName": "A", "lastName": "B",
                      "address": {"line1": "1 Old Rd", "city": "Oldtown", "country": "GB"}}))
        .await;
    let response = app
        .send_json(
            Method::PATCH,
            "/Customers",
            &json!({"id": "p", "Address": "9 New Rd"}),
        )
        .await;
    assert_eq!(response.json()["address"], "9 New Rd");
    assert_eq!(
        app.get("/customers/p").await.json()["address"],
        json!({"line1": "9 New Rd"})
    );
}

#[tokio::test]
async fn a_patch_of_an_unknown_id_is_a_404_and_creates_nothing() {
    let app = spawn_app();
    app.send_json(
        Method::PATCH,
        "/Customers",
        &json!({"id": "ghost", "firstName": "Boo"}),
    )
    .await
    .problem(404);
    assert_eq!(app.get("/Customers").await.json(), json!([]));
}

#[tokio::test]
async fn a_patch_or_delete_without_an_id_is_a_422() {
    let app = spawn_app();
    for method in [Method::PATCH, Method::DELETE] {
        let response = app
            .send_json(method.clone(), "/Customers", &json!({"firstName": "A"}))
            .await;
        assert_eq!(response.invalid_fields(), ["id"], "{method}");
        let response = app
            .send_json(method.clone(), "/Customers", &json!({"id": 5}))
            .await;
        assert_eq!(response.invalid_fields(), ["id"], "{method}");
        let response = app
            .send_json(method.clone(), "/Customers", &json!(["id"]))
            .await;
        assert_eq!(response.invalid_fields(), ["$"], "{method}");
    }
}

#[tokio::test]
async fn a_delete_by_body_id_is_a_200_and_an_unknown_id_a_404() {
    let app = spawn_app();
    app.create(named("bye")).await;
    let response = app
        .send_json(
            Method::DELETE,
            "/Customers",
            &json!({"id": "bye", "firstName": "ignored"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({"id": "bye"}));
    app.send_json(Method::DELETE, "/Customers", &json!({"id": "bye"}))
        .await
        .problem(404);
}

#[tokio::test]
async fn the_list_walks_every_page_up_to_the_cap() {
    let app = spawn_app_with(
        &[("CRM_COMPAT_LIST_CAP", "250")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    for i in 0..250 {
        app.create(named(&format!("c{i:03}"))).await;
    }
    let listed = app.get("/Customers").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 250);
}

#[tokio::test]
async fn past_the_cap_the_list_is_a_problem_pointing_to_the_paginated_route() {
    let app = spawn_app_with(
        &[("CRM_COMPAT_LIST_CAP", "3")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    for i in 0..4 {
        app.create(named(&format!("c{i}"))).await;
    }
    let problem = app.get("/Customers").await.problem(400);
    assert_eq!(problem["type"], "urn:problem:crm:list-too-long");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("/customers?limit="),
        "{problem}"
    );
}

#[tokio::test]
async fn past_what_a_lambda_response_can_carry_the_list_is_the_same_problem_whatever_the_cap() {
    let app = spawn_app_with(
        &[("CRM_COMPAT_LIST_CAP", "100000")],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    // Customers as large as validation allows, of quotes, which JSON escapes and a Lambda
    // response, holding the body as a string, escapes again: about 5 KB each where they travel.
    let quotes = |n: usize| "\"".repeat(n);
    for i in 0..1200 {
        let input = crm_domain::NewCustomer::from_json(&json!({
            "id": format!("big-{i:04}"),
            "firstName": quotes(100),
            "lastName": quotes(100),
            "address": {
                "line1": quotes(200), "line2": quotes(200), "city": quotes(200),
                "region": quotes(200), "postalCode": quotes(200), "country": "GB"
            }
        }))
        .unwrap();
        app.state.service().create(input).await.unwrap();
    }
    let problem = app.get("/Customers").await.problem(400);
    assert_eq!(problem["type"], "urn:problem:crm:list-too-long");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("bytes") && detail.contains("/customers?limit="),
        "{problem}"
    );
}
