//! The `crm` binary, run as people run it: against a local server on the memory store
//! (`--url`) and against DynamoDB Local (`--table`, `--endpoint`).

mod dynamodb;
mod inputs;
mod server;
mod support;

/// `12345` → `12,345`, as the summaries print counts.
fn thousands(n: usize) -> String {
    crm_cli::progress::thousands(n as u64)
}
