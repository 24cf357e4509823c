//! A minimal Lambda Runtime API on loopback, as the Lambda service offers it to a custom runtime:
//! `GET /2018-06-01/runtime/invocation/next` hands out events (holding the poll open until one is
//! queued), `POST …/invocation/{id}/response` and `…/{id}/error` take the outcomes, and
//! `POST …/init/error` takes an init failure. Enough to run a real `bootstrap` as Lambda would, in
//! tests and in the cold-start harness.

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
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

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
}

#[derive(Clone)]
struct Api {
    queue: Arc<AsyncMutex<mpsc::Receiver<(String, Value)>>>,
    shared: Arc<Mutex<Shared>>,
}

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

async fn next(State(api): State<Api>) -> Response {
    {
        let mut shared = api.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.first_poll.get_or_insert_with(Instant::now);
    }
    let Some((id, event)) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
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

fn settle(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    let sender = api
        .shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .waiting
        .remove(id);
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
    settle(&api, &id, Outcome::Response(json(&body)))
}

async fn error(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, Outcome::Error(json(&body)))
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    api.shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .init_error = Some(json(&body));
    StatusCode::ACCEPTED
}
