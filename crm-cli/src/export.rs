//! `crm export`: every customer, page by page (100 a page, in the order asked for), as JSON
//! Lines or CSV, to stdout or a file.
//!
//! JSON Lines holds each customer as the API returns it. CSV holds the columns import reads
//! ([`Column::ALL`]: `id`, `firstName`, …, `address.country`), then `createdAt`, `updatedAt` and
//! `version`, which import skips: those are the server's to set. So an export imports back into
//! an empty store as the same customers, ids included (with new timestamps and version 1).
//!
//! A file given with `-o` is written beside itself first and takes its name only when the export
//! is complete: an interrupted or failed export never leaves a truncated file under that name.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crm_domain::Customer;

use crate::backend::{Backend, Patience};
use crate::cli::{ExportArgs, Format};
use crate::columns::{Column, SERVER_COLUMNS};
use crate::exit::{Exit, Failure};
use crate::progress::{Counters, Noun, Ticker, thousands};
use crate::{Interrupt, report_progress};

#[expect(clippy::large_enum_variant, reason = "one per export")]
enum Writer {
    Csv(csv::Writer<Box<dyn Write>>),
    Jsonl(BufWriter<Box<dyn Write>>),
}

impl Writer {
    fn new(format: Format, out: Box<dyn Write>) -> io::Result<Self> {
        Ok(match format {
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                let mut header: Vec<&str> = Column::ALL.map(Column::name).to_vec();
                header.extend(SERVER_COLUMNS);
                writer.write_record(&header).map_err(io::Error::from)?;
                Self::Csv(writer)
            }
            Format::Jsonl => Self::Jsonl(BufWriter::with_capacity(256 * 1024, out)),
        })
    }

    fn write(&mut self, customer: &Customer) -> io::Result<()> {
        match self {
            Self::Csv(writer) => writer.write_record(row(customer)).map_err(io::Error::from),
            Self::Jsonl(writer) => {
                serde_json::to_writer(&mut *writer, customer)?;
                writer.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Csv(writer) => writer.flush(),
            Self::Jsonl(writer) => writer.flush(),
        }
    }
}

/// A customer's CSV record, in the export's column order.
pub fn row(customer: &Customer) -> Vec<String> {
    let address = customer.address();
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    vec![
        customer.id().to_string(),
        customer.first_name().to_string(),
        customer.last_name().to_string(),
        text(customer.email().map(crm_domain::Email::as_str)),
        text(customer.phone().map(crm_domain::Phone::as_str)),
        text(address.map(|a| a.line1.as_str())),
        text(
            address
                .and_then(|a| a.line2.as_ref())
                .map(crm_domain::AddressText::as_str),
        ),
        text(
            address
                .and_then(|a| a.city.as_ref())
                .map(crm_domain::AddressText::as_str),
        ),
        text(
            address
                .and_then(|a| a.region.as_ref())
                .map(crm_domain::AddressText::as_str),
        ),
        text(
            address
                .and_then(|a| a.postal_code.as_ref())
                .map(crm_domain::AddressText::as_str),
        ),
        text(
            address
                .and_then(|a| a.country.as_ref())
                .map(crm_domain::CountryCode::as_str),
        ),
        customer.created_at().to_string(),
        customer.updated_at().to_string(),
        customer.version().to_string(),
    ]
}

/// Where the export goes: stdout, or a file written under a temporary name first.
struct Destination {
    target: Option<PathBuf>,
    partial: Option<PathBuf>,
}

impl Destination {
    /// Opens the output; a partial file is registered with `interrupt` for removal by a second
    /// Ctrl-C before it exists, so that no moment leaves it behind.
    fn open(
        output: Option<&Path>,
        interrupt: &Interrupt,
    ) -> Result<(Self, Box<dyn Write>), Failure> {
        let Some(target) = output else {
            return Ok((
                Self {
                    target: None,
                    partial: None,
                },
                Box::new(io::stdout().lock()),
            ));
        };
        let file_name = target
            .file_name()
            .ok_or_else(|| Failure::input(format!("-o {}: not a file name", target.display())))?;
        // Found now, not after the whole export has been written beside it.
        if target.is_dir() {
            return Err(Failure::input(format!(
                "-o {}: is a directory; name a file",
                target.display()
            )));
        }
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(file_name);
        partial_name.push(format!(".partial-{}", std::process::id()));
        let partial = target.with_file_name(partial_name);
        // It will hold the customers exported so far: a second Ctrl-C must not leave it behind.
        let doomed = partial.clone();
        interrupt.on_abort(move || {
            let _ = std::fs::remove_file(&doomed);
        });
        let file = File::create(&partial)
            .map_err(|e| Failure::input(format!("cannot write {}: {e}", target.display())))?;
        Ok((
            Self {
                target: Some(target.to_owned()),
                partial: Some(partial),
            },
            Box::new(file),
        ))
    }

