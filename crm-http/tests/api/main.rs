//! Router tests without a socket: every route and status of the HTTP API, the compatibility routes,
//! the logs and the OpenAPI document. One binary, so the crate links once. (Embedding in a host
//! application is tested with the example that shows it, `examples/tests/embedding.rs`.)

// Helpers outside `#[test]` functions fail loudly too: that is what a test harness is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch;
mod compat;
mod customers;
mod envelope;
mod finding;
mod helpers;
mod idempotency;
#[path = "../support/log_buffer.rs"]
mod log_buffer;
mod logs;
mod openapi;
mod resilience;
