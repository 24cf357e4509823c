//! `crm-lambda-envelope`: the `DynamoDBManager` operation envelope as a direct (non-HTTP) Lambda
//! function.
//!
//! Inside AWS Lambda it answers each invocation's `{"operation", "tableName", "payload"}` event with
//! the operation's result; a failure is a Lambda function error with `errorType` the problem code
//! (`id-taken`, `bad-request`, …). Outside Lambda it reads one event as JSON from stdin and writes
//! the result to stdout (or the error to stderr, exiting 1): handy with `CRM_TABLE_NAME` and
//! DynamoDB Local, or for `ping`.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use crm_domain::CustomerService;
use crm_http::{AppState, Config, store, telemetry};
use lambda_runtime::LambdaEvent;
use serde_json::value::RawValue;

fn main() -> ExitCode {
    // First, so that no panic message (which could quote customer data) ever reaches stderr.
    telemetry::install_panic_hook();
    // One thread unless Lambda hands out several invocations at once (`crm_lambda::runtime`).
    let runtime = match crm_lambda::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crm-lambda-envelope: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("crm-lambda-envelope: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    if config.in_lambda() {
        telemetry::init_with(&config)?;
        crm_lambda::metrics::install(&config)?;
    } else {
        // Locally stdout carries the result; the log lines go to stderr.
        tracing::subscriber::set_global_default(telemetry::subscriber(
            config.log_filter(),
            std::io::stderr,
        ))?;
    }
    let (repository, _) = store::connect(&config).await;
    let state = AppState::new(CustomerService::new(repository), &config);

    if config.in_lambda() {
        crm_lambda::serve(state, |state, event| async move {
            crm_lambda::invoke_direct(&state, event).await
        })
        .await
        .map_err(|e| format!("the Lambda runtime stopped: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let event =
        RawValue::from_string(input).map_err(|e| format!("stdin is not one JSON event: {e}"))?;
    let event = LambdaEvent::new(event, lambda_runtime::Context::default());
    match crm_lambda::invoke_direct(&state, event).await {
        Ok(result) => {
            writeln!(std::io::stdout().lock(), "{result}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostic) => {
            eprintln!("{}", serde_json::to_string(&diagnostic)?);
            Ok(ExitCode::FAILURE)
        }
    }
}
