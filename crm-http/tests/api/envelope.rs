//! `POST /DynamoDBManager`: the operation envelope of the legacy API, without letting the caller
//! pick the table.

use std::sync::Arc;

use crm_memory::InMemoryCustomerRepository;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, named, spawn_app, spawn_app_with};

fn item(id: &str) -> Value {
    json!({"id": id, "firstName": "Bob", "lastName": "Builder", "address": "1 Yard Rd"})
}

async fn ok(app: &TestApp, body: Value) -> Value {
    let response = app.envelope(body).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

#[tokio::test]
async fn ping_is_pong_and_echo_returns_the_payload() {
    let app = spawn_app();
    assert_eq!(ok(&app, json!({"operation": "ping"})).await, json!("pong"));
    let payload = json!({"somekey1": "somevalue1", "somekey2": "somevalue2"});
    assert_eq!(
        ok(&app, json!({"operation": "echo", "payload": payload})).await,
        payload
    );
    assert_eq!(ok(&app, json!({"operation": "echo"})).await, Value::Null);
}

#[tokio::test]
async fn create_then_read_returns_the_item() {
    let app = spawn_app();
    let created = ok(
        &app,
        json!({"operation": "create", "tableName": "customers", "payload": {"Item": item("1")}}),
    )
    .await;
    assert_eq!(created["Item"]["id"], "1");
    assert_eq!(created["Item"]["address"], json!({"line1": "1 Yard Rd"}));
    let read = ok(
        &app,
        json!({"operation": "read", "payload": {"Key": {"id": "1"}}}),
    )
    .await;
    assert_eq!(read, created);
}

#[tokio::test]
async fn reading_a_missing_item_returns_an_empty_object() {
    let app = spawn_app();
    for id in ["nobody", "not a valid id"] {
        assert_eq!(
            ok(
                &app,
                json!({"operation": "read", "payload": {"Key": {"id": id}}})
            )
            .await,
            json!({})
        );
    }
}

#[tokio::test]
async fn a_duplicate_create_is_a_409() {
    let app = spawn_app();
    let create = json!({"operation": "create", "payload": {"Item": item("1")}});
    ok(&app, create.clone()).await;
    app.envelope(create).await.problem(409);
}

#[tokio::test]
async fn an_invalid_item_is_a_422() {
    let app = spawn_app();
    let response = app
        .envelope(json!({"operation": "create", "payload": {"Item": {"id": "1", "name": "Bob"}}}))
        .await;
    assert_eq!(response.invalid_fields(), ["name", "firstName", "lastName"]);
}

#[tokio::test]
async fn update_applies_set_assignments_and_returns_the_new_item() {
    let app = spawn_app();
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": item("1")}}),
    )
    .await;
    let updated = ok(
        &app,
        json!({"operation": "update", "payload": {
            "Key": {"id": "1"},
            "UpdateExpression": "SET #f = :f, email = :e, address = :a",
            "ExpressionAttributeNames": {"#f": "firstName"},
            "ExpressionAttributeValues": {":f": "Robert", ":e": "bob@example.com", ":a": "2 Site Ave"},
            "ReturnValues": "ALL_NEW"
        }}),
    )
    .await;
    let customer = &updated["Attributes"];
    assert_eq!(customer["firstName"], "Robert");
    assert_eq!(customer["email"], "bob@example.com");
    assert_eq!(customer["address"], json!({"line1": "2 Site Ave"}));
    assert_eq!(customer["version"], 2);
}

#[tokio::test]
async fn an_update_with_null_clears_an_optional_field() {
    let app = spawn_app();
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": item("1")}}),
    )
    .await;
    let updated = ok(
        &app,
        json!({"operation": "update", "payload": {"Key": {"id": "1"},
            "UpdateExpression": "SET address = :none", "ExpressionAttributeValues": {":none": null}}}),
    )
    .await;
    assert!(updated["Attributes"].get("address").is_none());
}

#[tokio::test]
async fn an_unsupported_update_expression_is_a_400_saying_what_is_supported() {
    let app = spawn_app();
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": item("1")}}),
    )
    .await;
    let problem = app
        .envelope(
            json!({"operation": "update", "payload": {"Key": {"id": "1"},
            "UpdateExpression": "REMOVE address", "ExpressionAttributeValues": {}}}),
        )
        .await
        .problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("SET <field> = :<value>"),
        "{problem}"
    );
}

