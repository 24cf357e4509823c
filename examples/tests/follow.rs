//! The quickstart's event printer: one line per committed change, in commit order, ending when
//! the store is dropped; nothing for a refused write.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crm_domain::{CustomerPatch, CustomerService, NewCustomer};
use crm_examples::follow::print_events;
use crm_memory::InMemoryCustomerRepository;
use serde_json::{Value, json};

#[tokio::test]
async fn the_printer_writes_one_line_per_change_until_the_store_is_gone() {
    let store = Arc::new(InMemoryCustomerRepository::new());
    let mut out = Vec::new();
    let subscription = store.subscribe();
    let service = CustomerService::new(store);
    let ada = service
        .create(
            NewCustomer::from_json(&json!({"firstName": "Ada", "lastName": "Lovelace"})).unwrap(),
        )
        .await
        .unwrap();
    let patch = CustomerPatch::from_json(&json!({"lastName": "Byron"})).unwrap();
    service.update(ada.id(), &patch, None).await.unwrap();
    assert!(
        service
            .update(ada.id(), &patch, Some(ada.version()))
            .await
            .is_err()
    );
    service.delete(ada.id(), None).await.unwrap();
    drop(service);

    let printed = print_events(subscription, &mut out).await.unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line.strip_prefix("event: ").unwrap()).unwrap())
        .collect();
    assert_eq!(printed, 3);
    let told: Vec<(&str, u64)> = lines
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("customer.created", 1),
            ("customer.updated", 2),
            ("customer.deleted", 3)
        ]
    );
    assert_eq!(lines[1]["changedFields"], json!(["lastName"]));
}
