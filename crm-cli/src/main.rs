//! `crm`: the command line of the customers API. See the `crm_cli` library for the design, and
//! `docs/cli.md` for the reference.

use std::process::ExitCode;

use clap::Parser as _;
use crm_cli::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    // First: no panic message (which could quote customer data) ever reaches the terminal.
    crm_http::telemetry::install_panic_hook();
    // A usage error is clap's message and exit code 2.
    let cli = Cli::parse();
    match crm_cli::run(cli).await {
        Ok(exit) => exit.into(),
        Err(failure) => {
            crm_cli::say(format_args!("crm: {failure}"));
            ExitCode::from(failure.code())
        }
    }
}
