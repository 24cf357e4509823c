//! The customer service on the in-memory store: create, read, patch, list and delete, with the
//! store's change events printed as they happen (`event: {...}` lines).
//!
//! `cargo run --example quickstart`
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use crm_domain::CustomerService;
use crm_examples::follow::print_events;
use crm_memory::InMemoryCustomerRepository;

#[path = "shared.rs"]
mod shared;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let store = Arc::new(InMemoryCustomerRepository::new());
    // Subscribed before the first write, so every change of the tour is printed; the printer ends
    // when the store is dropped with the service.
    let printer = tokio::spawn(print_events(store.subscribe(), std::io::stdout()));
    let service = CustomerService::new(store);
    shared::tour(&service).await?;
    drop(service);
    let told = printer.await??;
    println!("{told} change events");
    Ok(())
}
