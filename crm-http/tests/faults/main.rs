//! The fault-injection harness: the proof that a client sees the outcome of its own operation and
//! that nothing it was told succeeded is lost, whatever happens between the service and DynamoDB.
//!
//! Several clients drive the HTTP API (the router, in process) over DynamoDB Local with a mix of
//! creates (with and without id, with and without email), patches (with and without `If-Match`,
//! email changes, stale versions), deletes (of present and of deleted customers), reads, and
//! requests that must be refused (a taken id, a taken email). Half the writes carry an
//! `Idempotency-Key` and are sent again after a 503 (or a 409 for a key still in use) until they
//! get an answer, as a client that must know its outcome does; the others are settled by reading. Between the SDK and DynamoDB Local
//! sits [`fault_proxy::FaultProxy`], which loses a quarter of the write replies after DynamoDB
//! applied the write (the reply dropped, or held past the SDK's attempt timeout) or resets the
//! connection before the write reaches it. Each client owns its customers and judges every answer
//! against its [`model`]; at the end the table itself is read and checked against every model:
//!
//! - **misreported**: an answer that is not the operation's outcome (a 409, 412 or 404 for a write
//!   that was applied, a version other than the next, a 5xx other than 503 with `Retry-After`);
//! - **lost**: a customer whose last acknowledged write the table does not show;
//! - **duplicates**: a create without id stored twice (a keyed create sent again must never be).
//!
//! All three must be 0. The second test crashes DynamoDB Local itself (`kill -9`, its data on
//! disk) in the middle of a run and restarts it: during the outage the answer is 503 with
//! `Retry-After`, after it the service is whole again, and nothing acknowledged is lost. The kill
//! falls between two of the store's requests (the proxy first takes the store away from the
//! service and loses the replies still on their way), because DynamoDB Local killed inside a
//! transaction can keep part of it, which DynamoDB never does.
//!
//! `CRM_FAULT_OPERATIONS` sets the number of operations of the first test (default 400, the
//! second runs half as many), `CRM_FAULT_SEED` the seed (printed by every run, so a failure can be
//! replayed), `CRM_FAULT_DYNAMODB_PORT` the crashed instance's port (default 8011). Run with
//! `--nocapture` to see the report; `RELIABILITY.md` records runs of 10,000 operations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The report of a run is its output.
#![allow(clippy::print_stdout)]

mod model;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use crm_domain::CustomerService;
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use crm_http::{AppState, Config, router, store};
use fault_proxy::dynamodb_local::LocalDynamo;
use fault_proxy::{Fault, FaultProxy, Policy, SplitMix64};
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use model::{Known, Model, Slot};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Concurrent clients; each sends one request at a time.
const CLIENTS: usize = 4;

/// How long a reply is held back: past the SDK's attempt timeout (half the 2 s operation timeout).
const LATE_REPLY: Duration = Duration::from_millis(1_500);

