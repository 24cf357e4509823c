//! A minimal Lambda Runtime API on loopback, as the Lambda service offers it to a custom runtime:
//! `GET /2018-06-01/runtime/invocation/next` hands out events (holding the poll open until one is
//! queued), `POST …/invocation/{id}/response` and `…/{id}/error` take the outcomes, and
//! `POST …/init/error` takes an init failure. Enough to run a real `bootstrap` as Lambda would, in
//! tests and in the cold-start harness.
//!
//! It serves any number of polls at once, as Lambda Managed Instances do for a function that
//! polls from several tasks (`AWS_LAMBDA_MAX_CONCURRENCY`), and counts what a test of that needs:
//! the polls waiting now, and the most invocations handed out and not yet answered at one time.
//! [`FakeRuntime::hold_answers_until`] makes the proof exact: no answer is taken until that many
//! invocations have been handed out, which only a function that serves them at once survives.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex as AsyncMutex, Notify, mpsc, oneshot};

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The function's response document.
    Response(Value),
    /// The error document the runtime posted.
    Error(Value),
}

impl Outcome {
    /// The response, or a panic naming the error.
    pub(crate) fn response(self) -> Value {
        match self {
            Self::Response(value) => value,
            Self::Error(error) => panic!("the function failed: {error}"),
        }
    }
}

#[derive(Default)]
struct Shared {
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    first_poll: Option<Instant>,
    init_error: Option<Value>,
    issued: Vec<String>,
    /// `next` calls waiting for an event now.
    polling: usize,
    /// Invocations handed out, and answered (response or error).
    handed_out: usize,
    answered: usize,
    /// The most invocations handed out and not answered at one time.
    most_in_flight: usize,
    /// No answer is taken before this many invocations have been handed out (0: no hold).
    hold_until: usize,
    /// The time an invocation gets (its deadline, from when it is handed out); 30 s when unset.
    time_limit: Option<Duration>,
}

#[derive(Clone)]
struct Api {
    queue: Arc<AsyncMutex<mpsc::Receiver<(String, Value)>>>,
    shared: Arc<Mutex<Shared>>,
    /// Told each time an invocation is handed out, for the held answers.
    handed_out: Arc<Notify>,
}

/// How long a held answer waits for the invocations it waits on, before it is taken anyway (and
/// the test that held it sees too few in flight).
const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// The fake Runtime API, serving until dropped.
pub(crate) struct FakeRuntime {
    address: SocketAddr,
    events: mpsc::Sender<(String, Value)>,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
    next_id: std::sync::atomic::AtomicU64,
}

impl FakeRuntime {
    /// Starts the API on a free loopback port.
    pub(crate) async fn start() -> Self {
        let (events, queue) = mpsc::channel(64);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let api = Api {
            queue: Arc::new(AsyncMutex::new(queue)),
            shared: Arc::clone(&shared),
            handed_out: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the fake Runtime API");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            events,
            shared,
            server,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (`host:port`).
    pub(crate) fn address(&self) -> String {
        self.address.to_string()
    }

    /// When the function first asked for an event (the end of its init phase), if it has.
    pub(crate) fn first_poll(&self) -> Option<Instant> {
        self.lock().first_poll
    }

    /// The init error the function reported, if any.
    pub(crate) fn init_error(&self) -> Option<Value> {
        self.lock().init_error.clone()
    }

    /// The request ids (`Lambda-Runtime-Aws-Request-Id`) handed out so far, in order: one per
    /// invocation.
    pub(crate) fn issued_ids(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    /// The `next` polls waiting for an event now: how many invocations the function is ready to
    /// take at once.
    pub(crate) fn polling(&self) -> usize {
        self.lock().polling
    }

    /// Waits (at most `timeout`) until `count` polls wait at once; whether they did.
    pub(crate) async fn wait_for_polls(&self, count: usize, timeout: Duration) -> bool {
        let started = Instant::now();
        while self.polling() < count {
            if started.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The most invocations handed out and not yet answered at one time, so far.
    pub(crate) fn most_in_flight(&self) -> usize {
        self.lock().most_in_flight
    }

    /// From now on, takes no answer before `count` invocations in all have been handed out (or
    /// [`HOLD_AT_MOST`] has passed): a function that answers one invocation before it polls for the
    /// next cannot have more than one in flight, and waits out the hold on each.
    pub(crate) fn hold_answers_until(&self, count: usize) {
        self.lock().hold_until = count;
    }

    /// From now on, gives each invocation `limit` (its deadline header), instead of 30 s.
    pub(crate) fn give_each_invocation(&self, limit: Duration) {
        self.lock().time_limit = Some(limit);
    }

    /// Hands `event` to the function and waits (at most `timeout`) for its outcome.
    pub(crate) async fn invoke_within(&self, event: Value, timeout: Duration) -> Option<Outcome> {
        let id = format!(
            "00000000-0000-4000-8000-{:012}",
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (sender, receiver) = oneshot::channel();
        {
            let mut shared = self.lock();
            shared.waiting.insert(id.clone(), sender);
            shared.issued.push(id.clone());
        }
        self.events.send((id, event)).await.ok()?;
        tokio::time::timeout(timeout, receiver).await.ok()?.ok()
    }

    /// Hands `event` to the function and waits up to 30 s for its outcome.
    pub(crate) async fn invoke(&self, event: Value) -> Outcome {
        self.invoke_within(event, Duration::from_secs(30))
            .await
            .expect("the function answered within 30 s")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Counts a poll while it waits, however it ends (an event, or the function hanging up).
struct Polling<'a>(&'a Mutex<Shared>);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .polling -= 1;
    }
}

async fn next(State(api): State<Api>) -> Response {
    {
        let mut shared = api.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.first_poll.get_or_insert_with(Instant::now);
        shared.polling += 1;
    }
    let polling = Polling(&api.shared);
    let received = api.queue.lock().await.recv().await;
    drop(polling);
    let Some((id, event)) = received else {
        return StatusCode::GONE.into_response();
    };
    {
        let mut shared = api.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.handed_out += 1;
        shared.most_in_flight = shared
            .most_in_flight
            .max(shared.handed_out.saturating_sub(shared.answered));
    }
    api.handed_out.notify_waiters();
    let time_limit = api
        .shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .time_limit
        .unwrap_or(Duration::from_secs(30));
    let deadline = (SystemTime::now() + time_limit)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put("lambda-runtime-aws-request-id", id);
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:crm-test".to_owned(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
    );
    put("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, event.to_string()).into_response()
}

async fn settle(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    let held = async {
        loop {
            let notified = api.handed_out.notified();
            {
                let shared = api.shared.lock().unwrap_or_else(PoisonError::into_inner);
                if shared.handed_out >= shared.hold_until {
                    return;
                }
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(HOLD_AT_MOST, held).await;
    let sender = {
        let mut shared = api.shared.lock().unwrap_or_else(PoisonError::into_inner);
        // Only a first answer to an invocation handed out counts; a stray or second one is refused.
        let sender = shared.waiting.remove(id);
        if sender.is_some() {
            shared.answered += 1;
        }
        sender
    };
    match sender {
        Some(sender) => {
            let _ = sender.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, Outcome::Response(json(&body))).await
}

async fn error(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, Outcome::Error(json(&body))).await
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    api.shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .init_error = Some(json(&body));
    StatusCode::ACCEPTED
}
