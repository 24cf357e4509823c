//! `memory-flat`: the memory store's point operations at two sizes, measured so that the machine's
//! drift cancels out of their ratio.
//!
//! ```text
//! memory-flat [--rounds 200] [--ops 2000] [--sizes 10000,1000000] [--only patch,create,...]
//! memory-flat --callgrind SIZE [--rounds 2] [--ops 3000] [--only ...] [--wait-for PATH]
//! ```
//!
//! Both stores are built first ([`crm_benches::store::store`], the store of the criterion bench
//! `memory`). Then, round after round, each operation runs `--ops` times on one store and at once on
//! the other (the first size first in even rounds, the second first in odd ones), each batch timed
//! alone: a round's ratio compares two batches milliseconds apart, so a machine whose speed drifts
//! over seconds (a shared VM) moves both alike. It prints, per operation, the median of the rounds'
//! ratios (second size ÷ first) with its interquartile range, and the median time per operation at
//! each size.
//!
//! Every batch works on customers spread across its store: the next `--ops` of a fixed shuffle of
//! the customers the import neither patched nor deleted, so that an operation at a million
//! customers reads and moves index entries all over the store, not one customer the processor
//! keeps in its caches. A batch gets its ids and emails from copies of their own, so nothing
//! warms the store's memory of its customers before it is timed. The writes leave each store as
//! big as they found it; a customer deleted and created again is created as first imported (its
//! patches undone, as the criterion bench's), and `create` is the criterion bench's too: the create
//! of an id just deleted (untimed), whose index paths that delete left in the caches:
//!
//! | operation | timed | untimed, after |
//! | --- | --- | --- |
//! | `get`, `get-by-email` | a get of each | |
//! | `patch` | a phone set on each, each a millisecond after the one before | |
//! | `create` | each created again (its id has a tombstone) | (before) each deleted |
//! | `delete` | each deleted | each created again |
//! | `delete-recreate` | each deleted and created again | |
//!
//! With `--callgrind SIZE` it builds that one store, runs one round untimed and then `--rounds`
//! rounds, each operation's batch in a function of its own (`batch_get`, …, `batch_delete_recreate`),
//! for valgrind to count per operation (`benches/memory-flat-callgrind.sh` does it all):
//!
//! ```text
//! valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no --collect-atstart=no \
//!     --toggle-collect='memory_flat::batch_*' --zero-before='memory_flat::measured' \
//!     target/release/memory-flat --callgrind 1000000 --wait-for /tmp/go &
//! # once it printed "built": callgrind_control -i on <pid>; touch /tmp/go
//! callgrind_annotate --inclusive=yes --threshold=100 callgrind.out.<pid>
//! ```
//!
//! Each `batch_*` line's inclusive counts, divided by `--rounds × --ops` (printed), are the counts
//! per operation. `--wait-for PATH` holds the run after the build until PATH exists, so that the
//! build (minutes under instrumentation, at a million customers) runs uninstrumented.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use crm_benches::store::{is_deleted, is_patched, ready, spread, store};
use crm_domain::{Customer, CustomerId, CustomerPatch, CustomerRepository, Email, Timestamp};
use crm_memory::InMemoryCustomerRepository;
use serde_json::json;

/// The point operations, in the order each round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Get,
    GetByEmail,
    Patch,
    Create,
    Delete,
    DeleteRecreate,
}

impl Op {
    const ALL: [Self; 6] = [
        Self::Get,
        Self::GetByEmail,
        Self::Patch,
        Self::Create,
        Self::Delete,
        Self::DeleteRecreate,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::GetByEmail => "get-by-email",
            Self::Patch => "patch",
            Self::Create => "create",
            Self::Delete => "delete",
            Self::DeleteRecreate => "delete-recreate",
        }
    }
}

