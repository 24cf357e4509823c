//! Progress on stderr: a bar on a terminal, a plain line every few seconds elsewhere.
//!
//! The work updates [`Counters`] (atomics, shared between the reading thread and the writing
//! tasks); a ticker reads a [`Snapshot`] of them ten times a second and hands it to the
//! [`Reporter`]. The bar (indicatif) shows how much of the work is done (the file read, scaled by
//! the share of the rows read that are done), rows done, rows per second and the time left; the
//! plain reporter writes one line every `--progress-every` seconds, so that a log or a CI run
//! shows the import moving without a terminal's redraws.
//! Both are pure functions of the elapsed time and a snapshot, which is how they are tested.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the work has done so far; shared, updated as it goes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of the input read.
    pub bytes_read: AtomicU64,
    /// Rows of the input read.
    pub rows_read: AtomicU64,
    /// Rows (or customers) done: imported, found present, rejected, or exported.
    pub done: AtomicU64,
}

impl Counters {
    /// The counters now.
    pub fn snapshot(&self, total_bytes: Option<u64>) -> Snapshot {
        Snapshot {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            rows_read: self.rows_read.load(Ordering::Relaxed),
            total_bytes,
            done: self.done.load(Ordering::Relaxed),
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Bytes of the input read.
    pub bytes_read: u64,
    /// Rows of the input read.
    pub rows_read: u64,
    /// The input's size, when known.
    pub total_bytes: Option<u64>,
    /// Rows done.
    pub done: u64,
}

impl Snapshot {
    /// How much of the input the rows done stand for, in bytes: the bytes read, scaled by the
    /// share of the rows read that are done. The reading runs ahead of the writes (by up to the
    /// batches queued for them), so the bytes read alone would tell a time left too short.
    pub fn bytes_done(&self) -> u64 {
        if self.rows_read == 0 {
            return 0;
        }
        let done = u128::from(self.done.min(self.rows_read));
        let scaled = u128::from(self.bytes_read) * done / u128::from(self.rows_read);
        u64::try_from(scaled).unwrap_or(self.bytes_read)
    }
}

/// What a progress line counts: `rows` (import) or `customers` (export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noun(pub &'static str);

/// `12345678` → `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` things in words, with the thousands separated: `1 row`, `12,345 rows`.
pub fn quantity(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", thousands(n))
    }
}

/// Rows per second over `elapsed`.
fn rate(done: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rate for people to read"
    )]
    let rate = (done as f64 / seconds).round() as u64;
    rate
}

/// `about 1 min 5 s`, `about 4 s`.
fn about(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 3600 {
        format!("about {} h {} min", seconds / 3600, seconds % 3600 / 60)
    } else if seconds >= 60 {
        format!("about {} min {} s", seconds / 60, seconds % 60)
    } else {
        format!("about {} s", seconds.max(1))
    }
}

/// The plain line for `snapshot`, `elapsed` into the work.
pub fn plain_line(label: &str, noun: Noun, elapsed: Duration, snapshot: &Snapshot) -> String {
    let mut line = format!(
        "{label}: {} {}, {} {}/s",
        thousands(snapshot.done),
        noun.0,
        thousands(rate(snapshot.done, elapsed)),
        noun.0
    );
    if let Some(total) = snapshot.total_bytes.filter(|t| *t > 0) {
        let read = snapshot.bytes_read.min(total);
        let _ = write!(line, ", {}% of the file read", read * 100 / total);
        // The time left goes by the rows done, not by the file read ahead of them.
        let done = snapshot.bytes_done().min(total);
        if done > 0 && done < total {
            #[expect(clippy::cast_precision_loss, reason = "an estimate for people to read")]
            let left = elapsed.mul_f64((total - done) as f64 / done as f64);
            let _ = write!(line, ", {} left", about(left));
        }
    }
    line
}

/// Writes a plain line every `every`, to any writer (stderr in use, a buffer in tests).
pub struct PlainReporter<W: Write> {
    out: W,
    label: &'static str,
    noun: Noun,
    every: Duration,
    next: Duration,
}

