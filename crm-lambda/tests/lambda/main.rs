//! The Lambda entry points: real event shapes through `lambda_http`'s adapter, events it cannot
//! convert, and direct invocations of the envelope, in process; the events function's bootstrap
//! under the fake Runtime API with a fake `EventBridge`. One binary, so the crate links once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod direct;
#[allow(dead_code)]
#[path = "../support/emf.rs"]
mod emf;
#[path = "../support/eventbridge.rs"]
mod eventbridge;
mod events;
#[path = "../support/fake_runtime.rs"]
mod fake_runtime;
#[path = "../support/panicking.rs"]
mod panicking;
mod refusals;
mod stream;
mod support;
