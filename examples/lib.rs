//! Runnable examples of crm: `cargo run --example quickstart`, `cargo run --example dynamodb`,
//! `cargo run --example embedding`; and the host application of the embedding example, shared with
//! its test (`tests/embedding.rs`).

pub mod follow;
pub mod host;
