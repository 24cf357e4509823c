//! When DynamoDB cannot be reached or does not answer, every operation returns `Unavailable` within
//! the configured operation timeout (a bulk import, its report with every customer unconfirmed):
//! no hang, no panic.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::time::{Duration, Instant};

use crm_domain::{
    Customer, CustomerId, CustomerPatch, CustomerRepository, NewCustomer, PageLimit,
    RepositoryError, Timestamp,
};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_millis(400);

/// Generous: the bound only has to tell "gave up after its timeout" from "hung".
const GIVE_UP_WITHIN: Duration = Duration::from_secs(5);

async fn repository_at(endpoint: &str) -> DynamoCustomerRepository {
    let settings = DynamoSettings::new("customers", "us-east-1")
        .unwrap()
        .with_endpoint(endpoint)
        .with_local_credentials()
        .with_operation_timeout(TIMEOUT);
    DynamoCustomerRepository::connect(&settings).await
}

async fn assert_unavailable(repo: &DynamoCustomerRepository) {
    let id = CustomerId::parse("someone").unwrap();
    let customer = Customer::create(
        NewCustomer::from_json(
            &json!({"firstName": "A", "lastName": "B", "email": "a@example.com"}),
        )
        .unwrap(),
        CustomerId::generate(),
        Timestamp::now(),
    );
    let rename = CustomerPatch::from_json(&json!({"lastName": "C"})).unwrap();
    let new_email = CustomerPatch::from_json(&json!({"email": "b@example.com"})).unwrap();
    let started = Instant::now();
    let results = [
        repo.create(&customer).await.err(),
        repo.get(&id).await.err(),
        repo.find_by_email(customer.email().unwrap()).await.err(),
        repo.update(&id, &rename, None, Timestamp::now())
            .await
            .err(),
        repo.update(&id, &new_email, None, Timestamp::now())
            .await
            .err(),
        repo.delete(&id, None).await.err(),
        repo.list(&crm_domain::Listing::default(), PageLimit::DEFAULT, None)
            .await
            .err(),
    ];
    for result in results {
        assert!(
            matches!(
                result,
                Some(RepositoryError::Unavailable {
                    retry_after: Some(_),
                    ..
                })
            ),
            "{result:?}"
        );
    }
    // A bulk import does not fail: it reports every customer unconfirmed, to import again.
    let report = repo
        .put_many(std::slice::from_ref(&customer))
        .await
        .unwrap();
    assert_eq!(report.unconfirmed, [customer.id().clone()]);
    assert_eq!((report.created, report.rejected.len()), (0, 0));
    assert!(
        started.elapsed() < GIVE_UP_WITHIN * 8,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable_not_a_hang() {
    // Bind and drop a listener: the port is then closed. On 127.0.0.2, where no other test's
    // server binds (a port of 127.0.0.1, once dropped, could be taken by one running beside).
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let repo = repository_at(&format!("http://127.0.0.2:{port}")).await;
    assert_unavailable(&repo).await;
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_unavailable_after_the_timeout() {
    // Accepts connections and reads requests, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let repo = repository_at(&format!("http://{address}")).await;
    let started = Instant::now();
    let result = repo.get(&CustomerId::parse("someone").unwrap()).await;
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(RepositoryError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(
        waited >= TIMEOUT / 2,
        "gave up before any timeout: {waited:?}"
    );
    assert!(waited < GIVE_UP_WITHIN, "waited {waited:?}");
    assert_unavailable(&repo).await;
    silent.abort();
}
