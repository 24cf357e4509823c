//! `crm import`: a file's rows, validated, written through the store's bulk path, in batches,
//! several at once, with memory that does not grow with the file.
//!
//! # The pipeline
//!
//! ```text
//!  survey (1st pass: SHA-256, UTF-8, empty?)
//!     │
//!  reading thread ──▶ rows ──▶ normalise + validate ──▶ reject ─────────────────▶ ┐
//!     │                                   │ valid                                   │
//!     │                             batch of 50 (100 over HTTP)                    sink: counts,
//!     │                                   │                                        rejects file
//!     └──── bounded channel (N batches) ──▶ dispatcher ──▶ N writing tasks ──────▶ ┘
//! ```
//!
//! At most `concurrency` batches are being written and `concurrency` more wait in the channel;
//! the reading thread blocks when it is full. Rejected rows are written to the rejects file as
//! they are found. So memory holds a bounded number of rows, whatever the file's size.
//!
//! # Running the same file again
//!
//! A rerun never creates anyone twice, whether the first run finished, was interrupted, crashed
//! or met an outage:
//!
//! - a row without an id gets [`CustomerId::derived`] from the file's SHA-256 and its row
//!   number (exactly what `CustomerService::import` gives), so the same row of the same file
//!   always has the same id, and the store refuses it as taken: *already present*;
//! - a row with an email whose address is taken is matched by it.
//!
//! A refusal is not taken on trust when it could be someone else: a row whose **own** id (from
//! the file) or whose email is taken is compared with the customer stored under it, field by
//! field (names, email, phone, address). The same values: *already present*. Other values: the
//! row is **rejected**, naming the fields that differ, since importing it would be a guess
//! (another person with a reused address, or a record changed since). A taken *derived* id is
//! not compared: only this row of this very file can have it, so the customer is the one an
//! earlier run wrote, possibly edited since.
//!
//! A file changed between runs is another file: its rows without id or email cannot be matched
//! and would be created again. Fix rejected rows in the rejects file, not in the original.
//!
//! # Faults
//!
//! The repository retries throttled and conflicting writes itself; what it could not confirm
//! (the store stopped answering) is sent again with backoff for `--retry-for` (30 s unless set), then the
//! import stops, says how far it got and exits with 3: running it again finishes it. Ctrl-C
//! stops the reading, lets the batches being written finish, drops those not started, prints
//! the same account and exits with 130; a second Ctrl-C ends the process at once.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_domain::{Customer, CustomerId, FieldError, NewCustomer};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::backend::{Backend, Patience, StoreError, Written};
use crate::cli::{Format, ImportArgs};
use crate::columns::ColumnMap;
use crate::exit::{Exit, Failure};
use crate::normalize::Normalizer;
use crate::progress::{Counters, Noun, Ticker, thousands};
use crate::rejects::{LISTED, Rejects};
use crate::source::{Raw, Rows, survey};
use crate::{Interrupt, report_progress};

/// A row on its way to the store.
struct Item {
    row: u64,
    raw: Raw,
    customer: NewCustomer,
    /// True when its id was derived from the file and the row, not given.
    derived: bool,
}

/// What happened to the rows, as counted so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Rows read (customers and rejects).
    pub rows: u64,
    /// Customers created.
    pub created: u64,
    /// Rows whose customer was there already, matched by id.
    pub present_by_id: u64,
    /// Rows whose customer was there already, matched by email.
    pub present_by_email: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Valid rows (a dry run).
    pub valid: u64,
    /// Rows whose write the store never confirmed.
    pub unconfirmed: u64,
    /// Rows of a write the store refused for good (an error that trying again does not mend: the
    /// table is not one this tool made, say); not written.
    pub refused: u64,
    /// Rows read but not sent, because the import stopped.
    pub not_sent: u64,
}

struct Sink {
    tally: Tally,
    rejects: Rejects,
}

