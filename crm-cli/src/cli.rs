//! The command line, as clap reads it: every flag's doc comment is its `--help`.

// The doc comments are the help text, shown as written: no Markdown backticks in them.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Move customers in and out of crm in bulk: import CSV or JSON Lines, export every customer,
/// and set up tables.
///
/// The store is the one the server would use: the DynamoDB table of `CRM_TABLE_NAME` (with
/// `AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB` and the AWS keys, as crm-server reads them), which
/// --table, --endpoint and --region override; or, with --url, a crm server's HTTP API.
///
/// Exit codes: 0 done; 1 rows rejected (or claim problems left); 2 command line, configuration
/// or input error; 3 the store failed; 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "crm", version, max_term_width = 100)]
pub struct Cli {
    /// Where the customers are.
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which store to work on; every flag overrides the variable the server reads.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// The DynamoDB table [overrides `CRM_TABLE_NAME`]
    #[arg(long, global = true, value_name = "NAME")]
    pub table: Option<String>,
    /// The DynamoDB endpoint, such as <http://127.0.0.1:8000> for DynamoDB Local [overrides
    /// `AWS_ENDPOINT_URL_DYNAMODB`]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The table's AWS region [overrides `AWS_REGION`]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Work through a crm server's HTTP API instead, such as <http://127.0.0.1:3000> (plain HTTP:
    /// for a local server and trials)
    #[arg(long, global = true, value_name = "URL", conflicts_with_all = ["table", "endpoint", "region"])]
    pub url: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import customers from a CSV file (with a header row) or a JSON Lines file.
    ///
    /// Every row is validated; a rejected row is reported with its row number, field and
    /// reason, and written to --rejects. Running the same file again (after Ctrl-C, a crash or
    /// an outage) never creates anyone twice.
    Import(ImportArgs),
    /// Write every customer, page by page, as JSON Lines or CSV (columns that import reads).
    Export(ExportArgs),
    /// Create or describe a DynamoDB table of the code's own layout (development and CI).
    #[command(subcommand)]
    Table(TableCommand),
    /// Check the email claims of a DynamoDB table.
    #[command(subcommand)]
    Claims(ClaimsCommand),
}

/// `crm import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file to import: CSV with a header row, or JSON Lines (one customer object a line)
    pub file: PathBuf,
    /// The file's format [default: by its extension (.csv; .jsonl, .ndjson), else by its first
    /// character]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Which column holds which field, such as firstName="Given Name",address.city=Town
    /// (repeatable; a header is matched whatever its case). Fields: id, firstName, lastName,
    /// email, phone, address.line1, address.line2, address.city, address.region,
    /// address.postalCode, address.country
    #[arg(long = "map", value_name = "FIELD=COLUMN,...")]
    pub map: Vec<String>,
    /// The country of phone numbers written without +, such as GB: `(020) 7123 4567` becomes
    /// +442071234567. Without it such numbers are rejected
    #[arg(long, value_name = "REGION")]
    pub phone_region: Option<String>,
    /// Write the rejected rows to this file, as they were, with their row number, fields and
    /// reasons: fix them there and import that file
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Validate every row and write nothing to the store
    #[arg(long)]
    pub dry_run: bool,
    /// Exit with 0 even when rows were rejected
    #[arg(long)]
    pub allow_rejects: bool,
    /// Customers per write [default: 50 on DynamoDB, one transaction; 100 over HTTP]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch_size: Option<u16>,
    /// Writes in flight at once
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How to show progress on stderr: a bar on a terminal, else a line every few seconds
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Seconds between two plain progress lines
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub progress_every: Duration,
    /// How long to keep trying a store that does not answer before stopping (seconds)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub retry_for: Duration,
}

/// `crm export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Write to this file (replaced only once the export is complete) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The format [default: by the extension of --output (.csv), else JSON Lines]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The order: createdAt (oldest first), -createdAt, name (last, first), updatedAt
    #[arg(long, default_value = "createdAt", value_parser = sort_order, allow_hyphen_values = true)]
    pub sort: crm_domain::SortOrder,
    /// How to show progress on stderr
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Seconds between two plain progress lines
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub progress_every: Duration,
    /// How long to keep trying a store that does not answer before stopping (seconds)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub retry_for: Duration,
}

/// `crm table …`.
#[derive(Debug, Clone, Subcommand)]
pub enum TableCommand {
    /// Create the table (--table or `CRM_TABLE_NAME`) with the layout the code expects: keys,
    /// indexes, stream and time to live
    Create,
    /// Describe the table and list how it differs from the layout the code expects (exit code
    /// 1 when it differs)
    Describe,
}

/// `crm claims …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClaimsCommand {
    /// Report customers whose email claim is missing or names another customer, and claims
    /// that block an email nobody holds; with --repair, mend them (an email two customers hold
    /// is reported, never repaired: a person decides)
    Check {
        /// Mend what is found
        #[arg(long)]
        repair: bool,
        /// Start after this position, printed by a check that stopped (orphan claims are then
        /// reported but not deleted)
        #[arg(long, value_name = "POSITION")]
        resume_after: Option<String>,
    },
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one JSON object a line.
    #[value(alias = "ndjson")]
    Jsonl,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else plain lines.
    Auto,
    /// A bar (rows done, rows per second, time left).
    Bar,
    /// A line every few seconds.
    Plain,
    /// Nothing but the summary.
    Off,
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=3600.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "must be a number of seconds from 0 to 3600".to_owned())
}

fn sort_order(text: &str) -> Result<crm_domain::SortOrder, String> {
    text.parse()
        .map_err(|e: crm_domain::InvalidValue| e.to_string())
}
