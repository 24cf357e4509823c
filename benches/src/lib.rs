//! Benchmarks and harnesses of `crm`: criterion benches in `benches/`, and the data they share.

pub mod store;

use crm_domain::{Customer, CustomerId, NewCustomer, Timestamp};
use serde_json::{Value, json};

/// A customer input with every field filled, as a client would send it.
pub fn full_customer_json(i: usize) -> Value {
    json!({
        "id": format!("customer-{i:08}"),
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": format!("ada.{i}@example.com"),
        "phone": "+442071234567",
        "address": {
            "line1": "12 St James's Square", "line2": "Flat 1", "city": "London",
            "region": "Greater London", "postalCode": "SW1Y 4JH", "country": "GB"
        }
    })
}

/// The customer the service would make from [`full_customer_json`].
///
/// # Panics
/// Never: the input is valid.
pub fn full_customer(i: usize) -> Customer {
    let input = NewCustomer::from_json(&full_customer_json(i)).unwrap_or_else(|e| panic!("{e}"));
    Customer::create(input, CustomerId::generate(), Timestamp::now())
}
