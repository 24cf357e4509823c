//! Listing stays correct when DynamoDB cuts a Scan at 1 MB: items of the largest size the domain
//! allows make DynamoDB return fewer items than asked for, and the walk still sees every customer
//! exactly once.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

mod support;

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{
    Cursor, Customer, CustomerId, CustomerRepository, NewCustomer, PageLimit, Timestamp,
};
use serde_json::json;

/// A customer as large as validation allows: every text at its limit, in 4-byte characters.
fn large_customer(i: usize) -> Customer {
    let text = |n: usize| "𝔸".repeat(n);
    let input = NewCustomer::from_json(&json!({
        "id": format!("large-{i:04}"),
        "firstName": text(100), "lastName": text(100), "phone": "+123456789012345",
        "address": {"line1": text(200), "line2": text(200), "city": text(200),
                    "region": text(200), "postalCode": text(200), "country": "DE"}
    }))
    .unwrap();
    Customer::create(input, CustomerId::generate(), Timestamp::now())
}

#[tokio::test]
async fn a_walk_over_pages_cut_at_one_megabyte_sees_every_customer_once() {
    let repo = support::fresh_repository().await;
    let customers: Vec<Customer> = (0..400).map(large_customer).collect();
    let report = repo.put_many(&customers).await.unwrap();
    assert_eq!(report.created, 400);

    // DynamoDB itself cuts a Scan of 300 such items short of 300.
    let raw = repo
        .client()
        .scan()
        .table_name(repo.table_name())
        .limit(300)
        .send()
        .await
        .unwrap();
    assert!(
        raw.count() < 300,
        "expected a 1 MB cut, got {} items",
        raw.count()
    );
    assert!(
        raw.last_evaluated_key()
            .is_some_and(|k| matches!(k.get("pk"), Some(AttributeValue::S(_))))
    );

    let expected: HashSet<CustomerId> = customers.iter().map(|c| c.id().clone()).collect();
    for size in [100, 37] {
        let mut seen = HashSet::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = repo
                .list(PageLimit::new(size).unwrap(), cursor.as_ref())
                .await
                .unwrap();
            for c in page.items {
                assert!(seen.insert(c.id().clone()), "seen twice");
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected, "page size {size}");
    }
}
