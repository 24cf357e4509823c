//! `crm-lambda-http`: the customers API as an AWS Lambda function, for API Gateway (REST and HTTP
//! APIs), ALB and function URL events. Configuration, SDK client and repository are built once, in
//! the cold start's init phase; a configuration error fails the init with one line on stderr.
//! Outside Lambda it refuses to start: `crm-server` (crate `crm-http`) is the local server.

use std::process::ExitCode;

use crm_domain::CustomerService;
use crm_http::{AppState, Config, api, store, telemetry};

fn main() -> ExitCode {
    // First, so that no panic message (which could quote customer data) ever reaches stderr.
    telemetry::install_panic_hook();
    // One thread unless Lambda hands out several invocations at once (`crm_lambda::runtime`).
    let runtime = match crm_lambda::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crm-lambda-http: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm-lambda-http: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    if !config.in_lambda() {
        return Err("AWS_LAMBDA_RUNTIME_API is not set: this is the AWS Lambda function; run crm-server for a local API".into());
    }
    telemetry::init_with(&config)?;
    crm_lambda::metrics::install(&config)?;
    let (repository, _) = store::connect(&config).await;
    let state = AppState::new(CustomerService::new(repository), &config);
    crm_lambda::run_http(api(state))
        .await
        .map_err(|e| format!("the Lambda runtime stopped: {e}").into())
}