impl<W: Write> PlainReporter<W> {
    /// A reporter writing to `out` every `every` (the first line after `every`).
    pub fn new(out: W, label: &'static str, noun: Noun, every: Duration) -> Self {
        Self {
            out,
            label,
            noun,
            every,
            next: every,
        }
    }

    /// Writes a line if one is due at `elapsed`.
    pub fn tick(&mut self, elapsed: Duration, snapshot: &Snapshot) {
        if elapsed < self.next || self.every.is_zero() && elapsed.is_zero() {
            return;
        }
        let _ = writeln!(
            self.out,
            "{}",
            plain_line(self.label, self.noun, elapsed, snapshot)
        );
        while self.next <= elapsed {
            self.next += self.every.max(Duration::from_millis(100));
        }
    }

    /// The writer, for tests.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The bar, on a draw target (stderr in use, an in-memory terminal in tests).
pub struct BarReporter {
    bar: ProgressBar,
    noun: Noun,
    /// The furthest position shown: the estimate of the bytes done may step back (the share of the
    /// header, rows of uneven size), and indicatif starts its rate estimate over when the position
    /// moves back.
    furthest: u64,
}

impl BarReporter {
    /// A bar over `total_bytes` of input (a spinner when unknown), drawn on `target`.
    pub fn new(target: ProgressDrawTarget, total_bytes: Option<u64>, noun: Noun) -> Self {
        let bar = if let Some(total) = total_bytes {
            let bar = ProgressBar::with_draw_target(Some(total), target);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {percent:>3}% {msg}, {eta} left",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        } else {
            let bar = ProgressBar::with_draw_target(None, target);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} {spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        };
        Self {
            bar,
            noun,
            furthest: 0,
        }
    }

    /// Shows `snapshot`, `elapsed` into the work.
    pub fn tick(&mut self, elapsed: Duration, snapshot: &Snapshot) {
        if snapshot.total_bytes.is_some() {
            // The bar and its time left follow the rows done, which the reading runs ahead of.
            self.furthest = self.furthest.max(snapshot.bytes_done());
            self.bar.set_position(self.furthest);
        } else {
            self.bar.tick();
        }
        self.bar.set_message(format!(
            "{} {}, {} {}/s",
            thousands(snapshot.done),
            self.noun.0,
            thousands(rate(snapshot.done, elapsed)),
            self.noun.0
        ));
    }

    /// Removes the bar, leaving the line clear for the summary.
    pub fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// One of the ways of showing progress.
pub enum Reporter {
    /// A bar on stderr.
    Bar(BarReporter),
    /// Plain lines on stderr.
    Plain(PlainReporter<io::Stderr>),
    /// Nothing.
    Off,
}

impl Reporter {
    /// Shows `snapshot`.
    pub fn tick(&mut self, elapsed: Duration, snapshot: &Snapshot) {
        match self {
            Self::Bar(bar) => bar.tick(elapsed, snapshot),
            Self::Plain(plain) => plain.tick(elapsed, snapshot),
            Self::Off => {}
        }
    }

