//! The metrics of the Lambda functions as `CloudWatch` Embedded Metric Format (EMF): JSON lines in
//! the function's log stream, which `CloudWatch` Logs turns into metrics. No API call, no agent, no
//! extension: the bootstrap writes the lines to stdout, as it writes its logs.
//!
//! `crm-lambda-http` and `crm-lambda-envelope` [`install`] the recorder at start when
//! [`Config::metrics`] says `emf` (the default inside Lambda; `CRM_METRICS=off` turns it off).
//! What is recorded, and under which names, is `crm_http::metrics`'s table, plus [`COLD_STARTS`];
//! every metric gets the dimension [`FUNCTION`] (the function's name, `AWS_LAMBDA_FUNCTION_NAME`)
//! besides its labels, in the namespace `CRM_METRICS_NAMESPACE` (default `crm`).
//!
//! # When the lines are written
//!
//! [`serve`](crate::serve) calls [`flush`] after every invocation, before the runtime posts the
//! response: Lambda may freeze the sandbox as soon as the response is posted, and a line still in
//! memory would be written, late, at the next invocation, or never. The exporter aggregates
//! between flushes: counters are summed, histograms keep their values (at most 100 per label set
//! between two flushes, as EMF allows one line; the exporter drops any further value with an
//! ERROR line), and a flush writes one line per label set that changed, then starts again from
//! zero. Where one sandbox serves several invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`,
//! Lambda Managed Instances), each invocation's flush writes whatever has been recorded so far,
//! its neighbours' numbers too; nothing is counted twice (a flush takes what it writes) and
//! nothing is left behind (every invocation ends with a flush). Each flush's lines go to stdout
//! in one write under its lock, so no log line lands inside a metrics line.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crm_http::{Config, MetricsExport};
use metrics::Unit;
use metrics_cloudwatch_embedded::{Builder, Collector};

/// Counter: cold starts, counted once per sandbox, at its first invocation.
pub const COLD_STARTS: &str = "cold_starts";

/// The dimension every EMF metric carries: the Lambda function's name.
pub const FUNCTION: &str = "function";

/// The EMF collector, once [`install`]ed.
static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Whether no invocation has started yet in this process.
static COLD: AtomicBool = AtomicBool::new(true);

/// The recorder could not be installed: another one already is.
#[derive(Debug)]
pub struct InstallError(String);

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot install the EMF metrics recorder: {}", self.0)
    }
}

impl std::error::Error for InstallError {}

/// Installs the EMF recorder when `config` asks for it ([`MetricsExport::Emf`]), with its
/// namespace and function name; returns whether it did.
///
/// # Errors
/// When a global `metrics` recorder is already installed.
pub fn install(config: &Config) -> Result<bool, InstallError> {
    if config.metrics() != MetricsExport::Emf {
        return Ok(false);
    }
    install_emf(config.metrics_namespace(), config.function_name())?;
    Ok(true)
}

/// Installs the EMF recorder as the process's global `metrics` recorder, in `namespace`, with
/// the dimension [`FUNCTION`] when `function` is given, and describes every metric (their units).
///
/// # Errors
/// When a global `metrics` recorder is already installed, or this was called before.
pub fn install_emf(namespace: &str, function: Option<&str>) -> Result<(), InstallError> {
    let mut builder = Builder::new().cloudwatch_namespace(namespace.to_owned());
    if let Some(function) = function {
        builder = builder.with_dimension(FUNCTION, function.to_owned());
    }
    let collector = builder.init().map_err(|e| InstallError(e.to_string()))?;
    COLLECTOR
        .set(collector)
        .map_err(|_| InstallError("already installed".to_owned()))?;
    crm_http::metrics::describe();
    metrics::describe_counter!(
        COLD_STARTS,
        Unit::Count,
        "cold starts (first invocation of a sandbox)"
    );
    Ok(())
}

/// Counts a cold start if this is the process's first invocation. [`serve`](crate::serve) calls it
/// as each invocation starts.
pub(crate) fn invocation_started() {
    if COLD.swap(false, Ordering::Relaxed) {
        metrics::counter!(COLD_STARTS).increment(1);
    }
}

/// Calls [`flush`] when dropped: at the end of an invocation however it ends (an answer, a panic
/// that unwinds, a future dropped).
pub(crate) struct FlushOnDrop;

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush();
    }
}

/// Writes what was recorded since the last flush to stdout, as EMF lines, in one write; nothing
/// when no EMF recorder is installed.
pub fn flush() {
    let mut lines = Vec::new();
    flush_into(&mut lines);
    if !lines.is_empty() {
        let _ = std::io::stdout().lock().write_all(&lines);
    }
}

/// Appends what was recorded since the last flush to `lines`, as EMF lines (one JSON object per
/// line); nothing when no EMF recorder is installed.
pub fn flush_into(lines: &mut Vec<u8>) {
    if let Some(collector) = COLLECTOR.get()
        && let Err(error) = collector.flush(&mut *lines)
    {
        tracing::warn!(error = %error, "metrics not written");
    }
}