struct Shared {
    sink: Mutex<Sink>,
    counters: Arc<Counters>,
    stop: AtomicBool,
    patience: Patience,
    /// The first failure that stopped the import.
    failure: Mutex<Option<Failure>>,
    /// The first write the store refused for good: the failure told, whatever came first, since
    /// the summary points at it.
    refusal: Mutex<Option<Failure>>,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Sink) -> T) -> T {
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut sink)
    }

    fn done(&self, rows: u64) {
        self.counters.done.fetch_add(rows, Ordering::Relaxed);
    }

    fn reject(&self, row: u64, raw: &Raw, errors: &[FieldError]) -> Result<(), Failure> {
        self.done(1);
        self.with(|sink| {
            sink.tally.rejected += 1;
            sink.rejects.add(row, raw, errors)
        })
    }

    fn failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    fn fail(&self, failure: Failure) {
        self.stop.store(true, Ordering::SeqCst);
        let mut first = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.is_none() {
            *first = Some(failure);
        }
    }
}

/// Runs `crm import`; `backend` is `None` for a dry run.
///
/// # Errors
/// A failure before any row was written: the command line, the file, the rejects file.
#[expect(
    clippy::too_many_lines,
    reason = "the import's steps in order, each a few lines"
)]
pub async fn run(
    args: &ImportArgs,
    backend: Option<Arc<Backend>>,
    interrupt: &Interrupt,
) -> Result<Exit, Failure> {
    let started = Instant::now();
    let normalizer = Normalizer::new(args.phone_region.as_deref()).map_err(Failure::input)?;
    let map = ColumnMap::parse(&args.map).map_err(Failure::input)?;
    let path = args.file.clone();
    let format = args.format;
    let (survey, rows) = tokio::task::spawn_blocking(move || {
        let survey = survey(&path, format)?;
        let rows = Rows::open(&path, survey.format, map, normalizer)?;
        Ok::<_, Failure>((survey, rows))
    })
    .await
    .map_err(|e| Failure::input(format!("the reading thread failed: {e}")))??;
    let name = args.file.display().to_string();
    let rejects = match &args.rejects {
        Some(path) => Rejects::to_file(path, rows.headers())?,
        None => Rejects::counted(),
    };
    if survey.format == Format::Csv {
        note_ignored(&name, &rows.ignored());
    }
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        sink: Mutex::new(Sink {
            tally: Tally::default(),
            rejects,
        }),
        counters: Arc::clone(&counters),
        stop: AtomicBool::new(false),
        patience: Patience(args.retry_for),
        failure: Mutex::new(None),
        refusal: Mutex::new(None),
    });
    let ticker = Ticker::start(
        report_progress(
            args.progress,
            "import",
            Noun("rows"),
            args.progress_every,
            Some(survey.size),
        ),
        Arc::clone(&counters),
        Some(survey.size),
        started,
    );
    interrupt.on_interrupt({
        let shared = Arc::clone(&shared);
        move || shared.stop.store(true, Ordering::SeqCst)
    });

    let batch_size = args.batch_size.map_or_else(
        || backend.as_ref().map_or(50, |b| b.default_batch_size()),
        usize::from,
    );
    let concurrency = usize::from(args.concurrency);
    let (sender, receiver) = mpsc::channel::<Vec<Item>>(concurrency);
    let reader = {
        let shared = Arc::clone(&shared);
        let digest = survey.digest.clone();
        let dry_run = backend.is_none();
        tokio::task::spawn_blocking(move || {
            read_rows(
                rows,
                &shared,
                &digest,
                batch_size,
                if dry_run { None } else { Some(sender) },
            )
        })
    };
    if let Some(backend) = &backend {
        dispatch(receiver, backend, &survey.digest, concurrency, &shared).await;
    } else {
        drop(receiver);
    }
    let ignored = reader
        .await
        .map_err(|e| Failure::input(format!("the reading thread failed: {e}")))?;
    ticker.stop().await;
    if survey.format == Format::Jsonl {
        note_ignored(&name, &ignored);
    }
    let elapsed = started.elapsed();
    let mut sink = shared
        .sink
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(failure) = sink.rejects.finish() {
        shared.fail(failure);
    }
    let refusal = shared
        .refusal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let failure = refusal.or_else(|| {
        shared
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    });
    // A failure of the input (unreadable, rejects file) is not the store's: it has its own code.
    if let Some(failure) = &failure
        && failure.code() == 2
        && sink.tally.created + sink.tally.present_by_id + sink.tally.present_by_email == 0
    {
        return Err(failure.clone());
    }
    let interrupted = interrupt.happened();
    summary(
        &name,
        &sink,
        elapsed,
        backend.is_none(),
        interrupted,
        failure.as_ref(),
    );
    let exit = if let Some(failure) = failure {
        crate::say(format_args!("crm: {failure}"));
        if failure.code() == 2 {
            Exit::InputFailed
        } else {
            Exit::StoreFailed
        }
    } else if interrupted {
        Exit::Interrupted
    } else if sink.tally.rejected > 0 && !args.allow_rejects {
        Exit::Rejects
    } else {
        Exit::Success
    };
    Ok(exit)
}

