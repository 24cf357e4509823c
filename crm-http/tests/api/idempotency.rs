//! `Idempotency-Key`: a write sent again with the same key is answered with the first one's
//! outcome, never written twice; the key cannot be reused for another request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use crm_domain::idempotency::{KeyLease, KeyState, KeyedWrite, Written};
use crm_domain::{
    BulkReport, Change, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository, Email,
    Idempotency, Listing, Page, PageLimit, RepositoryError, Timestamp, Version,
};
use crm_memory::InMemoryCustomerRepository;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, ada, named, spawn_app, spawn_app_with};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn post_keyed(app: &TestApp, key: &str, body: &Value) -> crate::helpers::TestResponse {
    app.request(
        Method::POST,
        "/customers",
        &[JSON, ("idempotency-key", key)],
        body.to_string(),
    )
    .await
}

async fn count(app: &TestApp) -> usize {
    app.get("/customers?limit=100").await.json()["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_create_sent_again_with_its_key_is_answered_as_the_first_without_a_second_customer() {
    let app = spawn_app();
    // No id: without the key, a second send would create a second customer.
    let first = post_keyed(&app, "order-7f3a", &ada()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = post_keyed(&app, "order-7f3a", &ada()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    // The record holds no customer field: the replay names the customer and its version.
    assert_eq!(
        again.json(),
        json!({"id": first.json()["id"], "version": 1})
    );
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn a_key_is_the_same_bare_or_as_a_structured_field_string() {
    let app = spawn_app();
    let first = post_keyed(&app, "k-1", &named("quoted")).await;
    let again = post_keyed(&app, "\"k-1\"", &named("quoted")).await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("location"), first.header("location"));
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_a_422_and_writes_nothing() {
    let app = spawn_app();
    post_keyed(&app, "k-2", &named("first")).await;
    let other_body = post_keyed(&app, "k-2", &named("second")).await;
    let problem = other_body.problem(422);
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-reused")
    );
    assert_eq!(
        app.get("/customers/second").await.status,
        StatusCode::NOT_FOUND
    );
    // Another route with the same key is another request too.
    let other_route = app
        .request(
            Method::DELETE,
            "/customers/first",
            &[("idempotency-key", "k-2")],
            Body::empty(),
        )
        .await;
    other_route.problem(422);
    assert_eq!(app.get("/customers/first").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_invalid_key_is_a_400_that_quotes_nothing_of_it() {
    let app = spawn_app();
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str(), "\"\""] {
        let response = post_keyed(&app, key, &named("never")).await;
        let problem = response.problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key")
        );
        if !key.is_empty() {
            assert!(!problem.to_string().contains(key), "{problem}");
        }
    }
    let two = app
        .request(
            Method::POST,
            "/customers",
            &[JSON, ("idempotency-key", "a"), ("idempotency-key", "b")],
            named("never").to_string(),
        )
        .await;
    two.problem(400);
    let not_ascii = http::Request::builder()
        .method(Method::POST)
        .uri("/customers")
        .header("content-type", "application/json")
        .header(
            "idempotency-key",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        )
        .body(Body::from(named("never").to_string()))
        .unwrap();
    app.send(not_ascii).await.problem(400);
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn a_patch_sent_again_with_its_key_is_applied_once() {
    let app = spawn_app();
    app.create(named("p")).await;
    let patch = || {
        app.request(
            Method::PATCH,
            "/customers/p",
            &[JSON, ("idempotency-key", "patch-1")],
            json!({"firstName": "Augusta"}).to_string(),
        )
    };
    let first = patch().await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["version"], 2);
    let again = patch().await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.json()["version"], 2, "not applied twice");
    assert_eq!(app.get("/customers/p").await.json()["version"], 2);
}

#[tokio::test]
async fn a_path_percent_encoded_is_the_same_request_for_the_key() {
    let app = spawn_app();
    app.create(named("ka")).await;
    let patch = |path: &'static str| {
        app.request(
            Method::PATCH,
            path,
            &[JSON, ("idempotency-key", "patch-encoded")],
            json!({"firstName": "Augusta"}).to_string(),
        )
    };
    let first = patch("/customers/%6Ba").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["id"], "ka", "the router decodes the path");
    let again = patch("/customers/ka").await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the same request, not a reuse of the key"
    );
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(app.get("/customers/ka").await.json()["version"], 2);
}

#[tokio::test]
async fn a_replay_after_the_customer_changed_names_only_the_first_outcome() {
    let app = spawn_app();
    let first = post_keyed(&app, "k-3", &named("moved")).await;
    app.patch_json("/customers/moved", &json!({"lastName": "Byron"}), None)
        .await;
    let again = post_keyed(&app, "k-3", &named("moved")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.json(), json!({"id": "moved", "version": 1}));
}

