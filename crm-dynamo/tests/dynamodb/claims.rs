//! The claims on emails heal around their customers: a claim that went missing (a bug, a manual
//! edit, a partial restore) never blocks its customer's delete or email change, and a claim that
//! names another customer is left alone while the customer's own operation goes through.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{
    Customer, CustomerId, CustomerPatch, CustomerRepository, NewCustomer, RepositoryError,
    Timestamp,
};
use crm_dynamo::DynamoCustomerRepository;
use serde_json::json;

use crate::support;

/// A repository on a fresh table, and a plain client on the same table to tamper with it.
async fn repository_and_table() -> (DynamoCustomerRepository, Client, String) {
    let settings = support::settings();
    let repository = support::repository_with(settings.clone()).await;
    let client = Client::from_conf(settings.sdk_config().await);
    (repository, client, settings.table_name().to_owned())
}

fn customer(id: &str, email: &str) -> Customer {
    Customer::create(
        NewCustomer::from_json(
            &json!({"firstName": "Ada", "lastName": "Lovelace", "email": email}),
        )
        .unwrap(),
        CustomerId::parse(id).unwrap(),
        Timestamp::now(),
    )
}

fn email_patch(email: &str) -> CustomerPatch {
    CustomerPatch::from_json(&json!({ "email": email })).unwrap()
}

/// Every claim item of the table, as `(pk, customerId)`.
async fn claims(client: &Client, table: &str) -> Vec<(String, String)> {
    let scan = client
        .scan()
        .table_name(table)
        .filter_expression("kind = :email")
        .expression_attribute_values(":email", AttributeValue::S("email".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let mut claims: Vec<(String, String)> = scan
        .items()
        .iter()
        .map(|item| {
            let text = |name: &str| item[name].as_s().unwrap().clone();
            (text("pk"), text("customerId"))
        })
        .collect();
    claims.sort();
    claims
}

/// Whom the claims of the table name, sorted.
async fn owners(client: &Client, table: &str) -> Vec<String> {
    let mut owners: Vec<String> = claims(client, table)
        .await
        .into_iter()
        .map(|(_, owner)| owner)
        .collect();
    owners.sort();
    owners
}

/// Deletes every claim item of the table.
async fn lose_every_claim(client: &Client, table: &str) {
    for (pk, _) in claims(client, table).await {
        client
            .delete_item()
            .table_name(table)
            .set_key(Some(HashMap::from([(
                "pk".to_owned(),
                AttributeValue::S(pk),
            )])))
            .send()
            .await
            .unwrap();
    }
}

/// Rewrites every claim item to name `owner`.
async fn give_every_claim_to(client: &Client, table: &str, owner: &str) {
    for (pk, _) in claims(client, table).await {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(HashMap::from([(
                "pk".to_owned(),
                AttributeValue::S(pk),
            )])))
            .update_expression("SET customerId = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_missing_claim_does_not_block_the_delete_of_its_customer() {
    let (repository, client, table) = repository_and_table().await;
    repository
        .create(&customer("ada", "ada@example.com"))
        .await
        .unwrap();
    lose_every_claim(&client, &table).await;

    let id = CustomerId::parse("ada").unwrap();
    repository.delete(&id, None).await.unwrap();
    assert!(repository.get(&id).await.unwrap().is_none());
    assert!(claims(&client, &table).await.is_empty());
    repository
        .create(&customer("grace", "ada@example.com"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_claim_does_not_block_an_email_change_or_clearing_the_email() {
    let (repository, client, table) = repository_and_table().await;
    repository
        .create(&customer("ada", "ada@example.com"))
        .await
        .unwrap();
    lose_every_claim(&client, &table).await;

    let id = CustomerId::parse("ada").unwrap();
    let changed = repository
        .update(
            &id,
            &email_patch("countess@example.com"),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(changed.email().unwrap().as_str(), "countess@example.com");
    assert_eq!(
        owners(&client, &table).await,
        ["ada"],
        "the new email is claimed"
    );
    assert!(matches!(
        repository
            .create(&customer("other", "COUNTESS@example.com"))
            .await,
        Err(RepositoryError::EmailTaken)
    ));
    repository
        .create(&customer("grace", "ada@example.com"))
        .await
        .unwrap();

    lose_every_claim(&client, &table).await;
    let cleared = repository
        .update(
            &id,
            &CustomerPatch::from_json(&json!({"email": null})).unwrap(),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(cleared.email().is_none());
}

#[tokio::test]
async fn a_claim_that_names_another_customer_is_left_alone_by_a_delete() {
    let (repository, client, table) = repository_and_table().await;
    repository
        .create(&customer("ada", "ada@example.com"))
        .await
        .unwrap();
    give_every_claim_to(&client, &table, "someone-else").await;

    let id = CustomerId::parse("ada").unwrap();
    repository.delete(&id, None).await.unwrap();
    assert!(repository.get(&id).await.unwrap().is_none());
    assert_eq!(
        owners(&client, &table).await,
        ["someone-else"],
        "another customer's claim is not ours to delete"
    );
}

#[tokio::test]
async fn a_claim_that_names_another_customer_is_left_alone_by_an_email_change() {
    let (repository, client, table) = repository_and_table().await;
    repository
        .create(&customer("ada", "ada@example.com"))
        .await
        .unwrap();
    give_every_claim_to(&client, &table, "someone-else").await;

    let id = CustomerId::parse("ada").unwrap();
    let changed = repository
        .update(
            &id,
            &email_patch("countess@example.com"),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(changed.email().unwrap().as_str(), "countess@example.com");
    assert_eq!(changed.version().get(), 2, "one change, one version");
    assert_eq!(owners(&client, &table).await, ["ada", "someone-else"]);
}

#[tokio::test]
async fn a_claim_that_names_another_customer_is_left_alone_when_the_email_is_cleared() {
    let (repository, client, table) = repository_and_table().await;
    repository
        .create(&customer("ada", "ada@example.com"))
        .await
        .unwrap();
    give_every_claim_to(&client, &table, "someone-else").await;

    let id = CustomerId::parse("ada").unwrap();
    let cleared = repository
        .update(
            &id,
            &CustomerPatch::from_json(&json!({"email": null})).unwrap(),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(cleared.email().is_none());
    assert_eq!(owners(&client, &table).await, ["someone-else"]);
}

#[tokio::test]
async fn a_taken_email_is_refused_as_taken_even_when_the_old_claim_names_another_customer() {
    let (repository, client, table) = repository_and_table().await;
    repository
        .create(&customer("ada", "ada@example.com"))
        .await
        .unwrap();
    give_every_claim_to(&client, &table, "someone-else").await;
    repository
        .create(&customer("grace", "grace@example.com"))
        .await
        .unwrap();

    let id = CustomerId::parse("ada").unwrap();
    let refused = repository
        .update(
            &id,
            &email_patch("grace@example.com"),
            None,
            Timestamp::now(),
        )
        .await;
    assert!(
        matches!(refused, Err(RepositoryError::EmailTaken)),
        "{refused:?}"
    );
    let unchanged = repository.get(&id).await.unwrap().unwrap();
    assert_eq!(unchanged.email().unwrap().as_str(), "ada@example.com");
    assert_eq!(unchanged.version().get(), 1);
    assert_eq!(owners(&client, &table).await, ["grace", "someone-else"]);
}
