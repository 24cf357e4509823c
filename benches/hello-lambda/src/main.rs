//! `hello-lambda`: the smallest Rust Lambda function worth measuring, the physical baseline of the
//! cold-start harness (`benches/cold-start.sh`). It starts the same tokio runtime and the same
//! `lambda_runtime` loop as crm's bootstraps and answers every event with a fixed API Gateway
//! response, touching no configuration, no SDK and no network but the Runtime API's. What crm's
//! init takes beyond this one's is crm's own.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
