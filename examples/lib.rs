//! Runnable examples of crm: `cargo run --example quickstart`, `cargo run --example dynamodb`.
