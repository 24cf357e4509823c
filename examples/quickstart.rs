//! The customer service on the in-memory store: create, read, patch, list and delete.
//!
//! `cargo run --example quickstart`
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use crm_domain::CustomerService;
use crm_memory::InMemoryCustomerRepository;

#[path = "shared.rs"]
mod shared;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = CustomerService::new(Arc::new(InMemoryCustomerRepository::new()));
    shared::tour(&service).await
}
