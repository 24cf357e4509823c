//! Log lines written many to a system call: the writer of the local server's logs ([`Batched`],
//! which says what it keeps and where it must not be used).

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// The buffer's size at which a new line waits for the writing thread.
const DEFAULT_LIMIT: usize = 1 << 20;

/// How long the thread, woken by a line, lets others come before it writes. Waking it for every
/// line would cost a futex wake-up and a context switch a line, more than the write it saves.
const LINGER: Duration = Duration::from_millis(2);

/// The buffered bytes at which the thread writes without lingering longer.
const EARLY: usize = 64 << 10;

/// The [`MakeWriter`] of batched log lines: many lines to one `write` system call, for a
/// long-running server. Clone it freely; every clone fills the same buffer.
///
/// Writing each line to stdout as it is made costs one `write` system call per line, made by the
/// worker that serves the request, and under load the workers queue for the file behind stdout.
/// Here a line is copied into a shared buffer instead, and one thread of its own writes the buffer
/// out: woken by a line, it lets others come for 2 ms (or until 64 KiB are in) and writes them all
/// at once. An idle server writes a line about 2 ms after it is made; a busy one makes one write
/// per 2 ms, however many requests it serves, and wakes the thread as often.
///
/// What it keeps:
///
/// - **No line is lost, as long as the [`FlushGuard`] is dropped.** A full buffer (1 MiB for
///   [`stdout`](Self::stdout), `limit` for [`new`](Self::new)) makes the next writer wait for
///   room, as a slow stdout made it wait before; nothing is dropped. The guard, dropped as the
///   server stops, writes out what is buffered before it returns, and a line made after that is
///   written at once. What is still buffered when the process ends without dropping it
///   (`std::process::exit`, `panic = "abort"`, SIGKILL, the guard forgotten) is lost: at most the
///   last 2 ms of lines. If the writing thread dies (a panic in the output's `write`), writers
///   write their lines themselves from then on.
/// - **Order.** Lines leave in the order they entered the buffer: whoever takes the buffer (the
///   thread, or after the guard is dropped a writer itself) takes it whole and holds the output
///   until it is written.
/// - **Whole lines.** `tracing-subscriber` hands each line to one `write_all`, which enters the
///   buffer whole, under one lock. A [`BatchedWriter`] used by hand buffers each `write` call as
///   it comes: `write!` with several pieces can interleave with other threads' lines.
///
/// An output that would block (a non-blocking stdout whose reader is slow) is waited for, as a
/// blocking one is. A failed write of the output (stdout closed, say) drops that batch: there is
/// nowhere to report it, as there was not for one line before.
///
/// **Not for Lambda.** Lambda may freeze the process as soon as an answer is posted, with lines
/// still in the buffer; the bootstraps write each line to stdout before the handler returns
/// ([`init_with`](super::init_with)).
pub struct Batched<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<W> std::fmt::Debug for Batched<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched")
            .field("limit", &self.shared.limit)
            .finish_non_exhaustive()
    }
}

/// Writes out what is buffered and stops the writing thread of a [`Batched`] writer when dropped;
/// lines made after that are written as they come. Keep it until the last line that matters has
/// been made (in `crm-server`: until the server has stopped).
#[must_use = "dropping it at once stops the batching at once"]
pub struct FlushGuard<W> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

impl<W> std::fmt::Debug for FlushGuard<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushGuard").finish_non_exhaustive()
    }
}

struct Shared<W> {
    state: Mutex<State>,
    /// Held from the moment a batch is taken until it is written: the order of batches.
    output: Mutex<W>,
    /// The writing thread waits here for lines.
    lines_came: Condvar,
    /// Writers wait here for room in a full buffer.
    room: Condvar,
    limit: usize,
}

struct State {
    lines: Vec<u8>,
    /// The writing thread waits on `lines_came` for a first line (which must wake it).
    idle: bool,
    /// The writing thread lets lines come for [`LINGER`] (a full [`EARLY`] must wake it).
    lingering: bool,
    /// Writers waiting on `room`.
    waiting: usize,
    /// The [`FlushGuard`] was dropped, or the writing thread died: writers write themselves.
    closed: bool,
}