/// A store of the bench and the customers its batches take in turn.
struct Filled {
    size: usize,
    /// How many customers the store holds when built, and must hold after each batch's writes.
    len: usize,
    repo: InMemoryCustomerRepository,
    /// The customers the import neither patched nor deleted, shuffled, as first created.
    pool: Vec<Customer>,
    /// The ids and the emails of `pool`, copies of their own: a batch reads them as a request
    /// brings them, without touching the memory of the customers the store holds.
    ids: Vec<CustomerId>,
    emails: Vec<Email>,
    /// Where the next batch starts in `pool`.
    next: usize,
}

/// The customers of one batch: which of the pool.
struct Batch {
    ids: Vec<CustomerId>,
    emails: Vec<Email>,
    /// The customers themselves, for the operations that create: copies of their own, so that
    /// nothing the store holds is touched before the batch (a `Customer` is shared by reference
    /// count, and a clone of the store's would bring its memory into the caches).
    customers: Vec<Customer>,
}

/// `customer` in memory of its own: the pool keeps such copies, and a batch creates from new
/// copies of them, so no customer the store holds shares its memory with the pool.
fn deep_copy(customer: &Customer) -> Customer {
    serde_json::to_value(customer)
        .and_then(serde_json::from_value)
        .unwrap_or_else(|error| panic!("a customer reads back as itself: {error}"))
}

impl Filled {
    fn new(size: usize) -> Self {
        let (repo, customers) = store(size);
        let mut keyed: Vec<(usize, usize)> = (0..size)
            .filter(|&i| !is_patched(i) && !is_deleted(i))
            .map(|i| (spread(i, 5), i))
            .collect();
        keyed.sort_unstable();
        let pool: Vec<Customer> = keyed
            .into_iter()
            .map(|(_, i)| deep_copy(&customers[i]))
            .collect();
        let ids = pool.iter().map(|c| c.id().clone()).collect();
        let emails = pool
            .iter()
            .map(|c| {
                c.email()
                    .cloned()
                    .unwrap_or_else(|| panic!("every customer has an email"))
            })
            .collect();
        Self {
            size,
            len: repo.len(),
            repo,
            pool,
            ids,
            emails,
            next: 0,
        }
    }

    /// Refuses a batch larger than the pool: it would take a customer twice.
    fn check_ops(&self, ops: usize) -> anyhow::Result<()> {
        if ops > self.pool.len() {
            bail!(
                "--ops {ops} is more than the {} customers a batch can take at {} customers",
                self.pool.len(),
                self.size
            );
        }
        Ok(())
    }

