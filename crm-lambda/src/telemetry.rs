//! JSON logs through `tracing`: one object per line on stdout, which `CloudWatch` Logs and local
//! tooling both read.
//!
//! What goes in a log line is decided where events are written, not here: request log lines carry
//! the request id, method, route template, status and latency; errors carry their chain. No customer
//! field ever does (see `tests/logs.rs`).

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The subscriber both binaries install, writing to `writer`, filtered by `filter` (a `RUST_LOG`
/// directive list, already checked by [`Config`](crate::Config); an invalid one falls back to
/// `info`).
pub fn subscriber<W>(filter: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// Installs [`subscriber`] on stdout as the process-wide default.
///
/// # Errors
/// When a global subscriber is already installed.
pub fn init(filter: &str) -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    tracing::subscriber::set_global_default(subscriber(filter, std::io::stdout))
}
