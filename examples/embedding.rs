//! The customers API inside an axum application of your own: nested under `/crm`, behind the
//! host's bearer-token check, next to the host's own routes.
//!
//! ```text
//! cargo run --example embedding
//! curl -s localhost:3001/
//! curl -si localhost:3001/crm/customers -H 'authorization: Bearer let-me-in' \
//!   -H 'content-type: application/json' -d '{"firstName":"Ada","lastName":"Lovelace"}'
//! curl -s localhost:3001/crm/openapi.json -H 'authorization: Bearer let-me-in' | head -c 80
//! ```
//!
//! The customers API reads its configuration as `crm-server` does: the in-memory store by
//! default, a DynamoDB table when `CRM_TABLE_NAME` is set (with `AWS_ENDPOINT_URL_DYNAMODB` for
//! DynamoDB Local). `EXAMPLE_BIND` moves the listener (default `127.0.0.1:3001`).
#![allow(clippy::print_stdout)]

use crm_domain::CustomerService;
use crm_examples::host;
use crm_http::{AppState, Config, serve, server, store};

/// The token the example's host accepts; a real host checks a real credential.
const TOKEN: &str = "let-me-in";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    crm_http::telemetry::init(config.log_filter())?;
    let (repository, store) = store::connect(&config).await;
    // Mounted under /crm by the host, which keeps its own rules by path there: no stage prefixes
    // (those are for API Gateway stages and custom-domain base paths).
    let state = AppState::new(CustomerService::new(repository), &config).without_stage_prefixes();
    let customers = crm_http::router(state);
    let app = host::app(customers, TOKEN);

    let address = std::env::var("EXAMPLE_BIND").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = server::bind(address.parse()?).await?;
    println!(
        "host application on http://{} with the customers API under /crm ({store}); token: {TOKEN}",
        listener.local_addr()?
    );
    serve(listener, app).await?;
    Ok(())
}
