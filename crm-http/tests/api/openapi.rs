//! The OpenAPI document and the router agree on paths and methods.

use axum::body::Body;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_other_method_is_a_405_with_the_documented_allow()
 {
    let app = spawn_app();
    let document: Value = serde_json::from_str(crm_http::openapi::DOCUMENT).unwrap();
    for (template, item) in document["paths"].as_object().unwrap() {
        let path = template.replace("{id}", "some-id");
        let documented: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| !item[*m].is_null())
            .collect();
        assert!(!documented.is_empty(), "{template}");
        for method in METHODS {
            let response = app
                .request(
                    Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
                    &path,
                    &[],
                    Body::empty(),
                )
                .await;
            if documented.contains(&method) {
                assert_ne!(
                    response.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template}"
                );
                let not_found_route = response.status == StatusCode::NOT_FOUND
                    && response.json()["type"] == "urn:problem:crm:no-such-route";
                assert!(!not_found_route, "{method} {template} is not routed");
            } else {
                assert_eq!(
                    response.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template}"
                );
                let mut allow: Vec<String> = response
                    .header("allow")
                    .split(',')
                    .map(|m| m.trim().to_ascii_lowercase())
                    .filter(|m| m != "head")
                    .collect();
                allow.sort();
                let mut expected: Vec<String> =
                    documented.iter().map(|m| (*m).to_owned()).collect();
                expected.sort();
                assert_eq!(allow, expected, "{template}");
            }
        }
    }
}

#[test]
fn every_operation_has_an_id_and_documents_its_errors_as_problems() {
    let document: Value = serde_json::from_str(crm_http::openapi::DOCUMENT).unwrap();
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let operation = &item[method];
            if operation.is_null() {
                continue;
            }
            assert!(operation["operationId"].is_string(), "{method} {template}");
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = response["$ref"].as_str().unwrap_or_default();
                    assert!(
                        reference.starts_with("#/components/responses/"),
                        "{method} {template} {status}"
                    );
                }
            }
        }
    }
}
