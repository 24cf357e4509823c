//! `crm-lambda-events`: the table's DynamoDB stream as change events on an `EventBridge` bus
//! (`CRM_EVENT_BUS_NAME`), as an AWS Lambda function behind an event source mapping with
//! `ReportBatchItemFailures` (see `crm_lambda::events`). Configuration, the EMF metrics recorder
//! (as `crm-lambda-http` installs it; `CRM_METRICS=off` leaves it out) and the `EventBridge`
//! client are built once, in the cold start's init phase; a configuration error fails the init
//! with one line on stderr. Outside Lambda it refuses to start.

use std::process::ExitCode;

use crm_http::{MetricsExport, telemetry};
use crm_lambda::events::{EventsConfig, Publisher, answer_stream};

fn main() -> ExitCode {
    // First, so that no panic message (which could quote customer data) ever reaches stderr.
    telemetry::install_panic_hook();
    // One thread unless Lambda hands out several invocations at once (`crm_lambda::runtime`).
    let runtime = match crm_lambda::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crm-lambda-events: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm-lambda-events: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = EventsConfig::from_env()?;
    if !config.in_lambda() {
        return Err("AWS_LAMBDA_RUNTIME_API is not set: this is the AWS Lambda function of the table's stream".into());
    }
    telemetry::init(config.log_filter())?;
    if config.metrics() == MetricsExport::Emf {
        crm_lambda::metrics::install_emf(config.metrics_namespace(), config.function_name())?;
    }
    let publisher = Publisher::connect(config.bus_name()).await;
    crm_lambda::serve(publisher, |publisher, event| async move {
        answer_stream(&publisher, event).await
    })
    .await
    .map_err(|e| format!("the Lambda runtime stopped: {e}").into())
}
