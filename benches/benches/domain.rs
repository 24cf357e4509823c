//! Validation of a customer, and its conversions to JSON and to a DynamoDB item.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use crm_benches::{full_customer, full_customer_json};
use crm_domain::{Customer, NewCustomer};

fn validation(c: &mut Criterion) {
    let input = full_customer_json(1);
    c.bench_function("validate a full customer (NewCustomer::from_json)", |b| {
        b.iter(|| NewCustomer::from_json(black_box(&input)));
    });
    let text = input.to_string();
    c.bench_function("parse and validate a full customer from bytes", |b| {
        b.iter(|| {
            let value: serde_json::Value =
                serde_json::from_str(black_box(&text)).unwrap_or_default();
            NewCustomer::from_json(&value)
        });
    });
}

fn conversions(c: &mut Criterion) {
    let customer = full_customer(1);
    let json = serde_json::to_string(&customer).unwrap_or_default();
    c.bench_function("customer to JSON", |b| {
        b.iter(|| serde_json::to_string(black_box(&customer)));
    });
    c.bench_function("customer from JSON", |b| {
        b.iter(|| serde_json::from_str::<Customer>(black_box(&json)));
    });
    let item = crm_dynamo::items::to_item(&customer).unwrap_or_default();
    c.bench_function("customer to DynamoDB item", |b| {
        b.iter(|| crm_dynamo::items::to_item(black_box(&customer)));
    });
    c.bench_function("customer from DynamoDB item", |b| {
        b.iter(|| crm_dynamo::items::from_item(black_box(item.clone())));
    });
}

criterion_group!(benches, validation, conversions);
criterion_main!(benches);
