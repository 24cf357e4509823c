//! JSON logs through `tracing`: one object per line on stdout, which `CloudWatch` Logs and local
//! tooling both read, in the shape of `tracing-subscriber`'s flattened JSON format, written by a
//! formatter of our own at about 40 % of that format's cost (`json_lines`).
//!
//! What goes in a log line is decided where events are written, not here: request log lines carry
//! the request id, method, route template, status and latency; errors carry their chain. No customer
//! field ever does (see `tests/api/logs.rs`).
//!
//! Two things are decided here, because they hold whatever `RUST_LOG` says:
//!
//! - The crates that carry requests for us are capped at `info` ([`CAPPED_TARGETS`]): at `debug` and
//!   `trace` `lambda_runtime` logs raw events, and the AWS SDK's runtime and signer log requests with
//!   their bodies, customer data included. The cap is a filter of its own beside the `RUST_LOG`
//!   filter, and an event must pass both, so no directive in `RUST_LOG` (later, or more specific,
//!   such as `lambda_runtime::layers=trace`) can raise it again.
//! - A panic is logged as one JSON error line naming where it happened ([`install_panic_hook`]);
//!   its message is never written, since it could quote anything, customer data included.
//!
//! A long-running server installs the same lines with [`init_batched`], which writes them many to a
//! system call ([`Batched`]); a Lambda function with [`init_with`] or [`init`], one write per line.
//!
//! With crm-http's feature `otel` and an OTLP endpoint in the [`Config`] ([`Config::traces`]),
//! [`init_with`] (and [`init_batched`]) adds the span export of the `otel` module beside the logs:
//! a second layer, with a filter of its own that takes the request span and the AWS SDK's span of
//! each DynamoDB call, and nothing else; the logs keep exactly their filters and lines. Without an
//! endpoint (or without the feature) [`init_with`] installs [`subscriber`] alone, as [`init`]
//! does: nothing of OpenTelemetry is in the process.

use std::io::Write as _;

use tracing::Subscriber;
use tracing::subscriber::SetGlobalDefaultError;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::Config;

mod batched;
mod json_lines;

pub use batched::{Batched, BatchedWriter, FlushGuard};
use json_lines::{JsonLine, JsonMembers};

/// The targets (crates; a target matches when it starts with one of these) that never log below
/// `info`, whatever `RUST_LOG` says. Each of these emits `tracing` events in this build:
/// `lambda_runtime` (which also logs for `lambda_http`, raw events at `trace`),
/// `lambda_runtime_api_client`, the AWS SDK (`aws_smithy_*` log requests and responses,
/// `aws_sigv4` the request it signs, `aws_sdk_*`, `aws_config`, `aws_runtime`) and the HTTP stack
/// under it (`hyper_util`, `h2`, `tower`, `tower_http`). `hyper` only logs under an unstable
/// build flag and `rustls` only through the `log` crate, which is not bridged here; both are
/// listed so that turning either on cannot open a hole.
pub const CAPPED_TARGETS: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "aws_sigv4",
    "aws_sdk_dynamodb",
    "aws_sdk_eventbridge",
    "aws_sdk_sts",
    "aws_config",
    "aws_runtime",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
    "tower_http",
];

/// The most verbose level the [`CAPPED_TARGETS`] log at.
pub const CAPPED_LEVEL: LevelFilter = LevelFilter::INFO;

/// The targets that never log at all. `lambda_runtime::layers::panic` writes every error a handler
/// returns, at ERROR, in its `Debug` form: for the envelope function that is each client error,
/// with the caller's own words in it (unknown member names, field names). The envelope logs its
/// outcome itself (`"invocation"`, with the status), and a panic is logged by
/// [`install_panic_hook`].
pub const SILENCED_TARGETS: &[&str] = &["lambda_runtime::layers::panic"];

