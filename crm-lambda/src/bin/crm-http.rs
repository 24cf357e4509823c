//! `crm-http`: the customers API.
//!
//! Inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` set) it serves API Gateway, ALB and function URL
//! events through `lambda_http`; anywhere else it is a local HTTP server on `CRM_BIND`
//! (127.0.0.1:3000), over the in-memory store or over DynamoDB when `CRM_TABLE_NAME` is set, until
//! Ctrl-C or SIGTERM. Configuration, SDK client and repository are built once, before the first
//! request.

use std::process::ExitCode;

use crm_domain::CustomerService;
use crm_lambda::store::{self, StoreKind};
use crm_lambda::{AppState, Config, app, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // First, so that no panic message (which could quote customer data) ever reaches stderr.
    telemetry::install_panic_hook();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, on stderr, whether or not logging is set up yet.
            eprintln!("crm-http: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_filter())?;
    let (repository, store) = store::connect(&config).await?;
    let state = AppState::new(CustomerService::new(repository), &config);
    let router = app(state);

    if config.in_lambda() {
        return lambda_http::run(router)
            .await
            .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"));
    }

    let listener = tokio::net::TcpListener::bind(config.bind())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (CRM_BIND): {e}", config.bind()))?;
    announce(&listener.local_addr()?.to_string(), &store);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the one human-readable line of local mode"
)]
fn announce(address: &str, store: &StoreKind) {
    println!("crm-http listening on http://{address} with {store}; Ctrl-C stops it");
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish before the server stops.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