#[tokio::test]
async fn an_update_of_the_id_or_a_field_that_is_not_a_customer_field_is_a_400_naming_the_supported_fields()
 {
    let app = spawn_app();
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": item("1")}}),
    )
    .await;
    for (expression, names, values) in [
        ("SET id = :i", json!({}), json!({":i": "2"})),
        ("SET number = :n", json!({}), json!({":n": 5})),
        (
            "SET id = :i, number = :n",
            json!({}),
            json!({":i": "2", ":n": 5}),
        ),
        ("SET #v = :v", json!({"#v": "version"}), json!({":v": 9})),
        (
            "SET firstName = :f, updatedAt = :u",
            json!({}),
            json!({":f": "A", ":u": "2020-01-01T00:00:00Z"}),
        ),
    ] {
        let problem = app
            .envelope(
                json!({"operation": "update", "payload": {"Key": {"id": "1"},
                "UpdateExpression": expression, "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values}}),
            )
            .await
            .problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:bad-request",
            "{expression}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("firstName, lastName, email, phone and address"),
            "{expression}: {problem}"
        );
    }
    let unchanged = ok(
        &app,
        json!({"operation": "read", "payload": {"Key": {"id": "1"}}}),
    )
    .await;
    assert_eq!(unchanged["Item"]["version"], 1);
}

#[tokio::test]
async fn setting_an_address_object_replaces_the_whole_address() {
    let app = spawn_app();
    let mut customer = item("1");
    customer["address"] = json!({"line1": "1 Yard Rd", "line2": "Unit 4", "city": "York", "postalCode": "YO1 7HH", "country": "GB"});
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": customer}}),
    )
    .await;
    for (spelling, line1) in [("address", "2 Site Ave"), ("Address", "3 Crane St")] {
        let updated = ok(
            &app,
            json!({"operation": "update", "payload": {"Key": {"id": "1"},
                "UpdateExpression": "SET #a = :a", "ExpressionAttributeNames": {"#a": spelling},
                "ExpressionAttributeValues": {":a": {"line1": line1, "region": "Yorkshire"}}}}),
        )
        .await;
        assert_eq!(
            updated["Attributes"]["address"],
            json!({"line1": line1, "region": "Yorkshire"}),
            "{spelling}: the old city, postcode, country and line2 are gone"
        );
    }
    let read = ok(
        &app,
        json!({"operation": "read", "payload": {"Key": {"id": "1"}}}),
    )
    .await;
    assert_eq!(
        read["Item"]["address"],
        json!({"line1": "3 Crane St", "region": "Yorkshire"})
    );
}

#[tokio::test]
async fn setting_an_address_object_without_line1_is_a_422_and_keeps_the_old_address() {
    let app = spawn_app();
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": item("1")}}),
    )
    .await;
    let response = app
        .envelope(
            json!({"operation": "update", "payload": {"Key": {"id": "1"},
            "UpdateExpression": "SET address = :a",
            "ExpressionAttributeValues": {":a": {"city": "Leeds"}}}}),
        )
        .await;
    assert_eq!(response.invalid_fields(), ["address.line1"]);
    let read = ok(
        &app,
        json!({"operation": "read", "payload": {"Key": {"id": "1"}}}),
    )
    .await;
    assert_eq!(read["Item"]["address"], json!({"line1": "1 Yard Rd"}));
}

