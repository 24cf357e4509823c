//! The Lambda entry points in process: real event shapes through `lambda_http`'s adapter, and
//! direct invocations of the envelope. One binary, so the crate links once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod direct;
mod events;
mod support;