    fn complete(&self) -> Result<(), Failure> {
        if let (Some(target), Some(partial)) = (&self.target, &self.partial) {
            // The partial file holds every customer: it must not stay behind.
            std::fs::rename(partial, target).map_err(|e| {
                self.abandon();
                Failure::input(format!("cannot write {}: {e}", target.display()))
            })?;
        }
        Ok(())
    }

    fn abandon(&self) {
        if let Some(partial) = &self.partial {
            let _ = std::fs::remove_file(partial);
        }
    }

    fn name(&self) -> String {
        self.target
            .as_ref()
            .map_or_else(|| "stdout".to_owned(), |t| t.display().to_string())
    }
}

/// Runs `crm export`.
///
/// # Errors
/// The output cannot be written (2), or the store failed past every retry (3).
pub async fn run(
    args: &ExportArgs,
    backend: Arc<Backend>,
    interrupt: &Interrupt,
) -> Result<Exit, Failure> {
    let started = Instant::now();
    let format = args.format.unwrap_or_else(|| {
        let csv = args
            .output
            .as_ref()
            .and_then(|p| p.extension())
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv { Format::Csv } else { Format::Jsonl }
    });
    let (destination, out) = Destination::open(args.output.as_deref(), interrupt)?;
    let name = destination.name();
    let counters = Arc::new(Counters::default());
    let ticker = Ticker::start(
        report_progress(
            args.progress,
            "export",
            Noun("customers"),
            args.progress_every,
            None,
        ),
        Arc::clone(&counters),
        None,
        started,
    );
    let result = walk(args, &backend, format, out, &counters, interrupt).await;
    ticker.stop().await;
    let exported = counters.done.load(Ordering::Relaxed);
    match result {
        Ok(()) => {
            destination.complete()?;
            let seconds = started.elapsed().as_secs_f64();
            #[expect(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a rate for people to read"
            )]
            let rate = if seconds > 0.0 {
                (exported as f64 / seconds) as u64
            } else {
                0
            };
            crate::say(format_args!(
                "exported {} in {seconds:.1} s ({} customers/s) to {name}",
                crate::progress::quantity(exported, "customer", "customers"),
                thousands(rate)
            ));
            Ok(Exit::Success)
        }
        Err(Stop::Interrupted) => {
            destination.abandon();
            crate::say(format_args!(
                "interrupted after {}: the export is incomplete{}",
                crate::progress::quantity(exported, "customer", "customers"),
                if destination.target.is_some() {
                    format!(" and {name} was not written")
                } else {
                    String::new()
                }
            ));
            Ok(Exit::Interrupted)
        }
        Err(Stop::ClosedPipe) => Ok(Exit::Success),
        Err(Stop::Failed(failure)) => {
            destination.abandon();
            Err(failure)
        }
    }
}

enum Stop {
    Interrupted,
    /// The reader of stdout went away (`crm export | head`): a normal end.
    ClosedPipe,
    Failed(Failure),
}

async fn walk(
    args: &ExportArgs,
    backend: &Backend,
    format: Format,
    out: Box<dyn Write>,
    counters: &Counters,
    interrupt: &Interrupt,
) -> Result<(), Stop> {
    let written = |e: io::Error| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stop::ClosedPipe
        } else {
            Stop::Failed(Failure::input(format!("cannot write the export: {e}")))
        }
    };
    let mut writer = Writer::new(format, out).map_err(written)?;
    let mut cursor: Option<String> = None;
    loop {
        if interrupt.happened() {
            return Err(Stop::Interrupted);
        }
        let (items, next) = page(backend, args, cursor.as_deref(), interrupt).await?;
        for customer in &items {
            writer.write(customer).map_err(written)?;
        }
        counters
            .done
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    writer.flush().map_err(written)
}

async fn page(
    backend: &Backend,
    args: &ExportArgs,
    cursor: Option<&str>,
    interrupt: &Interrupt,
) -> Result<crate::backend::Page, Stop> {
    let mut waits = Patience(args.retry_for).waits();
    loop {
        match backend.page(args.sort, cursor).await {
            Ok(page) => return Ok(page),
            Err(error) if error.transient && !interrupt.happened() => {
                let Some(wait) = waits.next() else {
                    return Err(Stop::Failed(Failure::store(format!(
                        "the export stopped: {}",
                        error.message
                    ))));
                };
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                return Err(Stop::Failed(Failure::store(format!(
                    "the export stopped: {}",
                    error.message
                ))));
            }
        }
    }
}
