//! The `crm` command line: customers in and out of crm in bulk, and the table tools.
//!
//! ```text
//! crm import customers.csv --phone-region GB --rejects rejects.csv
//! crm export --sort name -o customers.csv
//! crm table create --table crm-dev --endpoint http://127.0.0.1:8000
//! crm claims check --repair
//! ```
//!
//! It sits beside `crm-server` and `crm-lambda` on the outside of the hexagon: it reads the
//! same configuration as the server ([`crm_http::Config`]: `CRM_TABLE_NAME`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, the AWS keys; `--table`, `--endpoint` and `--region` override
//! them) and builds the same repository from the same settings
//! ([`crm_dynamo::DynamoCustomerRepository::connect`], allowing an operation 30 s unless
//! `CRM_DYNAMODB_TIMEOUT_MS` says otherwise: [`COMMAND_OPERATION_TIMEOUT`]), then drives
//! `crm-domain`'s service, so that everything it writes passes the rules every other write
//! passes. With `--url` it works through a crm server's HTTP API instead ([`mod@backend`]), for
//! trials against a local server.
//!
//! # Design
//!
//! - **The API stays strict; leniency lives here.** Import reads values as people write them
//!   ([`normalize`]: phones to E.164 through libphonenumber, country names to ISO codes through
//!   [`countries`], headers of the common CRM exports through [`columns`]), then builds the
//!   domain's own `NewCustomer`, whose constructors decide. What cannot be read is a reject with
//!   its row, field and reason, never a guess.
//! - **Streaming.** A first pass fingerprints and checks the file ([`source::survey`]); the
//!   second reads it row by row on a thread of its own, into batches on a bounded channel,
//!   written by a bounded number of tasks through the store's bulk path ([`import`]). Memory
//!   does not grow with the file.
//! - **Reruns never duplicate.** Rows without an id get one derived from the file's SHA-256 and
//!   the row number; taken ids and emails are matched against what is stored ([`import`]).
//! - **Progress that suits where it goes** ([`progress`]): an indicatif bar on a terminal, a
//!   plain line every few seconds in a log, nothing with `--progress off`.
//! - **Errors are one line; exit codes are a contract** ([`exit`]). No message repeats a
//!   customer's data: rows are named by number, fields by name. Only the rejects file, which
//!   the user asked for, holds values.
//!
//! The binary is a few lines over [`run`]; the tests drive the real binary against a local
//! server on the memory store and against DynamoDB Local.

pub mod backend;
pub mod cli;
pub mod columns;
pub mod countries;
pub mod exit;
pub mod export;
pub mod http_api;
pub mod import;
pub mod normalize;
pub mod progress;
pub mod rejects;
pub mod source;
pub mod table;

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crm_domain::CustomerService;
use crm_dynamo::DynamoCustomerRepository;
use crm_http::{Config, StoreConfig};
use indicatif::ProgressDrawTarget;

use crate::backend::Backend;
use crate::cli::{Cli, Command, ProgressMode, StoreArgs};
use crate::exit::{Exit, Failure};
use crate::http_api::HttpApi;
use crate::progress::{BarReporter, Noun, PlainReporter, Reporter};

/// Runs a parsed command line.
///
/// # Errors
/// The failure that stopped the command; its [`code`](Failure::code) is the exit code.
///
/// # Panics
/// Outside a tokio runtime with its I/O driver (signals need it): `#[tokio::main]` has one.
pub async fn run(cli: Cli) -> Result<Exit, Failure> {
    // The commands that stop cleanly on a first Ctrl-C (or SIGTERM) listen for it; the table tools
    // do not, and a signal ends them as it ends any program.
    let interrupt = match cli.command {
        Command::Import(_) | Command::Export(_) | Command::Claims(_) => Interrupt::install(),
        Command::Table(_) => Interrupt::inert(),
    };
    match cli.command {
        Command::Import(args) => {
            let backend = if args.dry_run {
                None
            } else {
                Some(Arc::new(backend(&cli.store).await?))
            };
            import::run(&args, backend, &interrupt).await
        }
        Command::Export(args) => {
            export::run(&args, Arc::new(backend(&cli.store).await?), &interrupt).await
        }
        Command::Table(command) => table::table(&command, &dynamo(&cli.store).await?).await,
        Command::Claims(command) => {
            table::claims(&command, &dynamo(&cli.store).await?, &interrupt).await
        }
    }
}

/// Writes a line to stderr. A stderr that cannot be written (closed, a full disk) loses the line
/// rather than ending the command with a panic: the exit code still tells the outcome.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The configuration the server would read, with the flags over the variables.
///
/// # Errors
/// The first invalid variable or flag, in one line naming it.
pub fn config(args: &StoreArgs) -> Result<Config, Failure> {
    let overrides = [
        ("CRM_TABLE_NAME", "--table", &args.table),
        ("AWS_ENDPOINT_URL_DYNAMODB", "--endpoint", &args.endpoint),
        ("AWS_REGION", "--region", &args.region),
    ];
    // The last value of a variable wins: the flags come after the environment.
    let flags = overrides.iter().filter_map(|(variable, _, value)| {
        value
            .as_ref()
            .map(|v| (OsString::from(variable), OsString::from(v)))
    });
    // The server's own page and metrics are no business of the command line, which serves neither:
    // a value meant for crm-server must not stop it (nor depend on how it was built).
    let environment = std::env::vars_os()
        .filter(|(name, _)| !matches!(name.to_str(), Some("CRM_DOCS" | "CRM_METRICS")));
    Config::from_os_vars(environment.chain(flags)).map_err(|e| {
        let flag = overrides
            .iter()
            .find(|(variable, _, value)| *variable == e.variable() && value.is_some())
            .map(|(_, flag, _)| format!(" (given with {flag})"))
            .unwrap_or_default();
        Failure::input(format!("{e}{flag}"))
    })
}