    /// Ends the display (the bar disappears; plain lines stay).
    pub fn finish(&mut self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// Runs `reporter` on `counters` ten times a second until the returned handle is stopped.
pub struct Ticker {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    /// Starts ticking.
    pub fn start(
        mut reporter: Reporter,
        counters: Arc<Counters>,
        total_bytes: Option<u64>,
        started: Instant,
    ) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        reporter.tick(started.elapsed(), &counters.snapshot(total_bytes));
                    }
                    () = stopped.notified() => break,
                }
            }
            reporter.finish();
        });
        Self { stop, task }
    }

    /// Stops ticking and clears the bar.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: Noun = Noun("rows");

    /// `done` rows of the `done` read, in `read` bytes of 1,000.
    fn snapshot(done: u64, read: u64) -> Snapshot {
        Snapshot {
            bytes_read: read,
            rows_read: done,
            total_bytes: Some(1000),
            done,
        }
    }

    #[test]
    fn a_plain_line_says_rows_rate_share_and_time_left() {
        let line = plain_line(
            "import",
            ROWS,
            Duration::from_secs(10),
            &snapshot(25_000, 250),
        );
        assert_eq!(
            line,
            "import: 25,000 rows, 2,500 rows/s, 25% of the file read, about 30 s left"
        );
        let export = Snapshot {
            bytes_read: 0,
            rows_read: 0,
            total_bytes: None,
            done: 1_234_567,
        };
        assert_eq!(
            plain_line(
                "export",
                Noun("customers"),
                Duration::from_secs(100),
                &export
            ),
            "export: 1,234,567 customers, 12,346 customers/s"
        );
    }

    #[test]
    fn the_time_left_follows_the_rows_done_not_the_file_read_ahead_of_them() {
        // Half the file read in 10 s, but only a quarter of the rows read are written yet.
        let ahead = Snapshot {
            bytes_read: 500,
            rows_read: 4_000,
            total_bytes: Some(1000),
            done: 1_000,
        };
        assert_eq!(ahead.bytes_done(), 125);
        let line = plain_line("import", ROWS, Duration::from_secs(10), &ahead);
        assert!(
            line.ends_with("50% of the file read, about 1 min 10 s left"),
            "{line}"
        );
        // All read, none written yet: no estimate to give.
        let waiting = Snapshot { done: 0, ..ahead };
        let line = plain_line("import", ROWS, Duration::from_secs(10), &waiting);
        assert!(line.ends_with("50% of the file read"), "{line}");
    }

    #[test]
    fn plain_lines_come_every_interval_on_a_fake_clock() {
        let mut reporter = PlainReporter::new(Vec::new(), "import", ROWS, Duration::from_secs(5));
        for tenth in 0..=120 {
            let elapsed = Duration::from_millis(tenth * 100);
            reporter.tick(elapsed, &snapshot(tenth * 10, tenth * 8));
        }
        let text = String::from_utf8(reporter.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("import: 500 rows, 100 rows/s, 40% of the file read"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("import: 1,000 rows, 100 rows/s, 80% of the file read"),
            "{text}"
        );
    }

    #[test]
    fn a_late_tick_writes_one_line_not_a_burst() {
        let mut reporter = PlainReporter::new(Vec::new(), "import", ROWS, Duration::from_secs(1));
        reporter.tick(Duration::from_secs(10), &snapshot(1, 1));
        reporter.tick(Duration::from_millis(10_500), &snapshot(1, 1));
        reporter.tick(Duration::from_secs(11), &snapshot(1, 1));
        let text = String::from_utf8(reporter.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn the_bar_shows_rows_rate_and_time_left_on_a_terminal() {
        let term = indicatif::InMemoryTerm::new(4, 100);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let mut bar = BarReporter::new(target, Some(1000), ROWS);
        bar.tick(Duration::from_secs(2), &snapshot(4_000, 400));
        bar.bar.set_position(400);
        bar.bar.tick();
        let screen = term.contents();
        assert!(screen.contains("40%"), "{screen:?}");
        assert!(screen.contains("4,000 rows, 2,000 rows/s"), "{screen:?}");
        assert!(screen.contains("left"), "{screen:?}");
        bar.finish();
        assert_eq!(
            term.contents().trim(),
            "",
            "the bar clears itself for the summary"
        );
    }

    #[test]
    fn the_bar_never_moves_back() {
        let term = indicatif::InMemoryTerm::new(4, 100);
        let target = ProgressDrawTarget::term_like(Box::new(term));
        let mut bar = BarReporter::new(target, Some(1000), ROWS);
        bar.tick(Duration::from_secs(1), &snapshot(10, 500));
        assert_eq!(bar.bar.position(), 500);
        let behind = Snapshot {
            bytes_read: 600,
            rows_read: 20,
            total_bytes: Some(1000),
            done: 10,
        };
        bar.tick(Duration::from_secs(2), &behind);
        assert_eq!(bar.bar.position(), 500, "300 estimated, 500 kept");
    }

    #[test]
    fn numbers_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
    }
}