    /// The next `ops` customers of the pool. Nothing here reads the store: what a batch finds in
    /// the processor's caches is what the operations before it left there.
    fn take(&mut self, op: Op, ops: usize) -> Batch {
        let window: Vec<usize> = (0..ops)
            .map(|k| (self.next + k) % self.pool.len())
            .collect();
        self.next = (self.next + ops) % self.pool.len();
        let creates = matches!(op, Op::Create | Op::Delete | Op::DeleteRecreate);
        Batch {
            ids: window.iter().map(|&k| self.ids[k].clone()).collect(),
            emails: if op == Op::GetByEmail {
                window.iter().map(|&k| self.emails[k].clone()).collect()
            } else {
                Vec::new()
            },
            customers: if creates {
                window.iter().map(|&k| deep_copy(&self.pool[k])).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// Sets a phone, as the criterion bench's `patch a phone`.
struct Patcher {
    patch: CustomerPatch,
    /// The time of the last patch: each one a millisecond later moves its customer's entry in the
    /// `updatedAt` order, as a client's patches do.
    now: Timestamp,
}

#[inline(never)]
fn batch_get(repo: &InMemoryCustomerRepository, ids: &[CustomerId]) {
    for id in ids {
        let found = ready(repo.get(black_box(id)));
        assert!(matches!(found, Ok(Some(_))), "get: {found:?}");
    }
}

#[inline(never)]
fn batch_get_by_email(repo: &InMemoryCustomerRepository, emails: &[Email]) {
    for email in emails {
        let found = ready(repo.find_by_email(black_box(email)));
        assert!(matches!(found, Ok(Some(_))), "get by email: {found:?}");
    }
}

#[inline(never)]
fn batch_patch(repo: &InMemoryCustomerRepository, ids: &[CustomerId], patcher: &mut Patcher) {
    for id in ids {
        patcher.now = patcher.now.after(Duration::from_millis(1));
        let done = ready(repo.update(black_box(id), &patcher.patch, None, patcher.now));
        assert!(done.is_ok(), "patch: {done:?}");
    }
}

#[inline(never)]
fn batch_create(repo: &InMemoryCustomerRepository, customers: &[Customer]) {
    for customer in customers {
        let done = ready(repo.create(black_box(customer)));
        assert!(done.is_ok(), "create: {done:?}");
    }
}

#[inline(never)]
fn batch_delete(repo: &InMemoryCustomerRepository, ids: &[CustomerId]) {
    for id in ids {
        let done = ready(repo.delete(black_box(id), None));
        assert!(done.is_ok(), "delete: {done:?}");
    }
}

#[inline(never)]
fn batch_delete_recreate(
    repo: &InMemoryCustomerRepository,
    ids: &[CustomerId],
    customers: &[Customer],
) {
    for (id, customer) in ids.iter().zip(customers) {
        let deleted = ready(repo.delete(black_box(id), None));
        let created = ready(repo.create(black_box(customer)));
        assert!(
            deleted.is_ok() && created.is_ok(),
            "delete and re-create: {deleted:?}, {created:?}"
        );
    }
}

/// The time `f` takes.
fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Runs `op` on the next `ops` customers of `filled`; the time of its timed part.
fn measure(op: Op, filled: &mut Filled, ops: usize, patcher: &mut Patcher) -> Duration {
    let Batch {
        ids,
        emails,
        customers,
    } = filled.take(op, ops);
    let repo = &filled.repo;
    match op {
        Op::Get => timed(|| batch_get(repo, &ids)),
        Op::GetByEmail => timed(|| batch_get_by_email(repo, &emails)),
        Op::Patch => timed(|| batch_patch(repo, &ids, patcher)),
        Op::Create => {
            for id in &ids {
                let _ = ready(repo.delete(id, None));
            }
            timed(|| batch_create(repo, &customers))
        }
        Op::Delete => {
            let time = timed(|| batch_delete(repo, &ids));
            for customer in &customers {
                let _ = ready(repo.create(customer));
            }
            time
        }
        Op::DeleteRecreate => timed(|| batch_delete_recreate(repo, &ids, &customers)),
    }
}

/// Nanoseconds per operation of a batch of `ops` that took `time`.
fn per_op(time: Duration, ops: usize) -> f64 {
    time.as_secs_f64() * 1e9 / f64::from(u32::try_from(ops).unwrap_or(u32::MAX))
}

/// The value at quantile `q` of `sorted` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    let rank = (q * f64::from(u32::try_from(last).unwrap_or(u32::MAX))).round();
    // `rank` is within 0..=last, which came from a usize.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = rank as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Per operation: the ratio of every round, and the time per operation at each size.
#[derive(Default)]
struct Samples {
    ratios: Vec<f64>,
    first: Vec<f64>,
    second: Vec<f64>,
}

struct Args {
    rounds: usize,
    ops: usize,
    sizes: [usize; 2],
    only: Vec<Op>,
    callgrind: Option<usize>,
    wait_for: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        rounds: 200,
        ops: 2_000,
        sizes: [10_000, 1_000_000],
        only: Op::ALL.to_vec(),
        callgrind: None,
        wait_for: None,
    };
    let mut rounds = None;
    let mut ops = None;
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => rounds = Some(value.parse().context("--rounds")?),
            "--ops" => ops = Some(value.parse().context("--ops")?),
            "--sizes" => {
                let sizes: Vec<usize> = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--sizes")?;
                args.sizes = sizes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("--sizes takes two sizes"))?;
            }
            "--only" => {
                args.only = value
                    .split(',')
                    .map(|name| {
                        Op::ALL
                            .into_iter()
                            .find(|op| op.name() == name)
                            .with_context(|| format!("no operation {name}"))
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--callgrind" => args.callgrind = Some(value.parse().context("--callgrind")?),
            "--wait-for" => args.wait_for = Some(PathBuf::from(value)),
            _ => bail!("unknown flag {flag}"),
        }
    }
    let callgrind = args.callgrind.is_some();
    args.rounds = rounds.unwrap_or(if callgrind { 2 } else { args.rounds });
    args.ops = ops.unwrap_or(if callgrind { 3_000 } else { args.ops });
    if args.rounds == 0 || args.ops == 0 {
        bail!("--rounds and --ops must be positive");
    }
    Ok(args)
}

/// The rounds valgrind counts (`--zero-before=memory_flat::measured`).
#[inline(never)]
fn measured(args: &Args, filled: &mut Filled, patcher: &mut Patcher) {
    for _ in 0..args.rounds {
        for &op in &args.only {
            measure(op, filled, args.ops, patcher);
        }
    }
}

fn callgrind(args: &Args, size: usize, patcher: &mut Patcher) -> anyhow::Result<()> {
    let mut filled = Filled::new(size);
    filled.check_ops(args.ops)?;
    eprintln!("memory-flat: built {size} customers");
    if let Some(path) = &args.wait_for {
        while !path.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for &op in &args.only {
        measure(op, &mut filled, args.ops, patcher);
    }
    measured(args, &mut filled, patcher);
    anyhow::ensure!(
        filled.repo.len() == filled.len,
        "the store holds {} customers after the measured batches, not {}",
        filled.repo.len(),
        filled.len
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{size} customers: {} operations of each of {} in the batch_* functions",
        args.rounds * args.ops,
        args.only
            .iter()
            .map(|op| op.name())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut patcher = Patcher {
        patch: CustomerPatch::from_json(&json!({"phone": "+441234567890"})).context("the patch")?,
        now: Timestamp::now(),
    };
    if let Some(size) = args.callgrind {
        return callgrind(&args, size, &mut patcher);
    }
    let started = Instant::now();
    let mut stores = args.sizes.map(Filled::new);
    for store in &stores {
        store.check_ops(args.ops)?;
    }
    eprintln!(
        "memory-flat: built {} and {} customers in {:.1?}",
        stores[0].size,
        stores[1].size,
        started.elapsed()
    );
    // A few rounds untimed: the code and the first pages of each store's memory warm.
    for _ in 0..3 {
        for &op in &args.only {
            for filled in &mut stores {
                measure(op, filled, args.ops, &mut patcher);
            }
        }
    }
    let started = Instant::now();
    let mut samples: BTreeMap<Op, Samples> = BTreeMap::new();
    for round in 0..args.rounds {
        for &op in &args.only {
            let mut times = [0.0; 2];
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                times[which] = per_op(
                    measure(op, &mut stores[which], args.ops, &mut patcher),
                    args.ops,
                );
            }
            let entry = samples.entry(op).or_default();
            entry.ratios.push(times[1] / times[0]);
            entry.first.push(times[0]);
            entry.second.push(times[1]);
        }
    }
    eprintln!("memory-flat: measured in {:.1?}", started.elapsed());
    for filled in &stores {
        assert_eq!(filled.repo.len(), filled.len, "the store kept its size");
    }
    let [small, big] = args.sizes;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} rounds of {} operations; ratio = ns/op at {big} ÷ ns/op at {small}, per round",
        args.rounds, args.ops
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| operation | median ratio | IQR of the ratio | median ns/op at {small} | median ns/op at {big} |"
    )?;
    writeln!(out, "| --- | ---: | ---: | ---: | ---: |")?;
    for (op, samples) in samples {
        let ratios = sorted(samples.ratios);
        let first = sorted(samples.first);
        let second = sorted(samples.second);
        writeln!(
            out,
            "| {} | {:.3} | {:.3}–{:.3} | {:.0} | {:.0} |",
            op.name(),
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
            quantile(&first, 0.5),
            quantile(&second, 0.5),
        )?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-flat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