const NO_STORE: &str = "no store to work on: set CRM_TABLE_NAME (or --table) for a DynamoDB table, or --url for a crm server";

/// The store of `args`: the server's API with `--url`, else the configured DynamoDB table.
///
/// # Errors
/// Invalid configuration, or none: the in-memory store of a server is no store for a command.
pub async fn backend(args: &StoreArgs) -> Result<Backend, Failure> {
    if let Some(url) = &args.url {
        return Ok(Backend::Http(HttpApi::new(url)?));
    }
    let repository = dynamo(args).await?;
    Ok(Backend::Repository(CustomerService::new(Arc::new(
        repository,
    ))))
}

/// How long one DynamoDB operation may take in a command, unless `CRM_DYNAMODB_TIMEOUT_MS`
/// says otherwise: a bulk write of 50 customers is one transaction of up to 100 items, which a
/// throttled or busy table may take longer than the server's 3 s over, and a command has no
/// client waiting on a deadline.
pub const COMMAND_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The DynamoDB repository of `args`, for the table tools.
///
/// # Errors
/// Invalid configuration, `--url` (the table tools need the table), or no table.
pub async fn dynamo(args: &StoreArgs) -> Result<DynamoCustomerRepository, Failure> {
    if args.url.is_some() {
        return Err(Failure::input(
            "the table tools work on a DynamoDB table, not through --url: give --table (or CRM_TABLE_NAME)",
        ));
    }
    let config = config(args)?;
    let StoreConfig::DynamoDb(settings) = config.store() else {
        return Err(Failure::input(NO_STORE));
    };
    let settings = if std::env::var_os("CRM_DYNAMODB_TIMEOUT_MS").is_some() {
        settings.clone()
    } else {
        settings
            .clone()
            .with_operation_timeout(COMMAND_OPERATION_TIMEOUT)
    };
    Ok(DynamoCustomerRepository::connect(&settings)
        .await
        .with_tombstone_retention(config.tombstone_retention()))
}

/// The progress display `mode` asks for: `auto` is a bar when stderr is a terminal.
pub fn report_progress(
    mode: ProgressMode,
    label: &'static str,
    noun: Noun,
    every: Duration,
    total_bytes: Option<u64>,
) -> Reporter {
    let bar = match mode {
        ProgressMode::Off => return Reporter::Off,
        ProgressMode::Plain => false,
        ProgressMode::Bar => true,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
    };
    if bar {
        Reporter::Bar(BarReporter::new(
            ProgressDrawTarget::stderr_with_hz(10),
            total_bytes,
            noun,
        ))
    } else {
        Reporter::Plain(PlainReporter::new(std::io::stderr(), label, noun, every))
    }
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// Ctrl-C and SIGTERM, listened to from the moment they are made: a signal that comes while the
/// one before is being handled is kept for the next [`next`](Self::next) (several that come
/// before it count as one, which is all a second Ctrl-C needs), and one that comes before the
/// listening task first runs does not end the process unhandled.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
                // A stream that cannot be listened to, or has ended, never fires.
                if let Some(signal) = signal
                    && signal.recv().await.is_some()
                {
                    return;
                }
                std::future::pending::<()>().await;
            }
            tokio::select! {
                () = received(self.interrupt.as_mut()) => {}
                () = received(self.terminate.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        crm_http::server::shutdown_signal().await;
    }
}

/// Ctrl-C (and SIGTERM): the first asks the command to stop cleanly, the second ends the
/// process at once with 130.
#[derive(Clone)]
pub struct Interrupt {
    happened: Arc<AtomicBool>,
    hooks: Arc<Mutex<Vec<Hook>>>,
    /// Run by the second interrupt, just before the process ends.
    last_words: Arc<Mutex<Vec<Hook>>>,
}

impl Interrupt {
    /// Listens for the signals, from now on (before the command starts its work).
    pub fn install() -> Self {
        let interrupt = Self::inert();
        let listening = interrupt.clone();
        let mut signals = Signals::listen();
        tokio::spawn(async move {
            loop {
                signals.next().await;
                if listening.happened.swap(true, Ordering::SeqCst) {
                    crate::say(format_args!("crm: interrupted again: stopping now"));
                    if let Ok(hooks) = listening.last_words.lock() {
                        for hook in hooks.iter() {
                            hook();
                        }
                    }
                    std::process::exit(130);
                }
                crate::say(format_args!(
                    "crm: interrupted: finishing the writes under way (Ctrl-C again to stop at once)"
                ));
                if let Ok(hooks) = listening.hooks.lock() {
                    for hook in hooks.iter() {
                        hook();
                    }
                }
            }
        });
        interrupt
    }

    /// An interrupt that never happens (tests, embedding).
    pub fn inert() -> Self {
        Self {
            happened: Arc::new(AtomicBool::new(false)),
            hooks: Arc::new(Mutex::new(Vec::new())),
            last_words: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// True once interrupted.
    pub fn happened(&self) -> bool {
        self.happened.load(Ordering::SeqCst)
    }

    /// Runs `hook` when interrupted (at once if it already was).
    pub fn on_interrupt(&self, hook: impl Fn() + Send + Sync + 'static) {
        if self.happened() {
            hook();
        }
        if let Ok(mut hooks) = self.hooks.lock() {
            hooks.push(Box::new(hook));
        }
    }

    /// Runs `hook` if a second interrupt ends the process at once: what must not stay behind
    /// (a partial export file) is removed there.
    pub fn on_abort(&self, hook: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.last_words.lock() {
            hooks.push(Box::new(hook));
        }
    }
}
