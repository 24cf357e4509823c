//! The listing-key backfill, against the table the service is configured with: gives the customers
//! and tombstones written by a version without the listing indexes the attributes those indexes
//! are keyed on, so that listings and the change feed find them. See `crm-dynamo`'s crate docs
//! ("Upgrading a table of the previous layout") and `deploy/README.md` ("Upgrading to the listing
//! indexes").
//!
//! ```text
//! CRM_TABLE_NAME=<table> AWS_REGION=<region> cargo run --example backfill
//! cargo run --example backfill -- --resume-after 'CUSTOMER#<id>' --page-size 200
//! ```
//!
//! It reads the variables the service reads (`CRM_TABLE_NAME`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local, `CRM_DYNAMODB_TIMEOUT_MS`, `CRM_TOMBSTONE_DAYS`),
//! and signs with the keys in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or else with the SDK's
//! default chain (profile, SSO). Those credentials need `dynamodb:Scan` and `dynamodb:UpdateItem`
//! on the table: an operator's, not the function role's, which may not scan.
//!
//! It prints a line per page (the counts so far and the position to resume after), then the
//! report. It is safe while the service runs (every write is conditioned on the item being as
//! read) and safe to run again: a second run updates nothing. When it stops on an error, run it
//! again with `--resume-after` and the last position printed.
#![allow(clippy::print_stdout)]

use anyhow::{Context as _, bail};
use crm_dynamo::{Backfill, BackfillPosition, DynamoCustomerRepository};
use crm_http::{Config, StoreConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let backfill = options(std::env::args().skip(1))?;
    let config = Config::from_env().context("reading the configuration")?;
    let StoreConfig::DynamoDb(settings) = config.store() else {
        bail!("CRM_TABLE_NAME is not set: there is no table to backfill");
    };
    let repository = DynamoCustomerRepository::connect(settings)
        .await
        .with_tombstone_retention(config.tombstone_retention());
    println!(
        "backfilling the listing keys of table {}",
        settings.table_name()
    );
    let report = repository
        .backfill_listing_keys(&backfill, |so_far| println!("  {so_far}"))
        .await
        .context(
            "the backfill stopped; run again with --resume-after <the last position printed>",
        )?;
    println!("done: {report}");
    if report.unreadable > 0 {
        println!(
            "{} item(s) could not be read and were left alone: customers whose stored names are \
             no longer valid (only invisible characters, or a bidirectional override), or \
             tombstones without a time. Repair them by hand, then run again.",
            report.unreadable
        );
    }
    if report.changed_meanwhile > 0 {
        println!(
            "{} item(s) changed while the backfill ran; a second run checks them again.",
            report.changed_meanwhile
        );
    }
    Ok(())
}

/// `--resume-after <position>` and `--page-size <items>`, both optional.
fn options(mut args: impl Iterator<Item = String>) -> anyhow::Result<Backfill> {
    let mut backfill = Backfill::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--resume-after" => {
                let position: BackfillPosition = value()?.parse()?;
                backfill = backfill.resume_after(position);
            }
            "--page-size" => {
                let items: u16 = value()?
                    .parse()
                    .context("--page-size takes a number of items, 1-1000")?;
                backfill = backfill.page_size(items);
            }
            other => bail!("unknown argument {other}; expected --resume-after or --page-size"),
        }
    }
    Ok(backfill)
}
