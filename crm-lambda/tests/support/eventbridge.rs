//! A minimal `EventBridge` on loopback: enough of its JSON protocol (`awsJson1.1`,
//! `X-Amz-Target: AWSEvents.PutEvents`) for the AWS SDK's `PutEvents`, recording every call, and
//! told to refuse chosen entries or whole calls. Requests are not authenticated. Used by the tests
//! and by the events function's cold-start harness (`benches/src/bin/cold-start-events.rs`).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// A refusal of a whole call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFault {
    /// `400 ThrottlingException`, as when the account's `PutEvents` quota is exceeded.
    Throttle,
    /// `500 InternalException`.
    Internal,
    /// `400 AccessDeniedException`: the function may not put on the bus; retrying cannot help.
    AccessDenied,
}

/// One entry of a call, as sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) source: String,
    pub(crate) detail_type: String,
    /// The detail, parsed.
    pub(crate) detail: Value,
    /// The detail as sent.
    pub(crate) detail_text: String,
    pub(crate) bus: String,
    /// `Time`, in epoch seconds.
    pub(crate) time: f64,
}

impl Entry {
    /// The event's customer id and version.
    pub(crate) fn key(&self) -> (String, u64) {
        (
            self.detail["id"].as_str().unwrap_or_default().to_owned(),
            self.detail["version"].as_u64().unwrap_or_default(),
        )
    }
}

/// What the fake answered to a call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Per entry, whether it was accepted.
    Entries(Vec<bool>),
    /// The call was refused whole.
    Refused(CallFault),
}

/// One `PutEvents` call, in the order the calls arrived.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub(crate) entries: Vec<Entry>,
    pub(crate) answer: Answer,
}

#[derive(Default)]
struct Shared {
    calls: Vec<Call>,
    call_faults: VecDeque<CallFault>,
    /// Per (id, version): how many more times the entry is refused.
    entry_faults: HashMap<(String, u64), u32>,
    requests: Vec<(Option<String>, Option<String>)>,
}

/// The fake, serving until dropped.
pub(crate) struct FakeEventBridge {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeEventBridge {
    /// Starts it on a free loopback port.
    pub(crate) async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let router = Router::new()
            .route("/", post(put_events))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the fake EventBridge");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            shared,
            server,
        }
    }

    /// The value for `AWS_ENDPOINT_URL_EVENTBRIDGE`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Refuses the next calls, one fault each, in order.
    pub(crate) fn refuse_calls(&self, faults: impl IntoIterator<Item = CallFault>) {
        self.lock().call_faults.extend(faults);
    }

    /// Refuses the entry of customer `id` at `version` the next `times` times it is sent
    /// (`u32::MAX`: always), with the entry error code `InternalFailure`.
    pub(crate) fn refuse_entry(&self, id: &str, version: u64, times: u32) {
        self.lock()
            .entry_faults
            .insert((id.to_owned(), version), times);
    }

    /// Every call so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The `X-Amz-Target` and `Content-Type` of every request so far.
    pub(crate) fn request_headers(&self) -> Vec<(Option<String>, Option<String>)> {
        self.lock().requests.clone()
    }

    /// Every entry sent, in the order the calls arrived.
    pub(crate) fn sent(&self) -> Vec<Entry> {
        self.calls()
            .into_iter()
            .flat_map(|call| call.entries)
            .collect()
    }

    /// The (id, version) of every entry accepted, in the order the calls arrived.
    pub(crate) fn accepted(&self) -> Vec<(String, u64)> {
        let mut accepted = Vec::new();
        for call in self.calls() {
            if let Answer::Entries(results) = &call.answer {
                for (entry, ok) in call.entries.iter().zip(results) {
                    if *ok {
                        accepted.push(entry.key());
                    }
                }
            }
        }
        accepted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeEventBridge {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const JSON_1_1: &str = "application/x-amz-json-1.1";

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON_1_1)],
        json!({"__type": kind, "message": message}).to_string(),
    )
        .into_response()
}

async fn put_events(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let target = text("x-amz-target");
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    shared.requests.push((target.clone(), text("content-type")));
    if target.as_deref() != Some("AWSEvents.PutEvents") {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "only PutEvents",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "not JSON",
        );
    };
    let entries = entries_of(&request);
    if entries.is_empty() || entries.len() > 10 {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 to 10 entries",
        );
    }
    if let Some(fault) = shared.call_faults.pop_front() {
        shared.calls.push(Call {
            entries,
            answer: Answer::Refused(fault),
        });
        return match fault {
            CallFault::Throttle => error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
            ),
            CallFault::Internal => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                "internal",
            ),
            CallFault::AccessDenied => error(
                StatusCode::BAD_REQUEST,
                "AccessDeniedException",
                "not authorized",
            ),
        };
    }
    let mut results = Vec::new();
    let mut answers = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let refused = match shared.entry_faults.get_mut(&entry.key()) {
            Some(times) if *times > 0 => {
                *times = times.saturating_sub(1);
                true
            }
            _ => false,
        };
        results.push(!refused);
        answers.push(if refused {
            json!({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
        } else {
            json!({"EventId": format!("{}-{n}", shared.calls.len())})
        });
    }
    let failed = results.iter().filter(|ok| !**ok).count();
    shared.calls.push(Call {
        entries,
        answer: Answer::Entries(results),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, JSON_1_1)],
        json!({"FailedEntryCount": failed, "Entries": answers}).to_string(),
    )
        .into_response()
}

/// The entries of a `PutEvents` request.
fn entries_of(request: &Value) -> Vec<Entry> {
    request["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let detail_text = entry["Detail"].as_str().unwrap_or_default().to_owned();
            Entry {
                source: entry["Source"].as_str().unwrap_or_default().to_owned(),
                detail_type: entry["DetailType"].as_str().unwrap_or_default().to_owned(),
                detail: serde_json::from_str(&detail_text).unwrap_or(Value::Null),
                detail_text,
                bus: entry["EventBusName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                time: entry["Time"].as_f64().unwrap_or_default(),
            }
        })
        .collect()
}
