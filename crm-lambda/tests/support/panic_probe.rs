//! `crm-lambda-panic-probe`, test-only (feature `panic-probe`): `crm-lambda-http` as it is, but over
//! a store that panics on reading the customer `panic` (`GET /customers/panic`), so that
//! `tests/bootstrap.rs` can show what a panic inside a request does to a running bootstrap.
//!
//! Never deployed: `deploy/build.sh` builds `crm-lambda-http` and `crm-lambda-envelope` only, and
//! without the feature this binary does not exist.

use std::process::ExitCode;
use std::sync::Arc;

use crm_domain::CustomerService;
use crm_http::{AppState, Config, api, store, telemetry};

#[path = "panicking.rs"]
mod panicking;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::install_panic_hook();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm-lambda-panic-probe: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    telemetry::init(config.log_filter())?;
    let (repository, _) = store::connect(&config).await;
    let repository = Arc::new(panicking::PanicOn(repository));
    let state = AppState::new(CustomerService::new(repository), &config);
    crm_lambda::run_http(api(state))
        .await
        .map_err(|e| format!("the Lambda runtime stopped: {e}").into())
}