/// The filter that holds the [`CAPPED_TARGETS`] at [`CAPPED_LEVEL`], silences the
/// [`SILENCED_TARGETS`], and lets everything else through (to the `RUST_LOG` filter).
fn caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_TARGETS.iter().map(|target| (*target, CAPPED_LEVEL)))
        .with_targets(
            SILENCED_TARGETS
                .iter()
                .map(|target| (*target, LevelFilter::OFF)),
        )
}

/// `filter` as an [`EnvFilter`]; an invalid one (which [`Config`] refuses) is `info`.
fn env_filter(filter: &str) -> EnvFilter {
    EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The subscriber both binaries install, writing to `writer`, filtered by `filter` (a `RUST_LOG`
/// directive list, already checked by [`Config`]; an invalid one falls back to `info`) and by the
/// caps of [`CAPPED_TARGETS`].
pub fn subscriber<W>(filter: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = env_filter(filter);
    tracing_subscriber::fmt()
        .fmt_fields(JsonMembers)
        .event_format(JsonLine)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
        .with(caps())
}

/// [`subscriber`] with the span export of [`crate::otel`] beside it: the same log lines, through
/// the same filters (`filter` and the caps, as a filter of the log layer alone), and an
/// OpenTelemetry layer that takes only [`crate::otel::exported`] spans, whatever `filter` says.
#[cfg(feature = "otel")]
pub(crate) fn exporting_subscriber<W>(
    filter: &str,
    writer: W,
    provider: &opentelemetry_sdk::trace::SdkTracerProvider,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::FilterExt as _;
    let logs = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonMembers)
        .event_format(JsonLine)
        .with_writer(writer)
        .with_filter(env_filter(filter).and(caps()));
    tracing_subscriber::registry()
        .with(logs)
        .with(crate::otel::layer(provider))
}

/// Installs [`subscriber`] on stdout as the process-wide default.
///
/// # Errors
/// When a global subscriber is already installed.
pub fn init(filter: &str) -> Result<(), SetGlobalDefaultError> {
    tracing::subscriber::set_global_default(subscriber(filter, std::io::stdout))
}

/// The logs could not be installed, or the span export could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A global subscriber is already installed.
    #[error(transparent)]
    Subscriber(#[from] SetGlobalDefaultError),
    /// The thread that writes batched lines could not be started.
    #[error("cannot start the log writer: {0}")]
    Writer(#[source] std::io::Error),
    /// The span export could not be set up.
    #[cfg(feature = "otel")]
    #[error(transparent)]
    Export(#[from] crate::otel::ExportError),
}

/// Installs the logs on stdout as [`init`] does, with `config`'s log filter; and, with the feature
/// `otel` and an OTLP endpoint in `config` ([`Config::traces`]), the span export beside them
/// (the `otel` module). Without an endpoint this is [`init`]: no OpenTelemetry layer, processor or
/// thread exists. What the Lambda bootstraps of the API and the envelope call at start: each line
/// is written before the handler returns, so none waits in a buffer when Lambda freezes the
/// process.
///
/// # Errors
/// When a global subscriber is already installed, or the exporter cannot be built.
pub fn init_with(config: &Config) -> Result<(), InitError> {
    install(config, std::io::stdout)
}

/// [`init_with`] for a long-running server: the same lines, written to stdout many to a system call
/// by a thread of their own ([`Batched`]), which under load takes the writes off the workers that
/// serve requests. Keep the returned [`FlushGuard`] until the server has stopped: dropping it
/// writes out what is buffered. `crm-server` calls it at start, outside Lambda. Not for Lambda
/// (see [`Batched`]).
///
/// # Errors
/// When the writing thread cannot be started, a global subscriber is already installed, or the
/// exporter cannot be built.
pub fn init_batched(config: &Config) -> Result<FlushGuard<std::io::Stdout>, InitError> {
    let (writer, flush) = Batched::stdout().map_err(InitError::Writer)?;
    install(config, writer)?;
    Ok(flush)
}

/// The subscriber of `config` on `writer`, installed as the process-wide default.
fn install<W>(config: &Config, writer: W) -> Result<(), InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    #[cfg(feature = "otel")]
    if let Some(traces) = config.traces() {
        let provider = crate::otel::provider(traces, config)?;
        tracing::subscriber::set_global_default(exporting_subscriber(
            config.log_filter(),
            writer,
            &provider,
        ))?;
        crate::otel::install(provider);
        return Ok(());
    }
    tracing::subscriber::set_global_default(subscriber(config.log_filter(), writer))?;
    Ok(())
}

/// Exports the spans finished so far and waits for the collector, at most `limit`
/// (`otel::flush_within`); nothing without the feature `otel` or an endpoint. The Lambda
/// bootstraps call it before each answer is posted, with the time the invocation has left.
#[inline]
pub fn flush_spans(limit: std::time::Duration) {
    #[cfg(feature = "otel")]
    crate::otel::flush_within(limit);
    #[cfg(not(feature = "otel"))]
    let _ = limit;
}

/// Exports the last spans and stops the export (`otel::shutdown`); nothing without the
/// feature `otel` or an endpoint. `crm-server` calls it on its way out.
pub fn shutdown_spans() {
    #[cfg(feature = "otel")]
    crate::otel::shutdown();
}

/// Replaces Rust's default panic hook, which prints the panic message to stderr, with one that logs
/// one error line `{"message": "panicked", "location": "<file>:<line>"}` and nothing of the message.
///
/// The line goes through `tracing` (so it is JSON, with the request id of the span it happened in)
/// once a global subscriber is installed; before that, as a JSON line of its own on stderr. Every
/// binary calls this first thing in `main`. Where panics unwind, as in every build of this
/// workspace (the Lambda bootstraps too: its `lambda` profile sets `panic = "unwind"`), a panic
/// inside a request then becomes a 500 problem, the router's panic catcher running after the hook;
/// this line is the only one the panic gets (the 500 is not logged again as `request failed`).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(
            || "unknown".to_owned(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        if tracing::dispatcher::has_been_set() {
            tracing::error!(location = %location, "panicked");
        } else {
            let line =
                serde_json::json!({"level": "ERROR", "message": "panicked", "location": location});
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    /// The lines a subscriber wrote.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned()
        }
    }

    /// What `filter` lets through of one trace event per target, as the messages written. Each
    /// event has its own callsite, so no other test's interest caching can hide it. With the
    /// feature `otel`, the subscriber that exports spans must write exactly the same.
    fn written_at_trace(filter: &str) -> String {
        let lines = Lines::default();
        let sink = lines.clone();
        tracing::subscriber::with_default(subscriber(filter, move || sink.clone()), emit_all);
        let written = lines.text();
        #[cfg(feature = "otel")]
        {
            let exporting = Lines::default();
            let sink = exporting.clone();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
            tracing::subscriber::with_default(
                exporting_subscriber(filter, move || sink.clone(), &provider),
                emit_all,
            );
            assert_eq!(
                messages(&exporting.text()),
                messages(&written),
                "the exporting subscriber logs otherwise"
            );
        }
        written
    }

    /// The messages of JSON lines, in order.
    #[cfg(feature = "otel")]
    fn messages(lines: &str) -> Vec<String> {
        lines
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["message"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    fn emit_all() {
        {
            tracing::trace!(target: "lambda_runtime::x", "raw event");
            tracing::trace!(target: "lambda_runtime_api_client", "raw body");
            tracing::debug!(target: "aws_smithy_runtime::y", "request body");
            tracing::trace!(target: "aws_sigv4::http_request::sign", "signing request");
            tracing::trace!(target: "crm_http", "crm trace");
            tracing::trace!(target: "crm_dynamo::repository", "crm dynamo trace");
            tracing::info!(target: "lambda_runtime::x", "runtime info");
            tracing::error!(target: "lambda_runtime::layers::panic", "handler error Zephyrine");
        }
    }

    /// The lines written inside a request span, around a DynamoDB call's span (debug, from the
    /// SDK), without their timestamps: the exporting subscriber must write the same, the same
    /// `span` object included (the SDK's span, which it exports, is no log line's span).
    #[cfg(feature = "otel")]
    #[test]
    fn exporting_spans_changes_no_log_line() {
        fn lines_of(written: &Lines) -> Vec<serde_json::Value> {
            written
                .text()
                .lines()
                .map(|line| {
                    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                    value.as_object_mut().unwrap().remove("timestamp");
                    value
                })
                .collect()
        }
        fn request() {
            let span = tracing::info_span!(
                target: "crm_http::middleware",
                "request",
                request_id = "r-1",
                trace_id = "1-5759e988-bd862e3fe1be46a994272793"
            );
            let _request = span.enter();
            let call = tracing::debug_span!(
                target: "aws_sdk_dynamodb::operation::get_item",
                "DynamoDB.GetItem",
                "rpc.service" = "DynamoDB",
                "rpc.method" = "GetItem"
            );
            let _call = call.enter();
            tracing::debug!(target: "aws_smithy_runtime::client", "request body Zephyrine");
            tracing::info!(target: "crm_dynamo::repository", "store line");
            tracing::warn!(target: "crm_http::error", "request not served");
        }
        let plain = Lines::default();
        let sink = plain.clone();
        tracing::subscriber::with_default(subscriber("debug", move || sink.clone()), request);
        let exporting = Lines::default();
        let sink = exporting.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        tracing::subscriber::with_default(
            exporting_subscriber("debug", move || sink.clone(), &provider),
            request,
        );
        let plain = lines_of(&plain);
        assert_eq!(plain.len(), 2, "{plain:?}");
        assert_eq!(plain[0]["span"]["request_id"], "r-1", "{plain:?}");
        assert_eq!(lines_of(&exporting), plain);
    }

    #[test]
    fn rust_log_trace_cannot_make_the_runtime_or_the_sdk_log_below_info() {
        let written = written_at_trace("trace");
        for hidden in ["raw event", "raw body", "request body", "signing request"] {
            assert!(!written.contains(hidden), "{hidden}: {written}");
        }
        assert!(!written.contains("Zephyrine"), "{written}");
        for shown in ["crm trace", "crm dynamo trace", "runtime info"] {
            assert!(written.contains(shown), "{shown}: {written}");
        }
    }

    #[test]
    fn no_later_or_more_specific_directive_raises_the_caps_again() {
        let written = written_at_trace(
            "info,crm_http=trace,lambda_runtime=trace,lambda_runtime::x=trace,aws_smithy_runtime::y=trace,aws_sigv4=trace,lambda_runtime_api_client[span]=trace",
        );
        for hidden in ["raw event", "raw body", "request body", "signing request"] {
            assert!(!written.contains(hidden), "{hidden}: {written}");
        }
        assert!(written.contains("crm trace"), "{written}");
        assert!(
            !written.contains("crm dynamo trace"),
            "RUST_LOG still filters: {written}"
        );
    }

    #[test]
    fn the_caps_never_lower_what_rust_log_asks_for_below_info() {
        let written = written_at_trace("warn");
        assert!(!written.contains("runtime info"), "{written}");
        assert!(!written.contains("crm trace"), "{written}");
    }

    #[test]
    fn every_capped_target_is_a_crate_name_and_none_is_ours() {
        for target in CAPPED_TARGETS {
            assert!(
                target
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{target}"
            );
            for ours in [
                "crm_http",
                "crm_lambda",
                "crm_dynamo",
                "crm_domain",
                "crm_memory",
            ] {
                assert!(!ours.starts_with(target), "{target} would cap {ours}");
            }
        }
    }
}
