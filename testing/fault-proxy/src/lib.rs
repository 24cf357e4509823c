//! Faults between the AWS SDK and DynamoDB Local, for tests that prove exact outcomes.
//!
//! The hard case for a client of DynamoDB is not a request that fails: it is a write that
//! DynamoDB *applied* whose reply never arrived (the connection dropped, the attempt timed out).
//! The SDK then reports an error, or retries a write that already happened, and a repository that
//! answers "failed" is wrong. Proving that the repository still answers such writes with their
//! real outcome needs those faults on demand, on exactly the request a test chooses. DynamoDB
//! Local cannot do that, and mocking the SDK would not show what the SDK really does; so this
//! crate puts a small HTTP proxy between the two.
//!
//! # Design
//!
//! [`FaultProxy`] listens on `127.0.0.1:<random port>`; tests point the SDK's endpoint at it.
//! DynamoDB's protocol is HTTP/1.1 `POST /` with the operation in the `x-amz-target` header
//! (`DynamoDB_20120810.PutItem`) and a JSON body, over keep-alive connections, so the proxy:
//!
//! - serves each client connection with hyper's HTTP/1 server and gives it one upstream
//!   connection of its own (opened on first use, reopened when DynamoDB Local closed it while
//!   idle): a fault that closes the client's connection then affects nothing else;
//! - reads the operation from `x-amz-target` and decides the fault *before* forwarding: a
//!   one-shot fault queued by [`FaultProxy::inject_next`] for that operation first, else the
//!   random [`Policy`];
//! - buffers whole bodies both ways (DynamoDB's are small), so a reply is complete, and the
//!   write surely applied, before the proxy decides to lose it;
//! - loses a reply by failing the service future: hyper 1 then closes the connection without
//!   writing a response (its HTTP/1 dispatcher turns a service error into a connection error),
//!   which the client sees as a connection closed before any reply.
//!
//! Three faults cover what a client can observe (see [`Fault`]): the reply is lost after the
//! write applied ([`Fault::DropReply`]), it comes too late ([`Fault::DelayReply`], the SDK's
//! attempt timeout fires first), or the request never reached DynamoDB ([`Fault::Reset`]).
//! Random faults come from a seeded `SplitMix64`, not from an entropy source, so a failing run
//! can be replayed with its seed. [`FaultProxy::set_outage`] refuses every request (and loses the
//! replies of those already forwarded), and [`dynamodb_local::LocalDynamo`] crashes a real
//! DynamoDB Local (SIGKILL) and restarts it on the same data, for the phases where the server
//! itself is down. Together, with [`FaultProxy::idle`] between them, they crash the server at a
//! quiet moment: DynamoDB Local killed inside a transaction can keep part of it, which DynamoDB
//! never does, so a test that holds the store to DynamoDB's contract kills it between requests.
//!
//! Only `tokio`, `hyper`, `hyper-util` and `http-body-util`, all already in the workspace, are
//! used: this crate is test support and must not grow the dependency tree.

pub mod dynamodb_local;
mod fault;
mod proxy;

pub use fault::{Fault, Policy, SplitMix64, Stats, WRITE_OPERATIONS};
pub use proxy::FaultProxy;
