//! The Lambda entry points in process: real event shapes through `lambda_http`'s adapter, events it
//! cannot convert, and direct invocations of the envelope. One binary, so the crate links once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod direct;
mod events;
#[path = "../support/panicking.rs"]
mod panicking;
mod refusals;
mod support;
