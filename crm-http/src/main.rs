//! `crm-server`: the customers API on a local HTTP server.
//!
//! It listens on `CRM_BIND` (127.0.0.1:3000) over the in-memory store, or over DynamoDB when
//! `CRM_TABLE_NAME` is set, until Ctrl-C or SIGTERM; with the default `docs-viewer` feature it
//! serves the API docs page at `/docs` too, unless `CRM_DOCS=false`. With the `otel` feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set it exports spans, the last ones as it stops. Configuration and
//! repository are built once, before the first request; a configuration error is one line on
//! stderr and exit code 1.

use std::process::ExitCode;

use crm_domain::CustomerService;
use crm_http::store::{self, StoreKind};
use crm_http::{AppState, Config, api, server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // First, so that no panic message (which could quote customer data) ever reaches stderr.
    telemetry::install_panic_hook();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, on stderr, whether or not logging is set up yet.
            eprintln!("crm-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    // The logs, many lines to a write under load, and the span export when an OTLP endpoint is
    // configured (feature `otel`). Dropped last, at the end of `run`: the buffered lines go out.
    // Inside Lambda (behind a web adapter, say) each line is written at once: the sandbox can be
    // frozen as soon as an answer is out.
    let _logs = if config.in_lambda() {
        telemetry::init_with(&config)?;
        None
    } else {
        Some(telemetry::init_batched(&config)?)
    };
    let (repository, store) = store::connect(&config).await;
    let state = AppState::new(CustomerService::new(repository), &config);
    // `CRM_METRICS=prometheus` (which the configuration refuses in a build without the feature).
    #[cfg(feature = "prometheus")]
    let state = if config.metrics() == crm_http::MetricsExport::Prometheus {
        state.with_prometheus(crm_http::metrics::install_prometheus()?)
    } else {
        state
    };
    #[cfg(feature = "prometheus")]
    let metrics = state.prometheus().is_some();
    #[cfg(not(feature = "prometheus"))]
    let metrics = false;
    let listener = server::bind(config.bind())
        .await
        .map_err(|e| format!("{e} (CRM_BIND)"))?;
    announce(
        &listener.local_addr()?.to_string(),
        &store,
        state.docs(),
        metrics,
    );
    let served = server::serve_with(
        listener,
        api(state),
        server::Connections::from_config(&config),
    )
    .await;
    // The spans of the last requests, before the process ends (nothing when none are exported).
    telemetry::shutdown_spans();
    served?;
    tracing::info!("stopped");
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the one human-readable line of local mode"
)]
fn announce(address: &str, store: &StoreKind, docs: bool, metrics: bool) {
    let docs = if docs {
        format!("; API docs at http://{address}/docs")
    } else {
        String::new()
    };
    let metrics = if metrics {
        format!("; metrics at http://{address}/metrics")
    } else {
        String::new()
    };
    println!(
        "crm-server listening on http://{address} with {store}{docs}{metrics}; Ctrl-C stops it"
    );
}
