//! The tests of `crm-dynamo`, in one binary: one link instead of seven, and one place in this crate
//! that knows where DynamoDB Local is ([`support`]).
//!
//! - [`contract`]: the repository contract suite, against DynamoDB Local.
//! - [`backfill`]: the listing-key backfill of items written by the previous version.
//! - [`claims`]: email claims that went missing or name another customer.
//! - [`claims_check`]: the operator's claims check, which finds and repairs broken claims.
//! - [`describe`]: the table's description, compared with the code's definition.
//! - [`requests`]: the requests each operation sends, counted against the crate docs, and the IAM
//!   actions they need.
//! - [`stream`]: the table's stream: the contract suite's event cases, and the records of every
//!   kind of write mapped to change events.
//! - [`pagination`]: walks of every listing, name search and the change feed over many pages;
//!   cursors of another listing, altered or forged.
//! - [`lost_replies`]: writes DynamoDB applied whose reply was lost, through a fault proxy.
//! - [`transient`]: DynamoDB's "not now" answers, from a scripted endpoint on loopback.
//! - [`outage`]: an endpoint that is down or silent.
//! - [`template`]: the CloudFormation templates in `deploy/` against the code.
//! - `docker` (feature `testcontainers`): the contract suite against DynamoDB Local in Docker,
//!   `cargo test -p crm-dynamo --features testcontainers --test dynamodb docker`.
//!
//! The tests that need DynamoDB Local fail, saying how to start it, when it does not answer.

mod backfill;
mod claims;
mod claims_check;
mod contract;
mod describe;
#[cfg(feature = "testcontainers")]
mod docker;
mod lost_replies;
mod outage;
mod pagination;
mod requests;
mod stream;
mod support;
mod template;
mod transient;