/// The two tests run one after the other: each times its faults against the requests under way,
/// and the other's load on the same two cores moved that timing (the crash, taken by DynamoDB
/// Local in the middle of more transactions, left more of them half applied; see RELIABILITY.md).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_replies_never_misreport_an_outcome() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let operations = count(setting("CRM_FAULT_OPERATIONS", 400));
    let seed = setting("CRM_FAULT_SEED", seed_from_clock());
    let proxy = FaultProxy::start(upstream()).await.unwrap();
    let table = fresh_table(&main_endpoint()).await;
    let router = app(&proxy.endpoint(), &table).await;
    proxy.set_policy(Policy::writes(0.25, seed).with_kinds(&[
        Fault::DropReply,
        Fault::DelayReply(LATE_REPLY),
        Fault::Reset,
    ]));

    let run = run_clients(&router, operations, seed, None).await;
    proxy.set_policy(Policy::none());
    let verdict = check_table(&router, &run.models).await;
    let stats = proxy.stats();

    println!(
        "lost replies, seed {seed}: {} operations by {CLIENTS} clients; answers {:?}; \
         faults injected {:?} on {} forwarded requests; unknown outcomes (503 without a key) \
         {}; keyed writes sent again after a 503 {}, answered from their record {}; \
         misreported {}; lost {}; duplicates {}",
        run.operations,
        run.statuses,
        stats.faults,
        stats.forwarded,
        run.unknown,
        run.keyed_retries,
        run.replays,
        run.misreported().len(),
        verdict.lost.len(),
        verdict.duplicates.len(),
    );
    verdict.assert_clean(&run);
    for kind in ["drop-reply", "delay-reply", "reset"] {
        assert!(
            stats.faults_of(kind) > 0,
            "no {kind} fault was injected: the run proves nothing about it ({:?})",
            stats.faults
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_of_dynamodb_loses_nothing_acknowledged() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let operations = count(setting("CRM_FAULT_OPERATIONS", 400)) / 2;
    let seed = setting("CRM_FAULT_SEED", seed_from_clock());
    let port = u16::try_from(setting("CRM_FAULT_DYNAMODB_PORT", 8011)).unwrap();
    let data = scratch_dir("crash");
    let dynamo = Arc::new(
        tokio::task::spawn_blocking(move || {
            LocalDynamo::start(&LocalDynamo::default_repo_root(), port, &data)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("a DynamoDB Local with its data on disk: {e}")),
    );
    let table = fresh_table(&dynamo.endpoint()).await;
    // No random faults: the proxy only lets the crash fall between two of the store's requests.
    let proxy = FaultProxy::start(([127, 0, 0, 1], dynamo.port()).into())
        .await
        .unwrap();
    let router = app(&proxy.endpoint(), &table).await;

    // A third of the way in, the store crashes; it comes back a second later.
    let crash = Crash {
        dynamo: Arc::clone(&dynamo),
        proxy: proxy.clone(),
        after: operations / 3,
    };
    let run = run_clients(&router, operations, seed, Some(crash)).await;
    let verdict = check_table(&router, &run.models).await;
    let outage = run.outage.as_ref().expect("the crash happened");
    let stats = proxy.stats();

    println!(
        "crash, seed {seed}: {} operations by {CLIENTS} clients; answers {:?}; store down for \
         {:?}, service whole again {:?} after the restart; requests refused while down {}, \
         replies lost to the crash {}; answers during the outage {:?}; after it {:?}; \
         misreported {}; lost {}; duplicates {}",
        run.operations,
        run.statuses,
        outage.down,
        outage.recovery,
        stats.faults_of("outage"),
        stats.faults_of("outage-reply"),
        outage.during,
        outage.after,
        run.misreported().len(),
        verdict.lost.len(),
        verdict.duplicates.len(),
    );
    verdict.assert_clean(&run);
    assert!(
        stats.faults_of("outage-reply") > 0,
        "the crash cost no client its reply: {:?}",
        stats.faults
    );
    // A keyed write is sent again after a 503 until it is answered: its 503s count too (every
    // operation under way in the outage is now and then a keyed write, which ends in a 2xx).
    assert!(
        outage.met > 0,
        "no request met the outage: {:?}",
        outage.during
    );
    let after_errors: u64 = outage
        .after
        .iter()
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        after_errors, 0,
        "the service was not whole again: {:?}",
        outage.after
    );
    tokio::task::spawn_blocking(move || dynamo.stop())
        .await
        .unwrap()
        .unwrap();
}

// ------------------------------------------------------------------ the run

/// A crash of the store during a run: after `after` operations, `dynamo` is killed, then restarted.
struct Crash {
    dynamo: Arc<LocalDynamo>,
    /// Between the service and `dynamo`: it takes the store down for the service first, so that
    /// the kill falls between two of the store's requests.
    proxy: FaultProxy,
    after: usize,
}

/// When the store was down, and the answers around it.
#[derive(Debug, Default)]
struct Outage {
    /// From the store's going away (the proxy's outage, then the kill) to the end of the restart.
    down: Duration,
    /// From the end of the restart to the first answered read.
    recovery: Duration,
    /// Statuses of the operations under way while the store was down (a keyed write's last: it is
    /// sent again after each 503).
    during: BTreeMap<u16, u64>,
    /// Operations under way while the store was down that were answered 503, last or before
    /// being sent again.
    met: u64,
    /// Statuses of the operations that started once the service answered again.
    after: BTreeMap<u16, u64>,
}

/// What the clients did and met.
struct Run {
    operations: usize,
    statuses: BTreeMap<u16, u64>,
    /// Answers of 503 without a key: outcome unknown, settled by reading.
    unknown: usize,
    /// Answers of 503 to writes with a key, sent again until answered.
    keyed_retries: usize,
    /// Answers from the record of an earlier request with the same key.
    replays: usize,
    models: Vec<Model>,
    outage: Option<Outage>,
}

impl Run {
    fn misreported(&self) -> Vec<&String> {
        self.models.iter().flat_map(|m| &m.misreported).collect()
    }
}

/// The time window of the outage, as the clients see it: (down since, whole again since).
#[derive(Debug, Default)]
struct Window {
    down: Option<Instant>,
    up: Option<Instant>,
    whole: Option<Instant>,
}

/// Runs `operations` operations split among the clients, with a crash of the store if asked.
async fn run_clients(router: &Router, operations: usize, seed: u64, crash: Option<Crash>) -> Run {
    let done = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(std::sync::Mutex::new(Window::default()));
    let crasher = crash.map(|crash| {
        let (done, window, router) = (Arc::clone(&done), Arc::clone(&window), router.clone());
        tokio::spawn(async move { crash_and_restart(crash, &done, &window, &router).await })
    });
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let share = operations / CLIENTS + usize::from(client < operations % CLIENTS);
        let client = Client {
            number: client,
            router: router.clone(),
            rng: SplitMix64::new(seed ^ (client as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            model: Model::default(),
            next: 0,
            statuses: BTreeMap::new(),
            timeline: Vec::new(),
            unknown: 0,
            keyed_retries: 0,
            replays: 0,
        };
        let done = Arc::clone(&done);
        clients.push(tokio::spawn(client.run(share, done)));
    }
    let mut run = Run {
        operations,
        statuses: BTreeMap::new(),
        unknown: 0,
        keyed_retries: 0,
        replays: 0,
        models: Vec::new(),
        outage: None,
    };
    let mut timeline = Vec::new();
    for client in clients {
        let client = client.await.unwrap();
        for (status, n) in &client.statuses {
            *run.statuses.entry(*status).or_default() += n;
        }
        run.unknown += client.unknown;
        run.keyed_retries += client.keyed_retries;
        run.replays += client.replays;
        timeline.extend(client.timeline);
        run.models.push(client.model);
    }
    if let Some(crasher) = crasher {
        let mut outage = crasher.await.unwrap();
        let window = window.lock().unwrap();
        let (down, up, whole) = (
            window.down.unwrap(),
            window.up.unwrap(),
            window.whole.unwrap(),
        );
        for (started, ended, status, met_503) in timeline {
            if started >= whole {
                *outage.after.entry(status).or_default() += 1;
            } else if started < up && ended > down {
                *outage.during.entry(status).or_default() += 1;
                outage.met += u64::from(met_503);
            }
        }
        run.outage = Some(outage);
    }
    run
}

/// Kills the store once `crash.after` operations are done, restarts it a second later, and waits
/// until the service answers a read again.
///
/// The kill falls between two of the store's requests, never inside one. DynamoDB commits a
/// transaction whole, while DynamoDB Local killed in the middle of one can keep part of it (seen
/// here: a delete's tombstone without its idempotency record, and the reverse), a state no
/// client of DynamoDB can meet. So the proxy first refuses every new request and loses the
/// replies of those the store is still working on, as a crash does; once the store has finished
/// them all, it is killed.
async fn crash_and_restart(
    crash: Crash,
    done: &AtomicUsize,
    window: &std::sync::Mutex<Window>,
    router: &Router,
) -> Outage {
    while done.load(Ordering::SeqCst) < crash.after {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // At a moment when the store works on a request, so that the crash costs a client its reply.
    let busy = tokio::time::timeout(Duration::from_secs(30), async {
        while !crash.proxy.set_outage_while_busy() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    busy.await
        .expect("the store has a request under way within 30 s");
    let killed = Instant::now();
    window.lock().unwrap().down = Some(killed);
    tokio::time::timeout(Duration::from_secs(30), crash.proxy.idle())
        .await
        .expect("the store finishes the requests it has within 30 s");
    let dynamo = Arc::clone(&crash.dynamo);
    tokio::task::spawn_blocking(move || {
        dynamo.kill()?;
        std::thread::sleep(Duration::from_secs(1));
        dynamo.restart()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("DynamoDB Local restarts on its data: {e}"));
    crash.proxy.set_outage(false);
    let restarted = Instant::now();
    window.lock().unwrap().up = Some(restarted);
    // Whole again when a read that needs the table is answered.
    for _ in 0..300 {
        if get(router, "/customers?limit=1").await.status == StatusCode::OK {
            window.lock().unwrap().whole = Some(Instant::now());
            return Outage {
                down: restarted - killed,
                recovery: restarted.elapsed(),
                ..Outage::default()
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not answer within 30 s of the restart");
}

// ------------------------------------------------------------------ one client

/// One client: its own customers, one request at a time, every answer judged.
struct Client {
    number: usize,
    router: Router,
    rng: SplitMix64,
    model: Model,
    /// The number of the next operation, which makes its names and emails unique.
    next: usize,
    statuses: BTreeMap<u16, u64>,
    /// When each operation started and ended, and its status.
    /// When each operation started and ended, its status, and whether it was answered 503 (last,
    /// or before a keyed write was sent again).
    timeline: Vec<(Instant, Instant, u16, bool)>,
    unknown: usize,
    keyed_retries: usize,
    replays: usize,
}

/// One operation, as the client chose it.
#[derive(Debug, Clone)]
enum Operation {
    Create {
        id: Option<String>,
        email: Option<String>,
    },
    CreateTakenId {
        id: String,
    },
    CreateTakenEmail {
        email: String,
    },
    Patch {
        id: String,
        if_match: bool,
        email: EmailChange,
    },
    StalePatch {
        id: String,
    },
    Delete {
        id: String,
        if_match: bool,
    },
    DeleteDeleted {
        id: String,
    },
    Get {
        id: String,
    },
}

/// What a patch does to the email.
#[derive(Debug, Clone)]
enum EmailChange {
    Keep,
    Set(String),
    Clear,
}

/// What the answer must be.
#[derive(Debug)]
enum Expect {
    /// A 201 with this customer (for a create without id, the id is the server's).
    Created {
        id: Option<String>,
        last_name: String,
        known: Known,
    },
    /// A 200 with this customer.
    Patched {
        id: String,
        before: Known,
        known: Known,
    },
    /// A 204.
    Deleted { id: String, before: Known },
    /// A refusal with this status; the store is unchanged.
    Refused(u16),
    /// A 200 with this customer.
    Read { id: String, known: Known },
}

/// An answer of the router.
struct Answer {
    status: StatusCode,
    retry_after: bool,
    /// Answered from the record of an earlier request with the same key.
    replayed: bool,
    /// A 409 because the key is held by an earlier request still running.
    key_in_use: bool,
    body: Value,
}

impl Client {
    async fn run(mut self, operations: usize, done: Arc<AtomicUsize>) -> Self {
        for _ in 0..operations {
            let operation = self.choose();
            let started = Instant::now();
            let resent = self.keyed_retries;
            let status = self.perform(operation).await;
            let met_503 = status == 503 || self.keyed_retries > resent;
            self.timeline
                .push((started, Instant::now(), status, met_503));
            *self.statuses.entry(status).or_default() += 1;
            done.fetch_add(1, Ordering::SeqCst);
        }
        self
    }

    fn unique(&mut self) -> String {
        self.next += 1;
        format!("c{}x{}", self.number, self.next)
    }

    /// Picks the next operation from what the client's customers allow.
    fn choose(&mut self) -> Operation {
        let present: Vec<(String, Known)> = self
            .model
            .present()
            .map(|(id, known)| (id.clone(), known.clone()))
            .collect();
        let deleted: Vec<String> = self.model.absent().cloned().collect();
        let roll = self.rng.below(100);
        let Some((id, known)) = self.rng.pick(&present).cloned() else {
            return self.create();
        };
        match roll {
            0..25 => self.create(),
            25..50 => {
                let email = match self.rng.below(6) {
                    0 => EmailChange::Set(format!("{}@example.test", self.unique())),
                    1 => EmailChange::Clear,
                    _ => EmailChange::Keep,
                };
                Operation::Patch {
                    id,
                    if_match: self.rng.below(2) == 0,
                    email,
                }
            }
            50..55 if known.version > 1 => Operation::StalePatch { id },
            55..70 => Operation::Delete {
                id,
                if_match: self.rng.below(2) == 0,
            },
            70..75 if !deleted.is_empty() => Operation::DeleteDeleted {
                id: self.rng.pick(&deleted).cloned().unwrap_or(id),
            },
            75..80 => Operation::CreateTakenId { id },
            80..85 if known.email.is_some() => Operation::CreateTakenEmail {
                email: known.email.unwrap_or_default(),
            },
            _ => Operation::Get { id },
        }
    }

    fn create(&mut self) -> Operation {
        let id = (self.rng.below(2) == 0).then(|| self.unique());
        let email = (self.rng.below(2) == 0).then(|| format!("{}@example.test", self.unique()));
        Operation::Create { id, email }
    }

    /// Sends `operation`, judges its answer, and brings the model up to date; returns the status.
    async fn perform(&mut self, operation: Operation) -> u16 {
        let marker = self.unique();
        let (method, uri, if_match, body, expect) = self.request(&operation, &marker);
        // Half the writes carry an Idempotency-Key, and are sent again until they are answered.
        let writes = matches!(
            operation,
            Operation::Create { .. } | Operation::Patch { .. } | Operation::Delete { .. }
        );
        let key = (writes && self.rng.below(2) == 0).then(|| format!("key-{marker}"));
        let sent = Sent {
            method,
            uri,
            if_match,
            key,
            body,
        };
        let mut answer = send(&self.router, &sent).await;
        for _ in 0..100 {
            let again = sent.key.is_some()
                && (answer.status == StatusCode::SERVICE_UNAVAILABLE || answer.key_in_use);
            if !again {
                break;
            }
            if !answer.retry_after {
                self.model.misreport(format!(
                    "{operation:?}: a {} without Retry-After",
                    answer.status
                ));
            }
            if answer.status == StatusCode::SERVICE_UNAVAILABLE {
                self.keyed_retries += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            answer = send(&self.router, &sent).await;
        }
        if answer.replayed {
            self.replays += 1;
            // A replay names the customer and version its first send made, not the customer:
            // the client reads it, which (owning it) it finds as that write left it.
            let named = answer.body["id"].as_str().map(str::to_owned);
            if let (Some(id), Some(version)) = (named, answer.body["version"].as_u64()) {
                let read = get(&self.router, &format!("/customers/{id}")).await;
                if read.body["version"].as_u64() == Some(version) {
                    answer.body = read.body;
                }
            }
        }
        let status = answer.status.as_u16();
        if status == 503 {
            if !answer.retry_after {
                self.model
                    .misreport(format!("{operation:?}: a 503 without Retry-After"));
            }
            self.unknown += 1;
            self.resolve(&operation, expect).await;
        } else if let Err(problem) = self.accept(&expect, &answer) {
            self.model.misreport(format!(
                "{operation:?}{}: expected {expect:?}, answered {status} {}: {problem}",
                if sent.key.is_some() { " (keyed)" } else { "" },
                answer.body
            ));
            self.resync(&expect).await;
        }
        status
    }

    /// The request of `operation` and the answer it must get, from the model.
    #[allow(
        clippy::type_complexity,
        clippy::too_many_lines,
        reason = "one arm per operation, each stating its request and its answer together"
    )]
    fn request(
        &self,
        operation: &Operation,
        marker: &str,
    ) -> (Method, String, Option<String>, Option<Value>, Expect) {
        let slot = |id: &str| match self.model.slots.get(id) {
            Some(Slot::Present(known)) => known.clone(),
            _ => panic!("the client chose {id}, which it does not hold"),
        };
        let first_name = format!("F{marker}");
        match operation {
            Operation::Create { id, email } => {
                let last_name = format!("L{marker}");
                let mut body = json!({"firstName": first_name, "lastName": last_name});
                if let Some(id) = id {
                    body["id"] = json!(id);
                }
                if let Some(email) = email {
                    body["email"] = json!(email);
                }
                let known = Known {
                    version: 1,
                    first_name,
                    email: email.clone(),
                };
                let expect = Expect::Created {
                    id: id.clone(),
                    last_name,
                    known,
                };
                (Method::POST, "/customers".into(), None, Some(body), expect)
            }
            Operation::CreateTakenId { id } => {
                let body = json!({"id": id, "firstName": first_name, "lastName": "Taken"});
                (
                    Method::POST,
                    "/customers".into(),
                    None,
                    Some(body),
                    Expect::Refused(409),
                )
            }
            Operation::CreateTakenEmail { email } => {
                let body = json!({"firstName": first_name, "lastName": "Taken", "email": email});
                (
                    Method::POST,
                    "/customers".into(),
                    None,
                    Some(body),
                    Expect::Refused(409),
                )
            }
            Operation::Patch {
                id,
                if_match,
                email,
            } => {
                let before = slot(id);
                let mut body = json!({"firstName": first_name});
                let mut after_email = before.email.clone();
                match email {
                    EmailChange::Keep => {}
                    EmailChange::Set(address) => {
                        body["email"] = json!(address);
                        after_email = Some(address.clone());
                    }
                    EmailChange::Clear => {
                        body["email"] = Value::Null;
                        after_email = None;
                    }
                }
                let known = Known {
                    version: before.version + 1,
                    first_name,
                    email: after_email,
                };
                let tag = if_match.then(|| format!("\"{}\"", before.version));
                let expect = Expect::Patched {
                    id: id.clone(),
                    before,
                    known,
                };
                (
                    Method::PATCH,
                    format!("/customers/{id}"),
                    tag,
                    Some(body),
                    expect,
                )
            }
            Operation::StalePatch { id } => {
                let stale = format!("\"{}\"", slot(id).version - 1);
                let body = json!({"firstName": first_name});
                let uri = format!("/customers/{id}");
                (
                    Method::PATCH,
                    uri,
                    Some(stale),
                    Some(body),
                    Expect::Refused(412),
                )
            }
            Operation::Delete { id, if_match } => {
                let before = slot(id);
                let tag = if_match.then(|| format!("\"{}\"", before.version));
                let expect = Expect::Deleted {
                    id: id.clone(),
                    before,
                };
                (
                    Method::DELETE,
                    format!("/customers/{id}"),
                    tag,
                    None,
                    expect,
                )
            }
            Operation::DeleteDeleted { id } => {
                let uri = format!("/customers/{id}");
                (Method::DELETE, uri, None, None, Expect::Refused(404))
            }
            Operation::Get { id } => {
                let expect = Expect::Read {
                    id: id.clone(),
                    known: slot(id),
                };
                (Method::GET, format!("/customers/{id}"), None, None, expect)
            }
        }
    }

    /// Checks a definite answer against what it must be, and records its outcome in the model.
    fn accept(&mut self, expect: &Expect, answer: &Answer) -> Result<(), String> {
        let status = answer.status.as_u16();
        match expect {
            Expect::Created {
                id,
                last_name,
                known,
            } => {
                expect_status(status, 201)?;
                let stored = known_of(&answer.body)?;
                let answered_id = text(&answer.body, "id")?;
                if id.as_deref().is_some_and(|id| id != answered_id)
                    || text(&answer.body, "lastName")? != last_name
                    || stored != *known
                {
                    return Err("another customer than the one created".into());
                }
                self.model
                    .slots
                    .insert(answered_id.to_owned(), Slot::Present(stored));
            }
            Expect::Patched { id, known, .. } => {
                expect_status(status, 200)?;
                let stored = known_of(&answer.body)?;
                if stored != *known {
                    return Err(format!("the patch answered {stored:?}"));
                }
                self.model.slots.insert(id.clone(), Slot::Present(stored));
            }
            Expect::Deleted { id, .. } => {
                expect_status(status, 204)?;
                self.model.slots.insert(id.clone(), Slot::Absent);
            }
            Expect::Refused(refusal) => expect_status(status, *refusal)?,
            Expect::Read { known, .. } => {
                expect_status(status, 200)?;
                if known_of(&answer.body)? != *known {
                    return Err("the read answered another state".into());
                }
            }
        }
        Ok(())
    }

    /// After a 503: reads what the store holds once it has settled, and accepts the state before
    /// the operation or the state after it, nothing else.
    async fn resolve(&mut self, operation: &Operation, expect: Expect) {
        // A request the SDK gave up on may still be on its way (held by the proxy, or in
        // DynamoDB): let it land before looking.
        tokio::time::sleep(LATE_REPLY + Duration::from_millis(500)).await;
        match expect {
            Expect::Created {
                id: None,
                last_name,
                ..
            } => self.model.unsure_creates.push(last_name),
            Expect::Created {
                id: Some(id),
                known,
                ..
            } => match self.read(&id).await {
                None => {
                    self.model.slots.insert(id, Slot::Absent);
                }
                Some(stored) if stored == known => {
                    self.model.slots.insert(id, Slot::Present(stored));
                }
                Some(stored) => self.model.misreport(format!(
                    "{operation:?}: after a 503 the store holds {stored:?}"
                )),
            },
            Expect::Patched { id, before, known } => match self.read(&id).await {
                Some(stored) if stored == known || stored == before => {
                    self.model.slots.insert(id, Slot::Present(stored));
                }
                other => self.model.misreport(format!(
                    "{operation:?}: after a 503 the store holds {other:?}"
                )),
            },
            Expect::Deleted { id, before } => match self.read(&id).await {
                None => {
                    self.model.slots.insert(id, Slot::Absent);
                }
                Some(stored) if stored == before => {}
                Some(stored) => self.model.misreport(format!(
                    "{operation:?}: after a 503 the store holds {stored:?}"
                )),
            },
            Expect::Refused(_) | Expect::Read { .. } => {}
        }
    }

    /// After a misreported answer: the model takes what the store holds, so that the next
    /// operations are judged on the truth.
    async fn resync(&mut self, expect: &Expect) {
        let id = match expect {
            Expect::Created { id: Some(id), .. }
            | Expect::Patched { id, .. }
            | Expect::Deleted { id, .. }
            | Expect::Read { id, .. } => id.clone(),
            Expect::Created { id: None, .. } | Expect::Refused(_) => return,
        };
        let slot = match self.read(&id).await {
            Some(stored) => Slot::Present(stored),
            None => Slot::Absent,
        };
        self.model.slots.insert(id, slot);
    }

    /// What the store holds for `id`, read until the store answers.
    async fn read(&self, id: &str) -> Option<Known> {
        for _ in 0..300 {
            let answer = get(&self.router, &format!("/customers/{id}")).await;
            match answer.status {
                StatusCode::OK => return Some(known_of(&answer.body).unwrap()),
                StatusCode::NOT_FOUND => return None,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("the customer {id} could not be read for 30 s");
    }
}

fn expect_status(status: u16, expected: u16) -> Result<(), String> {
    if status == expected {
        Ok(())
    } else {
        Err(format!("status {status}, not {expected}"))
    }
}

fn text<'v>(body: &'v Value, field: &str) -> Result<&'v str, String> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {field} in the body"))
}

/// The checked parts of a customer's JSON.
fn known_of(body: &Value) -> Result<Known, String> {
    Ok(Known {
        version: body
            .get("version")
            .and_then(Value::as_u64)
            .ok_or("no version in the body")?,
        first_name: text(body, "firstName")?.to_owned(),
        email: body.get("email").and_then(Value::as_str).map(str::to_owned),
    })
}

// ------------------------------------------------------------------ the final check

/// What the table holds against what the clients were told.
struct Verdict {
    lost: Vec<String>,
    duplicates: Vec<String>,
    unexplained: Vec<String>,
}

impl Verdict {
    fn assert_clean(&self, run: &Run) {
        let misreported = run.misreported();
        assert!(
            misreported.is_empty()
                && self.lost.is_empty()
                && self.duplicates.is_empty()
                && self.unexplained.is_empty(),
            "misreported outcomes: {misreported:#?}\nacknowledged writes lost: {:#?}\n\
             duplicates: {:#?}\nunexplained customers: {:#?}",
            self.lost,
            self.duplicates,
            self.unexplained
        );
    }
}

/// Reads every customer through the API (faults off) and checks them against the models.
async fn check_table(router: &Router, models: &[Model]) -> Verdict {
    let mut stored: HashMap<String, Value> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/customers?limit=100&cursor={c}"),
            None => "/customers?limit=100".to_owned(),
        };
        let page = get(router, &uri).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "a page of the final walk: {}",
            page.body
        );
        for item in page.body["items"].as_array().unwrap() {
            stored.insert(item["id"].as_str().unwrap().to_owned(), item.clone());
        }
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut verdict = Verdict {
        lost: Vec::new(),
        duplicates: Vec::new(),
        unexplained: Vec::new(),
    };
    let mut last_names: HashMap<&str, usize> = HashMap::new();
    for customer in stored.values() {
        *last_names
            .entry(customer["lastName"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    for (name, count) in &last_names {
        if *count > 1 && *name != "Taken" {
            verdict
                .duplicates
                .push(format!("{name} is stored {count} times"));
        }
    }
    let mut explained: Vec<&str> = Vec::new();
    for model in models {
        for (id, known) in model.present() {
            match stored.get(id).map(known_of) {
                Some(Ok(found)) if found == *known => explained.push(id),
                other => verdict
                    .lost
                    .push(format!("{id}: acknowledged {known:?}, stored {other:?}")),
            }
        }
        for id in model.absent() {
            if stored.contains_key(id) {
                verdict
                    .lost
                    .push(format!("{id}: acknowledged deleted, still stored"));
            }
        }
        for (id, customer) in &stored {
            let last_name = customer["lastName"].as_str().unwrap_or_default();
            if model
                .unsure_creates
                .iter()
                .any(|unsure| unsure == last_name)
            {
                explained.push(id);
            }
        }
    }
    for id in stored.keys() {
        if !explained.contains(&id.as_str()) {
            verdict
                .unexplained
                .push(format!("{id}: stored, but no client created it"));
        }
    }
    verdict
}

// ------------------------------------------------------------------ plumbing

/// A request, as the client sends it (and sends it again, with its key).
struct Sent {
    method: Method,
    uri: String,
    if_match: Option<String>,
    key: Option<String>,
    body: Option<Value>,
}

async fn get(router: &Router, uri: &str) -> Answer {
    let sent = Sent {
        method: Method::GET,
        uri: uri.to_owned(),
        if_match: None,
        key: None,
        body: None,
    };
    send(router, &sent).await
}

async fn send(router: &Router, sent: &Sent) -> Answer {
    let mut request = Request::builder()
        .method(sent.method.clone())
        .uri(&sent.uri);
    if let Some(tag) = &sent.if_match {
        request = request.header(header::IF_MATCH, tag);
    }
    if let Some(key) = &sent.key {
        request = request.header("idempotency-key", key);
    }
    let request = match &sent.body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response.headers().contains_key(header::RETRY_AFTER);
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let key_in_use = status == StatusCode::CONFLICT
        && body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("idempotency-key-in-use"));
    Answer {
        status,
        retry_after,
        replayed,
        key_in_use,
        body,
    }
}

/// The router over `table` at `endpoint`, configured as the server is, from variables: each
/// DynamoDB operation may take 2 s, each attempt 1 s.
async fn app(endpoint: &str, table: &str) -> Router {
    let config = Config::from_vars([
        ("CRM_TABLE_NAME", table),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("CRM_DYNAMODB_TIMEOUT_MS", "2000"),
        ("CRM_REQUEST_DEADLINE_MS", "5000"),
        ("RUST_LOG", "off"),
    ])
    .expect("a valid configuration");
    let (repository, _) = store::connect(&config).await;
    // A key is held a little longer than a request may take (5 s), so that a retry after a
    // write that never committed waits seconds, not the default 10.
    let service = CustomerService::new(repository).with_key_hold(Duration::from_secs(6));
    router(AppState::new(service, &config))
}

fn main_endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

/// The address of the shared DynamoDB Local, for the proxy.
fn upstream() -> SocketAddr {
    let endpoint = main_endpoint();
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    authority.parse().unwrap_or_else(|_| {
        panic!("CRM_TEST_DYNAMODB_ENDPOINT must be http://<ip>:<port>, not {endpoint}")
    })
}

/// A new table at `endpoint`, or a failure that says how to start DynamoDB Local.
async fn fresh_table(endpoint: &str) -> String {
    let table = format!("crm-faults-{}", crm_domain::CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")
        .unwrap()
        .with_endpoint(endpoint)
        .with_local_credentials();
    DynamoCustomerRepository::connect(&settings)
        .await
        .create_table()
        .await
        .unwrap_or_else(|e| {
            panic!("DynamoDB Local must run at {endpoint} (scripts/dynamodb-local.sh start): {e:?}")
        });
    table
}

/// A number from the environment, or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v}"))
    })
}

fn count(n: u64) -> usize {
    usize::try_from(n).unwrap()
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// An empty directory of this test under the target directory.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