fn note_ignored(name: &str, ignored: &[String]) {
    if !ignored.is_empty() {
        crate::say(format_args!(
            "{name}: not imported (no field of a customer): {}",
            ignored.join(", ")
        ));
    }
}

/// The reading thread: rows to rejects and batches. Returns the ignored keys (JSON Lines). A
/// failure (the file unreadable, the rejects file unwritable) stops the import through
/// `shared`, with the rows read but not sent counted.
fn read_rows(
    mut rows: Rows,
    shared: &Shared,
    digest: &str,
    batch_size: usize,
    sender: Option<mpsc::Sender<Vec<Item>>>,
) -> Vec<String> {
    let mut batch: Vec<Item> = Vec::with_capacity(batch_size);
    let mut ids: HashSet<CustomerId> = HashSet::with_capacity(batch_size);
    let send = |batch: Vec<Item>, shared: &Shared| -> bool {
        let Some(sender) = &sender else { return true };
        let count = batch.len() as u64;
        if sender.blocking_send(batch).is_err() {
            shared.with(|s| s.tally.not_sent += count);
            return false;
        }
        true
    };
    while !shared.stop.load(Ordering::SeqCst) {
        // A file that cannot be read any more stops the import as any failure does, with the
        // rows read but not sent counted.
        let record = match rows.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(failure) => {
                shared.fail(failure);
                break;
            }
        };
        shared
            .counters
            .bytes_read
            .store(rows.bytes_read(), Ordering::Relaxed);
        shared.counters.rows_read.fetch_add(1, Ordering::Relaxed);
        shared.with(|s| s.tally.rows += 1);
        let mut customer = match record.customer {
            Ok(customer) => customer,
            Err(errors) => {
                // The rejects file cannot be written: stop as a failure does, so that the rows
                // read but not sent are counted.
                if let Err(failure) = shared.reject(record.row, &record.raw, &errors) {
                    shared.fail(failure);
                    break;
                }
                continue;
            }
        };
        if sender.is_none() {
            shared.done(1);
            shared.with(|s| s.tally.valid += 1);
            continue;
        }
        let derived = customer.id.is_none();
        let id = customer
            .id
            .get_or_insert_with(|| CustomerId::derived(digest, record.row))
            .clone();
        // No two customers of one write share an id: the store's answer is by id.
        if ids.contains(&id) {
            ids.clear();
            if !send(std::mem::take(&mut batch), shared) {
                break;
            }
        }
        ids.insert(id);
        batch.push(Item {
            row: record.row,
            raw: record.raw,
            customer,
            derived,
        });
        if batch.len() >= batch_size {
            ids.clear();
            if !send(
                std::mem::replace(&mut batch, Vec::with_capacity(batch_size)),
                shared,
            ) {
                break;
            }
        }
    }
    if shared.stop.load(Ordering::SeqCst) {
        // Interrupted or failed: the partial batch is not started.
        let count = batch.len() as u64;
        shared.with(|s| s.tally.not_sent += count);
    } else if !batch.is_empty() {
        send(batch, shared);
    }
    shared
        .counters
        .bytes_read
        .store(rows.bytes_read(), Ordering::Relaxed);
    // The channel closes here, which ends the dispatcher's loop.
    drop(sender);
    rows.ignored()
}