/// The longest pause between two tries of an output that would block.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Writes all of `batch` to `output` and flushes it, waiting out an output that would block.
///
/// `std`'s `write_all` gives up on `WouldBlock`, and stdout is non-blocking when whoever reads it
/// made the pipe so (a terminal multiplexer, a Node.js parent): that would drop the batch. Here
/// the write is tried again after a pause that grows to [`MAX_PAUSE`], as long as it takes, as a
/// blocking stdout would have waited; the buffer meanwhile fills, and writers then wait for room.
fn write_patiently(output: &mut impl Write, mut batch: &[u8]) -> io::Result<()> {
    let mut pause = Duration::from_millis(1);
    let wait = |pause: &mut Duration| {
        std::thread::sleep(*pause);
        *pause = (*pause * 2).min(MAX_PAUSE);
    };
    while !batch.is_empty() {
        match output.write(batch) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                batch = &batch[written..];
                pause = Duration::from_millis(1);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => wait(&mut pause),
            Err(error) => return Err(error),
        }
    }
    loop {
        match output.flush() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => wait(&mut pause),
            result => return result,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a lock is held leaves bytes, not broken invariants: go on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batched<io::Stdout> {
    /// Batched lines on stdout, with a buffer of 1 MiB.
    ///
    /// # Errors
    /// When the writing thread cannot be started.
    pub fn stdout() -> io::Result<(Self, FlushGuard<io::Stdout>)> {
        Self::new(io::stdout(), DEFAULT_LIMIT)
    }
}

impl<W: Write + Send + 'static> Batched<W> {
    /// Batched lines on `output`; a line waits while `limit` bytes or more are buffered (a
    /// `limit` of 0 counts as 1: one batch at a time).
    ///
    /// # Errors
    /// When the writing thread cannot be started.
    pub fn new(output: W, limit: usize) -> io::Result<(Self, FlushGuard<W>)> {
        let limit = limit.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lines: Vec::with_capacity(limit.min(DEFAULT_LIMIT)),
                idle: false,
                lingering: false,
                waiting: 0,
                closed: false,
            }),
            output: Mutex::new(output),
            lines_came: Condvar::new(),
            room: Condvar::new(),
            limit,
        });
        let writing = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("crm-log-writer".to_owned())
            .spawn(move || writing.write_until_closed())?;
        Ok((
            Self {
                shared: Arc::clone(&shared),
            },
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl<W: Write + Send + 'static> Shared<W> {
    /// The writing thread: waits for a line, lets more come for [`LINGER`] (or until [`EARLY`]
    /// bytes are in), takes the whole buffer and writes it; until the [`FlushGuard`] is dropped and
    /// nothing is left.
    fn write_until_closed(&self) {
        /// Closes the buffer if the thread unwinds (a panic in the output's `write`): writers then
        /// write themselves instead of waiting for room that would never come.
        struct Closing<'a, W>(&'a Shared<W>);
        impl<W> Drop for Closing<'_, W> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    lock(&self.0.state).closed = true;
                    self.0.room.notify_all();
                }
            }
        }
        let _closing = Closing(self);
        let mut spare = Vec::with_capacity(self.limit.min(DEFAULT_LIMIT));
        let mut state = lock(&self.state);
        loop {
            if state.lines.is_empty() {
                if state.closed {
                    return;
                }
                state.idle = true;
                state = self
                    .lines_came
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            if !state.closed && state.lines.len() < self.early() {
                state.lingering = true;
                state = self
                    .lines_came
                    .wait_timeout(state, LINGER)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                state.lingering = false;
            }
            std::mem::swap(&mut state.lines, &mut spare);
            if state.waiting > 0 {
                self.room.notify_all();
            }
            // Nowhere to report a failed write of the log itself (stdout closed, say).
            let _ = self.write_out(state, &spare);
            spare.clear();
            state = lock(&self.state);
        }
    }

    /// Writes `batch`, just taken from the buffer under `state`: the output is locked before
    /// `state` is released, so that batches leave in the order they were taken.
    fn write_out(&self, state: MutexGuard<'_, State>, batch: &[u8]) -> io::Result<()> {
        let mut output = lock(&self.output);
        drop(state);
        write_patiently(&mut *output, batch)
    }

    /// The buffered bytes at which the thread stops lingering.
    fn early(&self) -> usize {
        EARLY.min(self.limit)
    }

    fn put(&self, line: &[u8]) -> io::Result<()> {
        let mut state = lock(&self.state);
        while state.lines.len() >= self.limit && !state.closed {
            state.waiting += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        state.lines.extend_from_slice(line);
        if state.closed {
            // No thread writes any more: write out the buffer (this line last) ourselves.
            let lines = std::mem::take(&mut state.lines);
            return self.write_out(state, &lines);
        }
        if state.idle {
            state.idle = false;
            self.lines_came.notify_one();
        } else if state.lingering && state.lines.len() >= self.early() {
            state.lingering = false;
            self.lines_came.notify_one();
        }
        Ok(())
    }
}

