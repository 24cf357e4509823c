//! `hello-lambda`: the smallest Rust Lambda function worth measuring, the physical baseline of the
//! cold-start harness (`benches/cold-start.sh`): `lambda_runtime`'s own example, as a user would
//! write it, answering every event with a fixed API Gateway response and touching no
//! configuration, no SDK and no network but the Runtime API's. What crm's init takes beyond this
//! one's is crm's own. One difference favours crm: `#[tokio::main]` starts tokio's multi-thread
//! runtime, whose worker threads this one starts in its init, where crm's bootstraps run a
//! current-thread runtime on a classic sandbox and start none.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
