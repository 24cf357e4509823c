//! The one retry loop of the repository.
//!
//! Every write is conditional, so a write that loses a race to another writer is refused, never
//! applied over the other's change; what remains is to try again. Each operation that can lose a
//! race says what one attempt came to ([`Attempt`]); [`retry_races`] decides whether and when to
//! try again, so that every operation has the same limit, the same backoff and the same final
//! error.

use std::time::Duration;

use crm_domain::RepositoryError;

use crate::error::{DynamoFailure, RETRY_AFTER};

/// How many times an operation that lost a race (a transaction conflict, a customer changed
/// between read and write) is tried before the store is reported unavailable.
const MAX_ATTEMPTS: u32 = 8;

/// What one attempt of an operation came to.
pub(super) enum Attempt<T> {
    /// The operation is over, with this answer.
    Done(T),
    /// Another writer was on the items, or the store throttled inside a transaction: back off
    /// (so that racing writers spread out), then try again.
    Retry,
    /// The item changed between the attempt's read and its write: try again at once, since the
    /// next read tells what to do and waiting would not change it.
    Changed,
    /// The store was unavailable (a timeout, throttling, an unreachable endpoint) for a request
    /// that is safe to send again, one with an idempotency token: back off, then resend; when no
    /// attempt is left, this error is the answer.
    Unavailable(RepositoryError),
}

/// An operation that may lose races, as a series of attempts: a closure returning a future when
/// the attempts share no state (create, update, delete), or a type of its own when each attempt
/// starts where the last one left off (the bulk import).
///
/// An `async` closure (`AsyncFnMut`) would do both, but the future it returns cannot yet be proven
/// `Send` through a generic function, which the `async_trait` futures of the port must be.
pub(super) trait Attempts<T> {
    /// Makes one attempt.
    fn attempt(&mut self) -> impl Future<Output = Result<Attempt<T>, RepositoryError>> + Send;
}

impl<T, F, Fut> Attempts<T> for F
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>, RepositoryError>> + Send,
{
    fn attempt(&mut self) -> impl Future<Output = Result<Attempt<T>, RepositoryError>> + Send {
        self()
    }
}

/// Makes attempts until one is [`Done`](Attempt::Done) or fails, at most [`MAX_ATTEMPTS`].
///
/// A backoff precedes each further attempt after a [`Retry`](Attempt::Retry) or an
/// [`Unavailable`](Attempt::Unavailable), never the answer. When the attempts run out, the answer
/// is [`contended`]`(operation)`, or the error of the last attempt when that was
/// [`Unavailable`](Attempt::Unavailable). The operation's deadline (`within`) may end it sooner.
pub(super) async fn retry_races<T>(
    operation: &'static str,
    mut attempts: impl Attempts<T>,
) -> Result<T, RepositoryError> {
    for number in 0..MAX_ATTEMPTS {
        let last = number + 1 == MAX_ATTEMPTS;
        let back_off = match attempts.attempt().await? {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::Changed => false,
            Attempt::Unavailable(error) if last => return Err(error),
            Attempt::Retry | Attempt::Unavailable(_) => true,
        };
        // A wait after the last attempt would only delay the answer.
        if back_off && !last {
            backoff(number).await;
        }
    }
    Err(contended(operation))
}

/// The answer of an operation that kept losing races.
fn contended(operation: &'static str) -> RepositoryError {
    RepositoryError::Unavailable {
        retry_after: Some(RETRY_AFTER),
        source: Box::new(DynamoFailure::new(
            operation,
            "too many concurrent writers on the same items",
            None,
        )),
    }
}

/// Waits before another attempt: exponential from 5 ms, capped at 200 ms, with jitter so that
/// racing writers spread out.
async fn backoff(attempt: u32) {
    let base = 5u64.saturating_mul(1 << attempt.min(6)).min(200);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default(),
    ) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use super::*;

    /// Runs `retry_races` over attempts that answer `answer(n)` for the n-th attempt (from 0), and
    /// returns its result and how many attempts it made.
    async fn run(
        answer: impl Fn(u32) -> Result<Attempt<&'static str>, RepositoryError> + Send + Sync,
    ) -> (Result<&'static str, RepositoryError>, u32) {
        let made = AtomicU32::new(0);
        let result = retry_races("test", || {
            let n = made.fetch_add(1, Ordering::SeqCst);
            let answer = answer(n);
            async move { answer }
        })
        .await;
        (result, made.load(Ordering::SeqCst))
    }

    fn is_contended(result: &Result<&str, RepositoryError>) -> bool {
        matches!(result, Err(RepositoryError::Unavailable { source, .. })
            if source.to_string().contains("too many concurrent writers"))
    }

    #[tokio::test]
    async fn an_answer_ends_the_attempts() {
        let (result, made) = run(|n| {
            Ok(if n < 2 {
                Attempt::Changed
            } else {
                Attempt::Done("ok")
            })
        })
        .await;
        assert_eq!(result.unwrap(), "ok");
        assert_eq!(made, 3);
    }

    #[tokio::test]
    async fn an_error_ends_the_attempts_at_once() {
        let (result, made) = run(|_| Err(RepositoryError::NotFound)).await;
        assert!(matches!(result, Err(RepositoryError::NotFound)));
        assert_eq!(made, 1);
    }

    #[tokio::test]
    async fn changes_are_retried_at_once_up_to_the_limit_then_contended() {
        let started = Instant::now();
        let (result, made) = run(|_| Ok(Attempt::Changed)).await;
        assert!(is_contended(&result), "{result:?}");
        assert_eq!(made, MAX_ATTEMPTS);
        // No backoff for a change: the backoffs of eight lost races would add up to 515 ms at least.
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn lost_races_back_off_between_attempts_up_to_the_limit_then_contended() {
        let started = Instant::now();
        let (result, made) = run(|_| Ok(Attempt::Retry)).await;
        assert!(is_contended(&result), "{result:?}");
        assert_eq!(made, MAX_ATTEMPTS);
        // Seven backoffs of at least 5, 10, 20, 40, 80, 160 and 200 ms between eight attempts.
        let least = Duration::from_millis(5 + 10 + 20 + 40 + 80 + 160 + 200);
        assert!(started.elapsed() >= least, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn an_unavailable_store_on_the_last_attempt_is_the_answer() {
        let (result, made) = run(|_| {
            Ok(Attempt::Unavailable(RepositoryError::unavailable(
                "throttled",
            )))
        })
        .await;
        assert!(
            matches!(&result, Err(RepositoryError::Unavailable { source, .. }) if source.to_string() == "throttled"),
            "{result:?}"
        );
        assert_eq!(made, MAX_ATTEMPTS);
    }
}
