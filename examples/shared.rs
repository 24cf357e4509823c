//! The walk-through both examples run: the same calls, whatever the store.

use crm_domain::{CustomerPatch, CustomerService, Listing, NewCustomer, PageLimit};
use serde_json::json;

/// Creates, reads, patches, lists and deletes customers, printing what happens.
pub(crate) async fn tour(service: &CustomerService) -> anyhow::Result<()> {
    let ada = service
        .create(NewCustomer::from_json(&json!({
            "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
            "address": {"line1": "12 St James's Square", "city": "London", "country": "GB"}
        }))?)
        .await?;
    println!("created {} at version {}", ada.id(), ada.version());

    let grace = service
        .create(NewCustomer::from_json(&json!({
            "id": "grace", "firstName": "Grace", "lastName": "Hopper", "phone": "+12025550123"
        }))?)
        .await?;
    println!("created {} (id given by the caller)", grace.id());

    let taken = service
        .create(NewCustomer::from_json(&json!({
            "firstName": "Someone", "lastName": "Else", "email": "ADA@example.com"
        }))?)
        .await;
    println!(
        "a second customer with Ada's email (other case): {}",
        refusal(&taken)
    );

    let invalid =
        NewCustomer::from_json(&json!({"firstName": "", "email": "nope", "Address": "x"}));
    println!(
        "an invalid input reports every field: {}",
        refusal(&invalid)
    );

    let read = service.get(ada.id()).await?;
    println!(
        "read {} back: version {}, updated at {}",
        read.id(),
        read.version(),
        read.updated_at()
    );

    let patch = CustomerPatch::from_json(
        &json!({"phone": "+442071234567", "address": {"city": null, "postalCode": "SW1Y 4JH"}}),
    )?;
    let patched = service
        .update(ada.id(), &patch, Some(read.version()))
        .await?;
    println!(
        "patched {}: version {} (updated at {})",
        patched.id(),
        patched.version(),
        patched.updated_at()
    );

    let stale = service.update(ada.id(), &patch, Some(read.version())).await;
    println!("the same patch at the old version: {}", refusal(&stale));

    let page = service
        .list(&Listing::default(), PageLimit::new(1)?, None)
        .await?;
    println!(
        "first page of 1: {} item(s), next cursor present: {}",
        page.items.len(),
        page.next_cursor.is_some()
    );
    let rest = service
        .list(
            &Listing::default(),
            PageLimit::DEFAULT,
            page.next_cursor.as_ref(),
        )
        .await?;
    println!(
        "next page: {} item(s), last page: {}",
        rest.items.len(),
        rest.next_cursor.is_none()
    );

    let found = service
        .find_by_email(&crm_domain::Email::parse("Ada@Example.com")?)
        .await?;
    println!(
        "lookup by email finds {:?}",
        found.map(|c| c.id().to_string())
    );

    service.delete(ada.id(), Some(patched.version())).await?;
    service.delete(grace.id(), None).await?;
    println!(
        "deleted both; reading Ada again: {}",
        refusal(&service.get(ada.id()).await)
    );
    Ok(())
}

/// What an operation that should be refused answered.
fn refusal<T, E: std::fmt::Display>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => "accepted (unexpectedly)".to_owned(),
        Err(error) => format!("refused: {error}"),
    }
}