/// Takes batches off the channel and writes up to `concurrency` at once.
async fn dispatch(
    mut receiver: mpsc::Receiver<Vec<Item>>,
    backend: &Arc<Backend>,
    source: &str,
    concurrency: usize,
    shared: &Arc<Shared>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let source: Arc<str> = Arc::from(source);
    while let Some(batch) = receiver.recv().await {
        if shared.stop.load(Ordering::SeqCst) {
            let count = batch.len() as u64;
            shared.with(|s| s.tally.not_sent += count);
            continue;
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let backend = Arc::clone(backend);
        let shared = Arc::clone(shared);
        let source = Arc::clone(&source);
        tasks.spawn(async move {
            if let Err(failure) = write_batch(&backend, &source, batch, &shared).await {
                shared.fail(failure);
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Writes one batch, sending unconfirmed customers again with backoff, and accounts for every
/// row of it.
async fn write_batch(
    backend: &Backend,
    source: &str,
    batch: Vec<Item>,
    shared: &Shared,
) -> Result<(), Failure> {
    let mut pending = batch;
    let mut waits = shared.patience.waits();
    loop {
        let customers: Vec<NewCustomer> = pending.iter().map(|i| i.customer.clone()).collect();
        let (outcomes, trouble) = match backend.put(source, customers).await {
            Ok(outcomes) => (outcomes, None),
            Err(error) if error.transient => {
                (vec![Written::Unconfirmed; pending.len()], Some(error))
            }
            Err(error) => {
                let count = pending.len() as u64;
                shared.with(|s| s.tally.refused += count);
                let failure =
                    Failure::store(format!("the store refused a write: {}", error.message));
                shared
                    .refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert_with(|| failure.clone());
                return Err(failure);
            }
        };
        let mut again = Vec::new();
        let mut outcomes = pending.into_iter().zip(outcomes);
        while let Some((item, outcome)) = outcomes.next() {
            if let Err(stop) = account(backend, shared, item, outcome, &mut again).await {
                // Every other row of the batch is counted once, by what the store answered; those
                // that were to be sent again as unconfirmed (a rerun settles them).
                for (item, outcome) in outcomes {
                    account_known(shared, item, outcome, &mut again);
                }
                let count = again.len() as u64;
                shared.with(|s| s.tally.unconfirmed += count);
                return match stop {
                    Stop::Failed(failure) => Err(failure),
                    // The reason of the stop is told by whoever stopped it.
                    Stop::Stopped => Ok(()),
                };
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        let wait = waits.next().filter(|_| !shared.stop.load(Ordering::SeqCst));
        let Some(wait) = wait else {
            let count = again.len() as u64;
            shared.with(|s| s.tally.unconfirmed += count);
            if shared.stop.load(Ordering::SeqCst) && !shared.failed() {
                // Interrupted: counted, and not a failure of the store.
                return Ok(());
            }
            let why = trouble.map_or_else(|| "it did not confirm writes".to_owned(), |e| e.message);
            return Err(Failure::store(format!(
                "the store stopped answering: {why}"
            )));
        };
        tokio::time::sleep(wait).await;
        pending = again;
    }
}

/// Why the accounting of a batch stopped before its end.
enum Stop {
    /// The store, or the rejects file, failed.
    Failed(Failure),
    /// The import is stopping (an interrupt, or a failure elsewhere) and a read back gave up.
    Stopped,
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

/// Accounts for one row of a batch by the store's answer: created, to send `again`, rejected, or
/// present (read back to tell). On an error the row is counted all the same: as rejected when
/// the rejects file failed, as unconfirmed when the read back did.
async fn account(
    backend: &Backend,
    shared: &Shared,
    item: Item,
    outcome: Written,
    again: &mut Vec<Item>,
) -> Result<(), Stop> {
    let unconfirmed = |stop: Stop| {
        shared.with(|s| s.tally.unconfirmed += 1);
        stop
    };
    match outcome {
        Written::Created => {
            shared.done(1);
            shared.with(|s| s.tally.created += 1);
        }
        Written::Unconfirmed => again.push(item),
        Written::Invalid(errors) => shared.reject(item.row, &item.raw, &errors)?,
        Written::IdTaken if item.derived => {
            shared.done(1);
            shared.with(|s| s.tally.present_by_id += 1);
        }
        Written::IdTaken => {
            let stored = match &item.customer.id {
                Some(id) => read_back(shared, || backend.get(id))
                    .await
                    .map_err(unconfirmed)?,
                None => None,
            };
            settle(shared, &item, stored.as_ref(), Matched::Id)?;
        }
        Written::EmailTaken => {
            let stored = match &item.customer.email {
                Some(email) => find_by_email(backend, shared, email)
                    .await
                    .map_err(unconfirmed)?,
                None => None,
            };
            settle(shared, &item, stored.as_ref(), Matched::Email)?;
        }
    }
    Ok(())
}

/// Accounts for a row of a batch whose accounting stopped: by what the store already answered,
/// without asking it anything more. A row that needed a read back is unconfirmed (a rerun
/// settles it).
fn account_known(shared: &Shared, item: Item, outcome: Written, again: &mut Vec<Item>) {
    match outcome {
        Written::Created => {
            shared.done(1);
            shared.with(|s| s.tally.created += 1);
        }
        Written::Unconfirmed => again.push(item),
        // Counted even when the rejects file fails again: that failure is told already.
        Written::Invalid(errors) => {
            let _ = shared.reject(item.row, &item.raw, &errors);
        }
        Written::IdTaken if item.derived => {
            shared.done(1);
            shared.with(|s| s.tally.present_by_id += 1);
        }
        Written::IdTaken | Written::EmailTaken => shared.with(|s| s.tally.unconfirmed += 1),
    }
}

/// Reads back a customer, trying again while the store is unavailable.
async fn read_back<F, Fut>(shared: &Shared, read: F) -> Result<Option<Customer>, Stop>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<Customer>, StoreError>>,
{
    let mut waits = shared.patience.waits();
    loop {
        match read().await {
            Ok(found) => return Ok(found),
            // Given up for the stop, not for the store: an interrupt (or another failure) told.
            Err(error) if error.transient && shared.stop.load(Ordering::SeqCst) => {
                return Err(Stop::Stopped);
            }
            Err(error) if error.transient => {
                let Some(wait) = waits.next() else {
                    return Err(Stop::Failed(Failure::store(format!(
                        "the store stopped answering: {}",
                        error.message
                    ))));
                };
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                return Err(Stop::Failed(Failure::store(format!(
                    "the store refused a read: {}",
                    error.message
                ))));
            }
        }
    }
}

/// The customer holding `email`: the lookup may lag the write that took the address by a
/// moment (an index), so a miss is asked again a few times.
async fn find_by_email(
    backend: &Backend,
    shared: &Shared,
    email: &crm_domain::Email,
) -> Result<Option<Customer>, Stop> {
    for _ in 0..10 {
        if let Some(found) = read_back(shared, || backend.find_by_email(email)).await? {
            return Ok(Some(found));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matched {
    Id,
    Email,
}

/// Accounts for a row whose id or email is taken, by comparing it with the customer stored.
fn settle(
    shared: &Shared,
    item: &Item,
    stored: Option<&Customer>,
    matched: Matched,
) -> Result<(), Failure> {
    let field = match matched {
        Matched::Id => "id",
        Matched::Email => "email",
    };
    let Some(stored) = stored else {
        return shared.reject(
            item.row,
            &item.raw,
            &[FieldError::new(
                field,
                "is taken, but the customer holding it could not be read back; import the row again",
            )],
        );
    };
    let differ = differences(&item.customer, stored, !item.derived);
    if differ.is_empty() {
        shared.done(1);
        shared.with(|s| match matched {
            Matched::Id => s.tally.present_by_id += 1,
            Matched::Email => s.tally.present_by_email += 1,
        });
        return Ok(());
    }
    let whose = match matched {
        Matched::Id => "is taken by a customer",
        Matched::Email => "belongs to a customer",
    };
    shared.reject(
        item.row,
        &item.raw,
        &[FieldError::new(
            field,
            format!(
                "{whose} whose {} {}; nothing was changed",
                differ.join(", "),
                if differ.len() == 1 {
                    "differs"
                } else {
                    "differ"
                }
            ),
        )],
    )
}

/// The fields in which a row differs from a stored customer (the id only when the row gave
/// one).
pub fn differences(row: &NewCustomer, stored: &Customer, compare_id: bool) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if compare_id && row.id.as_ref() != Some(stored.id()) {
        fields.push("id");
    }
    if &row.first_name != stored.first_name() {
        fields.push("firstName");
    }
    if &row.last_name != stored.last_name() {
        fields.push("lastName");
    }
    if row.email.as_ref().map(crm_domain::Email::normalized)
        != stored.email().map(crm_domain::Email::normalized)
    {
        fields.push("email");
    }
    if row.phone.as_ref() != stored.phone() {
        fields.push("phone");
    }
    if row.address.as_ref() != stored.address() {
        fields.push("address");
    }
    fields
}

/// `n` rows, in words: `1 row`, `12,345 rows`.
fn rows(n: u64) -> String {
    crate::progress::quantity(n, "row", "rows")
}

/// The rows an import that stopped early did not write: refused by the store, unconfirmed, or
/// not sent.
fn unfinished(out: &mut impl io::Write, t: &Tally) {
    if t.refused > 0 {
        let _ = writeln!(
            out,
            "not written: {} the store refused (its error is below; sending them again will not help until that is mended)",
            rows(t.refused)
        );
    }
    if t.unconfirmed + t.not_sent > 0 {
        let _ = writeln!(
            out,
            "not finished: {} unconfirmed (the store did not answer), {} read but not sent",
            rows(t.unconfirmed),
            thousands(t.not_sent)
        );
    }
}

/// The account of the import, on stdout: counts, the first rejects, what to do next.
fn summary(
    name: &str,
    sink: &Sink,
    elapsed: Duration,
    dry_run: bool,
    interrupted: bool,
    failure: Option<&Failure>,
) {
    let t = sink.tally;
    let mut out = io::stdout().lock();
    let seconds = elapsed.as_secs_f64();
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rate for people to read"
    )]
    let rate = if seconds > 0.0 {
        (t.rows as f64 / seconds) as u64
    } else {
        0
    };
    let _ = writeln!(
        out,
        "{name}: {} read in {seconds:.1} s ({} rows/s)",
        rows(t.rows),
        thousands(rate)
    );
    if dry_run {
        let _ = writeln!(
            out,
            "dry run: {} valid, {} rejected; nothing was written",
            thousands(t.valid),
            thousands(t.rejected)
        );
    } else {
        let present = t.present_by_id + t.present_by_email;
        let mut line = format!(
            "created {}, already present {}, rejected {}",
            thousands(t.created),
            thousands(present),
            thousands(t.rejected)
        );
        if t.present_by_email > 0 {
            let _ = write!(
                line,
                " ({} of those present matched by email)",
                thousands(t.present_by_email)
            );
        }
        let _ = writeln!(out, "{line}");
        unfinished(&mut out, &t);
    }
    if t.rejected > 0 {
        let listed = sink.rejects.listed();
        let _ = writeln!(out, "rejected rows:");
        for line in listed {
            let _ = writeln!(out, "  {line}");
        }
        if t.rejected > LISTED {
            let _ = writeln!(out, "  … and {} more", thousands(t.rejected - LISTED));
        }
        match sink.rejects.path() {
            Some(path) => {
                let _ = writeln!(
                    out,
                    "the rejected rows, as they were, with their reasons: {} (fix them there and import that file)",
                    path.display()
                );
            }
            None => {
                let _ = writeln!(out, "write them all to a file to fix with --rejects FILE");
            }
        }
    }
    if interrupted || failure.is_some_and(|f| f.code() == 3) {
        let _ = writeln!(
            out,
            "{}: {}run the same command again to finish; rows already imported are found, not created twice",
            if interrupted {
                "interrupted"
            } else {
                "stopped"
            },
            if t.refused > 0 {
                "mend what the store refused, then "
            } else {
                ""
            }
        );
    }
    if t.rows == 0 && !interrupted && failure.is_none() {
        let _ = writeln!(
            out,
            "{name} has no rows after its header: nothing to import"
        );
    }
}