#[tokio::test]
async fn a_delete_sent_again_with_its_key_is_a_204_not_a_404() {
    let app = spawn_app();
    app.create(named("d")).await;
    let delete = || {
        app.request(
            Method::DELETE,
            "/customers/d",
            &[("idempotency-key", "delete-1")],
            Body::empty(),
        )
    };
    assert_eq!(delete().await.status, StatusCode::NO_CONTENT);
    let again = delete().await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(again.header("idempotent-replayed"), "true");
    // Without the key it is another request: the customer is gone.
    assert_eq!(
        app.delete("/customers/d", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_refused_write_records_nothing_and_runs_again_with_the_same_key() {
    let app = spawn_app();
    app.create(named("taken")).await;
    post_keyed(&app, "k-4", &named("taken")).await.problem(409);
    app.delete("/customers/taken", None).await;
    let again = post_keyed(&app, "k-4", &named("taken")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(again.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn the_compatibility_writes_honour_the_key() {
    let app = spawn_app();
    let create = || {
        app.request(
            Method::POST,
            "/Customers",
            &[JSON, ("idempotency-key", "legacy-1")],
            json!({"firstName": "Ada", "lastName": "Lovelace", "address": "1 Main St"}).to_string(),
        )
    };
    let first = create().await;
    assert_eq!(first.status, StatusCode::OK);
    let again = create().await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.json(), json!({"id": first.json()["id"]}));
    assert_eq!(count(&app).await, 1);

    let envelope =
        json!({"operation": "create", "payload": {"Item": {"firstName": "G", "lastName": "H"}}});
    let send = || {
        app.request(
            Method::POST,
            "/DynamoDBManager",
            &[JSON, ("idempotency-key", "envelope-1")],
            envelope.to_string(),
        )
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::OK);
    let again = send().await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(
        again.json(),
        json!({"Item": {"id": first.json()["Item"]["id"], "version": 1}})
    );
    assert_eq!(count(&app).await, 2);
}

#[tokio::test]
async fn a_request_sent_again_while_the_first_runs_is_a_409_with_retry_after() {
    let store = Arc::new(SlowKeyedWrites(InMemoryCustomerRepository::new()));
    let app = spawn_app_with(&[], store);
    let first = {
        let app = app.clone();
        tokio::spawn(async move { post_keyed(&app, "slow-1", &named("slow")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = post_keyed(&app, "slow-1", &named("slow")).await;
    let problem = second.problem(409);
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-in-use")
    );
    assert_eq!(second.header("retry-after"), "1");
    assert_eq!(first.await.unwrap().status, StatusCode::CREATED);
    let third = post_keyed(&app, "slow-1", &named("slow")).await;
    assert_eq!(third.header("idempotent-replayed"), "true");
}

/// The in-memory store, with keyed writes that take 500 ms: a request that runs long.
struct SlowKeyedWrites(InMemoryCustomerRepository);

#[async_trait]
impl CustomerRepository for SlowKeyedWrites {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.0.create(customer).await
    }
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        self.0.get(id).await
    }
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        self.0.find_by_email(email).await
    }
    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        self.0.update(id, patch, expected, now).await
    }
    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.0.delete(id, expected).await
    }
    async fn list<'c>(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.0.list(listing, limit, cursor).await
    }
    async fn changes<'c>(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Change>, RepositoryError> {
        self.0.changes(since, limit, cursor).await
    }
    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError> {
        self.0.put_many(customers).await
    }
    async fn begin_keyed(
        &self,
        idempotency: &Idempotency,
        hold: Duration,
    ) -> Result<KeyState, RepositoryError> {
        self.0.begin_keyed(idempotency, hold).await
    }
    async fn write_keyed(
        &self,
        write: &KeyedWrite,
        lease: &KeyLease,
    ) -> Result<Written, RepositoryError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.0.write_keyed(write, lease).await
    }
    async fn release_key(&self, lease: &KeyLease) -> Result<(), RepositoryError> {
        self.0.release_key(lease).await
    }
}

#[tokio::test]
async fn a_keyed_write_with_a_list_of_tags_is_answered_from_its_record_when_sent_again() {
    let app = spawn_app();
    app.create(named("tags")).await;
    let patch = || {
        app.request(
            Method::PATCH,
            "/customers/tags",
            &[
                JSON,
                ("if-match", "\"1\", \"9\""),
                ("idempotency-key", "tags-patch"),
            ],
            json!({"firstName": "Augusta"}).to_string(),
        )
    };
    assert_eq!(patch().await.json()["version"], 2);
    // The list no longer names the current version (2): this request's own first send moved it.
    let again = patch().await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.json()["version"], 2);

    let delete = || {
        app.request(
            Method::DELETE,
            "/customers/tags",
            &[
                ("if-match", "\"2\", \"9\""),
                ("idempotency-key", "tags-delete"),
            ],
            Body::empty(),
        )
    };
    assert_eq!(delete().await.status, StatusCode::NO_CONTENT);
    let again = delete().await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(again.header("idempotent-replayed"), "true");

    // A list that never matched, with a key never used: the refusal, and the key stays free.
    app.create(named("stale")).await;
    let stale = app
        .request(
            Method::DELETE,
            "/customers/stale",
            &[
                ("if-match", "\"7\", \"9\""),
                ("idempotency-key", "stale-delete"),
            ],
            Body::empty(),
        )
        .await;
    stale.problem(412);
    let fresh = app
        .request(
            Method::DELETE,
            "/customers/stale",
            &[
                ("if-match", "\"1\", \"9\""),
                ("idempotency-key", "stale-delete"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(
        fresh.status,
        StatusCode::NO_CONTENT,
        "the key was left free"
    );
}

#[tokio::test]
async fn a_replay_never_shows_a_later_customer_with_the_same_id_and_version() {
    let app = spawn_app();
    let alice = json!({"id": "x1", "firstName": "Alice", "lastName": "A"});
    post_keyed(&app, "alice-create", &alice).await;
    app.delete("/customers/x1", None).await;
    app.create(
        json!({"id": "x1", "firstName": "Bob", "lastName": "B", "email": "bob@example.com"}),
    )
    .await;
    let again = post_keyed(&app, "alice-create", &alice).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.json(), json!({"id": "x1", "version": 1}));
}