#[tokio::test]
async fn an_envelope_that_is_not_json_is_a_400() {
    let app = spawn_app();
    for body in ["{", "", "operation=ping", "{\"operation\": \"ping\"}}"] {
        let problem = app
            .request(
                Method::POST,
                "/DynamoDBManager",
                &[("content-type", "application/json")],
                body,
            )
            .await
            .problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:malformed-json",
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn an_envelope_over_16_kib_is_a_413() {
    let app = spawn_app();
    let body = json!({"operation": "echo", "payload": {"blob": "x".repeat(16 * 1024)}});
    let problem = app.envelope(body).await.problem(413);
    assert_eq!(problem["type"], "urn:problem:crm:body-too-large");
}

#[tokio::test]
async fn update_and_delete_of_an_unknown_id_are_404() {
    let app = spawn_app();
    app.envelope(
        json!({"operation": "update", "payload": {"Key": {"id": "ghost"},
        "UpdateExpression": "SET firstName = :f", "ExpressionAttributeValues": {":f": "Boo"}}}),
    )
    .await
    .problem(404);
    app.envelope(json!({"operation": "delete", "payload": {"Key": {"id": "ghost"}}}))
        .await
        .problem(404);
    assert_eq!(
        ok(
            &app,
            json!({"operation": "read", "payload": {"Key": {"id": "ghost"}}})
        )
        .await,
        json!({})
    );
}

#[tokio::test]
async fn delete_removes_the_item() {
    let app = spawn_app();
    ok(
        &app,
        json!({"operation": "create", "payload": {"Item": item("1")}}),
    )
    .await;
    assert_eq!(
        ok(
            &app,
            json!({"operation": "delete", "payload": {"Key": {"id": "1"}}})
        )
        .await,
        json!({})
    );
    assert_eq!(
        ok(
            &app,
            json!({"operation": "read", "payload": {"Key": {"id": "1"}}})
        )
        .await,
        json!({})
    );
}

#[tokio::test]
async fn list_pages_through_every_item_with_last_evaluated_key() {
    let app = spawn_app();
    for i in 0..5 {
        app.create(named(&format!("c{i}"))).await;
    }
    let mut seen = Vec::new();
    let mut payload = json!({"Limit": 2});
    loop {
        let page = ok(
            &app,
            json!({"operation": "list", "payload": payload.clone()}),
        )
        .await;
        let items = page["Items"].as_array().unwrap();
        assert_eq!(page["Count"], items.len());
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page.get("LastEvaluatedKey") {
            Some(key) => payload = json!({"Limit": 2, "ExclusiveStartKey": key}),
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    let all = ok(&app, json!({"operation": "list", "payload": {}})).await;
    assert_eq!(all["Count"], 5);
    let big = ok(
        &app,
        json!({"operation": "list", "payload": {"Limit": 5000}}),
    )
    .await;
    assert_eq!(big["Count"], 5, "a Limit over 100 is served as 100");
    assert_eq!(ok(&app, json!({"operation": "list"})).await["Count"], 5);
}

#[tokio::test]
async fn list_arguments_out_of_shape_are_400() {
    let app = spawn_app();
    for payload in [
        json!({"Limit": 0}),
        json!({"Limit": "10"}),
        json!({"ExclusiveStartKey": {"id": "c1"}}),
        json!({"ExclusiveStartKey": {"cursor": "forged!"}}),
        json!({"ExclusiveStartKey": {"cursor": "Zm9yZ2Vk"}}),
        json!({"FilterExpression": "x"}),
    ] {
        app.envelope(json!({"operation": "list", "payload": payload.clone()}))
            .await
            .problem(400);
    }
}

#[tokio::test]
async fn an_unknown_or_missing_operation_is_a_400() {
    let app = spawn_app();
    for body in [
        json!({"operation": "scan"}),
        json!({"operation": "CREATE"}),
        json!({"operation": 1}),
        json!({"payload": {}}),
        json!({"operation": "ping", "table": "x"}),
        json!([]),
    ] {
        let problem = app.envelope(body.clone()).await.problem(400);
        assert_eq!(problem["type"], "urn:problem:crm:bad-request", "{body}");
    }
    let problem = app
        .envelope(json!({"operation": "drop"}))
        .await
        .problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("create, read, update, delete, list, echo, ping")
    );
}

#[tokio::test]
async fn malformed_payloads_are_400() {
    let app = spawn_app();
    for body in [
        json!({"operation": "create"}),
        json!({"operation": "create", "payload": {"Item": item("1"), "ConditionExpression": "x"}}),
        json!({"operation": "read", "payload": {"Key": "1"}}),
        json!({"operation": "read", "payload": {"Key": {"id": "1", "sk": "x"}}}),
        json!({"operation": "read", "payload": {"Key": {"id": 1}}}),
        json!({"operation": "delete", "payload": {}}),
        json!({"operation": "update", "payload": {"Key": {"id": "1"}}}),
    ] {
        app.envelope(body.clone()).await.problem(400);
    }
}

#[tokio::test]
async fn another_table_is_a_403_the_caller_never_picks_the_table() {
    let app = spawn_app();
    for operation in ["ping", "list", "create"] {
        let problem = app
            .envelope(json!({"operation": operation, "tableName": "lambda-apigateway", "payload": {"Item": item("1")}}))
            .await
            .problem(403);
        assert_eq!(problem["type"], "urn:problem:crm:forbidden-table");
    }
    app.envelope(json!({"operation": "ping", "tableName": 7}))
        .await
        .problem(400);
}

#[tokio::test]
async fn the_configured_table_name_is_the_one_accepted() {
    let app = spawn_app_with(
        &[
            ("CRM_TABLE_NAME", "crm-prod-customers"),
            ("AWS_REGION", "eu-west-1"),
        ],
        Arc::new(InMemoryCustomerRepository::new()),
    );
    assert_eq!(
        ok(
            &app,
            json!({"operation": "ping", "tableName": "crm-prod-customers"})
        )
        .await,
        json!("pong")
    );
    app.envelope(json!({"operation": "ping", "tableName": "customers"}))
        .await
        .problem(403);
}