impl<W> Drop for FlushGuard<W> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        self.shared.lines_came.notify_one();
        self.shared.room.notify_all();
        drop(state);
        if let Some(thread) = self.thread.take() {
            // A thread that panicked has closed the buffer already: the writers write themselves.
            let _ = thread.join();
        }
    }
}

/// One handle of a [`Batched`] writer, as `tracing-subscriber` asks for one per line. Each
/// `write` enters the buffer whole; `flush` does nothing (the [`FlushGuard`] flushes).
pub struct BatchedWriter<'a, W>(&'a Shared<W>);

impl<W> std::fmt::Debug for BatchedWriter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedWriter").finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> Write for BatchedWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.put(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.put(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for Batched<W> {
    type Writer = BatchedWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        BatchedWriter(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// An output that keeps every write apart, and whose first write can be held.
    #[derive(Clone, Default)]
    struct Writes {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        /// When set, the next write first waits for a message.
        gate: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
    }

    impl Write for Writes {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let gate = lock(&self.gate).take();
            if let Some(gate) = gate {
                let _ = gate.recv();
            }
            lock(&self.writes).push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.writes).concat()).unwrap()
        }
        fn count(&self) -> usize {
            lock(&self.writes).len()
        }
    }

    fn line<W: Write + Send + 'static>(writer: &Batched<W>, text: &str) {
        writer.make_writer().write_all(text.as_bytes()).unwrap();
    }

    /// Waits until `condition` holds; fails after 10 s.
    fn wait_until(condition: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !condition() {
            assert!(started.elapsed() < Duration::from_secs(10), "waited 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_limit_of_zero_still_writes_every_line() {
        let out = Writes::default();
        let (writer, flush) = Batched::new(out.clone(), 0).unwrap();
        for n in 0..100 {
            line(&writer, &format!("line {n}\n"));
        }
        drop(flush);
        assert_eq!(out.text().lines().count(), 100);
    }

    /// A non-blocking output with a slow reader: every other call would block (flushes too), one
    /// is interrupted, and a write takes at most 7 bytes.
    #[derive(Clone, Default)]
    struct Reluctant {
        bytes: Arc<Mutex<Vec<u8>>>,
        calls: Arc<Mutex<usize>>,
    }

    impl Reluctant {
        fn refuses(&self) -> Option<io::Error> {
            let mut calls = lock(&self.calls);
            *calls += 1;
            match *calls {
                3 => Some(io::ErrorKind::Interrupted.into()),
                n if n % 2 == 0 => Some(io::ErrorKind::WouldBlock.into()),
                _ => None,
            }
        }
    }

    impl Write for Reluctant {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let Some(refusal) = self.refuses() {
                return Err(refusal);
            }
            let taken = bytes.len().min(7);
            lock(&self.bytes).extend_from_slice(&bytes[..taken]);
            Ok(taken)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.refuses().map_or(Ok(()), Err)
        }
    }

    #[test]
    fn an_output_that_would_block_or_is_interrupted_is_waited_for_and_loses_nothing() {
        let out = Reluctant::default();
        let (writer, flush) = Batched::new(out.clone(), 64).unwrap();
        let lines: Vec<String> = (0..50).map(|n| format!("line {n}\n")).collect();
        for text in &lines {
            line(&writer, text);
        }
        let expected = lines.concat();
        drop(flush);
        line(&writer, "after the guard\n");
        let written = String::from_utf8(lock(&out.bytes).clone()).unwrap();
        assert_eq!(written, format!("{expected}after the guard\n"));
    }

    /// An output whose first write panics.
    #[derive(Clone, Default)]
    struct PanicsOnce {
        writes: Writes,
        panicked: Arc<Mutex<bool>>,
    }

    impl Write for PanicsOnce {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let first = !std::mem::replace(&mut *lock(&self.panicked), true);
            assert!(!first, "the output failed");
            self.writes.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn when_the_writing_thread_dies_writers_write_themselves_instead_of_waiting() {
        let out = PanicsOnce::default();
        let (writer, flush) = Batched::new(out.clone(), 64).unwrap();
        line(&writer, "lost with the thread\n");
        wait_until(|| lock(&writer.shared.state).closed);
        // Far more than the limit: with the thread gone, none of these may wait for room.
        for n in 0..100 {
            line(&writer, &format!("line {n:03}\n"));
        }
        drop(flush);
        let expected: Vec<String> = (0..100).map(|n| format!("line {n:03}\n")).collect();
        assert_eq!(out.writes.text(), expected.concat());
    }

    #[test]
    fn every_line_of_every_thread_is_written_whole_and_in_its_threads_order() {
        let out = Writes::default();
        let (writer, flush) = Batched::new(out.clone(), 4096).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let writer = writer.clone();
                scope.spawn(move || {
                    for n in 0..2000 {
                        line(&writer, &format!("{thread} {n} {}\n", "x".repeat(n % 50)));
                    }
                });
            }
        });
        drop(flush);
        let text = out.text();
        let mut next = [0; 4];
        for written in text.lines() {
            let mut words = written.split(' ');
            let thread: usize = words.next().unwrap().parse().unwrap();
            let n: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(n, next[thread], "thread {thread} out of order");
            assert_eq!(words.next().unwrap().len(), n % 50, "a line cut");
            next[thread] += 1;
        }
        assert_eq!(next, [2000; 4], "lines lost");
    }

    #[test]
    fn lines_that_come_during_a_write_go_out_together_in_the_next() {
        let out = Writes::default();
        let (open, gate) = mpsc::channel();
        *lock(&out.gate) = Some(gate);
        let (writer, flush) = Batched::new(out.clone(), 1 << 20).unwrap();
        line(&writer, "first\n");
        // The thread has taken "first" (the buffer is empty again) and is held in its write.
        wait_until(|| lock(&writer.shared.state).lines.is_empty());
        for n in 0..100 {
            line(&writer, &format!("line {n}\n"));
        }
        open.send(()).unwrap();
        drop(flush);
        assert_eq!(
            out.count(),
            2,
            "one write for the first, one for the hundred"
        );
        assert_eq!(out.text().lines().count(), 101);
    }

    #[test]
    fn a_full_buffer_makes_the_next_line_wait_and_loses_none() {
        let out = Writes::default();
        let (open, gate) = mpsc::channel();
        *lock(&out.gate) = Some(gate);
        let (writer, flush) = Batched::new(out.clone(), 64).unwrap();
        let (done, finished) = mpsc::channel();
        let producer = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for n in 0..200 {
                    line(&writer, &format!("line {n:03} of the producer\n"));
                }
                done.send(()).unwrap();
            })
        };
        // The first write is held: the producer fills the buffer and waits for room.
        wait_until(|| lock(&writer.shared.state).waiting > 0);
        assert!(finished.try_recv().is_err(), "the producer did not wait");
        open.send(()).unwrap();
        producer.join().unwrap();
        drop(flush);
        let text = out.text();
        let expected: Vec<String> = (0..200)
            .map(|n| format!("line {n:03} of the producer\n"))
            .collect();
        let expected = expected.concat();
        assert_eq!(text, expected);
    }

    #[test]
    fn flush_writes_what_is_buffered_and_later_lines_still_go_out_in_order() {
        let out = Writes::default();
        let (writer, flush) = Batched::new(out.clone(), 1 << 20).unwrap();
        for n in 0..50 {
            line(&writer, &format!("before {n}\n"));
        }
        drop(flush);
        let before: Vec<String> = (0..50).map(|n| format!("before {n}\n")).collect();
        let before = before.concat();
        assert_eq!(out.text(), before, "the flush returned with lines buffered");
        line(&writer, "after\n");
        assert_eq!(out.text(), format!("{before}after\n"));
    }

    #[test]
    fn a_subscriber_on_a_batched_writer_writes_its_json_lines() {
        let out = Writes::default();
        let (writer, flush) = Batched::new(out.clone(), 1 << 20).unwrap();
        tracing::subscriber::with_default(crate::telemetry::subscriber("info", writer), || {
            tracing::info!(status = 200, "request");
            tracing::debug!("hidden");
        });
        drop(flush);
        let lines: Vec<serde_json::Value> = out
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "request");
        assert_eq!(lines[0]["status"], 200);
    }
}
