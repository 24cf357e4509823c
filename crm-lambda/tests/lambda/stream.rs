//! The events function as Lambda runs it: the real `crm-lambda-events` bootstrap under the fake
//! Runtime API, handed DynamoDB stream batches as Lambda serializes them (images in DynamoDB JSON,
//! made of the items `crm-dynamo` writes), putting events on a fake `EventBridge` on loopback that
//! records every `PutEvents` call and refuses what a test tells it to. What the function prints is
//! read as Lambda's log stream is: its log lines, and its metrics as `CloudWatch` reads EMF lines.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use crm_domain::{Customer, CustomerId, CustomerPatch, NewCustomer, Timestamp};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

use crate::emf;
use crate::eventbridge::{Answer, CallFault, Entry, FakeEventBridge};
use crate::fake_runtime::FakeRuntime;

const BUS: &str = "crm-test-bus";

/// The function's name, as Lambda sets it: the `function` dimension of its metrics.
const FUNCTION_NAME: &str = "crm-events-test";

/// Words of the customers' data: never in an event, never in a log line.
const SECRETS: [&str; 4] = ["Zephyrine", "Quillfeather", "zq@example.com", "Byronesque"];

/// The function, its Runtime API and its bus.
struct Function {
    runtime: FakeRuntime,
    bus: FakeEventBridge,
    child: Child,
}

impl Function {
    /// Starts `crm-lambda-events` as Lambda would, publishing to a fresh fake bus.
    async fn start() -> Self {
        let runtime = FakeRuntime::start().await;
        let bus = FakeEventBridge::start().await;
        let child = launch(&runtime, Some(BUS))
            .env("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.endpoint())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        Self {
            runtime,
            bus,
            child,
        }
    }

    /// Hands `records` to the function as one batch; its answer.
    async fn publish(&self, records: &[Value]) -> Value {
        self.runtime
            .invoke(json!({"Records": records}))
            .await
            .response()
    }

    /// Stops the function; everything it printed.
    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let mut printed = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut printed).await;
        }
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut printed).await;
        }
        assert!(self.runtime.init_error().is_none(), "{printed}");
        printed
    }
}

/// The command that starts the bootstrap with the environment Lambda gives it, and `bus_name`.
fn launch(runtime: &FakeRuntime, bus_name: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm-lambda-events"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/crm-events-test")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/01/[$LATEST]0")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    if let Some(bus_name) = bus_name {
        command.env("CRM_EVENT_BUS_NAME", bus_name);
    }
    command
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A customer `id`, created at 10:00, holding [`SECRETS`].
fn customer(id: &str) -> Customer {
    let input = NewCustomer::from_json(&json!({
        "id": id, "firstName": "Zephyrine", "lastName": "Quillfeather", "email": "zq@example.com"
    }))
    .unwrap();
    Customer::create(input, CustomerId::generate(), at("2026-12-01T10:00:00Z"))
}

/// `customer` with its last name set, a minute later.
fn renamed(customer: &Customer) -> Customer {
    let patch = CustomerPatch::from_json(&json!({"lastName": "Byronesque"})).unwrap();
    let later = customer.updated_at().after(Duration::from_mins(1));
    customer.patched(&patch, later).unwrap()
}

/// The image of `customer`: the item `crm-dynamo` writes, in DynamoDB JSON.
fn image(customer: &Customer) -> Value {
    let item = crm_dynamo::items::to_item(customer).unwrap();
    serde_json::to_value(serde_dynamo::Item::from(item)).unwrap()
}

/// The tombstone a delete of `customer` leaves, as `crm-dynamo` writes it.
fn tombstone(customer: &Customer) -> Value {
    let id = customer.id().as_str();
    let version = customer.version().get() + 1;
    json!({
        "pk": {"S": format!("CUSTOMER#{id}")},
        "kind": {"S": "deleted"},
        "id": {"S": id},
        "version": {"N": version.to_string()},
        "updatedAt": {"S": "2026-12-01T11:30:00.000Z"},
        "writeToken": {"S": "d2f1c0de"},
        "expiresAt": {"N": "1798025400"},
        "shard": {"S": "2"},
        "updatedKey": {"S": format!("2026-12-01T11:30:00.000Z#{id}")}
    })
}

/// The claim of an email, as `crm-dynamo` writes it.
fn claim(id: &str) -> Value {
    json!({
        "pk": {"S": "EMAIL#8c1f1046219ddd216a023f792356ddf127fce372a72ec9b4cdac989ee5b0b455"},
        "kind": {"S": "email"},
        "customerId": {"S": id}
    })
}

/// An idempotency record, as `crm-dynamo` writes it.
fn idempotency(state: &str) -> Value {
    json!({
        "pk": {"S": "IDEMPOTENCY#6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"},
        "kind": {"S": "idempotency"},
        "state": {"S": state},
        "fingerprint": {"S": "f"},
        "expiresAt": {"N": "1798025400"}
    })
}

/// The sequence number of the `index`-th record of a batch.
fn sequence_number(index: usize) -> String {
    format!("4{:020}", 1000 + index)
}

/// A batch of stream records as Lambda delivers them: `INSERT`, `MODIFY` or `REMOVE` with the old
/// and new images.
fn batch(changes: Vec<(&str, Option<Value>, Option<Value>)>) -> Vec<Value> {
    changes
        .into_iter()
        .enumerate()
        .map(|(index, (name, old, new))| {
            let pk = new
                .as_ref()
                .or(old.as_ref())
                .map_or(Value::Null, |image| image["pk"].clone());
            // The time to live's deletes are the service's.
            let expiry = name == "REMOVE"
                && old.as_ref().is_some_and(|image| image["kind"]["S"] == "deleted");
            let mut change = json!({
                "ApproximateCreationDateTime": 1_795_345_200.0,
                "Keys": {"pk": pk},
                "SequenceNumber": sequence_number(index),
                "SizeBytes": 412,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            });
            if let Some(old) = old {
                change["OldImage"] = old;
            }
            if let Some(new) = new {
                change["NewImage"] = new;
            }
            let mut record = json!({
                "eventID": format!("e{index:04}"),
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": change,
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/crm/stream/2026-12-01T00:00:00.000"
            });
            if expiry {
                record["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
            }
            record
        })
        .collect()
}

/// The inserts of `customers`, in order.
fn inserts(customers: &[Customer]) -> Vec<(&'static str, Option<Value>, Option<Value>)> {
    customers
        .iter()
        .map(|c| ("INSERT", None, Some(image(c))))
        .collect()
}

/// The answer that hands nothing back.
fn all_published() -> Value {
    json!({"batchItemFailures": []})
}

/// The answer that hands back the `index`-th record and every one after it.
fn retry_from(index: usize) -> Value {
    json!({"batchItemFailures": [{"itemIdentifier": sequence_number(index)}]})
}

/// The one `stream batch` log line of each invocation, in order.
fn batch_lines(printed: &str) -> Vec<Value> {
    printed
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "stream batch")
        .collect()
}

/// Asserts the counts of a `stream batch` line: `records`, `events`, `published`, `retries`,
/// `failed_records`.
#[track_caller]
fn assert_counts(line: &Value, counts: [u64; 5]) {
    let seen = [
        "records",
        "events",
        "published",
        "retries",
        "failed_records",
    ]
    .map(|name| line[name].as_u64().unwrap_or(u64::MAX));
    assert_eq!(seen, counts, "{line}");
}

/// The function's metrics in `printed`: the sum of each, by name, in the namespace `crm` (the
/// default) under the one dimension set they have, `function`. Every EMF line must be readable, no
/// metric may carry another dimension, and the samples of `events_batch_duration_ms` are counted
/// under `batches`.
fn metrics_of(printed: &str) -> std::collections::BTreeMap<String, f64> {
    let points = emf::points(printed);
    let mut sums = std::collections::BTreeMap::new();
    for point in &points {
        assert_eq!(point.namespace, "crm", "{point:?}");
        assert_eq!(
            point.dimensions,
            [("function".to_owned(), FUNCTION_NAME.to_owned())].into(),
            "{point:?}"
        );
        *sums.entry(point.name.clone()).or_insert(0.0) += point.values.iter().sum::<f64>();
    }
    #[allow(clippy::cast_precision_loss)]
    let batches = emf::samples(
        &points,
        "events_batch_duration_ms",
        &[("function", FUNCTION_NAME)],
    ) as f64;
    sums.insert("batches".to_owned(), batches);
    sums
}

/// Asserts the counters of `metrics` (missing ones are 0): `events_published`,
/// `events_failed_entries`, `events_retries`, `events_failed_records`, and the batches measured.
#[track_caller]
#[allow(clippy::float_cmp)] // sums of small integers, exact in f64
fn assert_metrics(metrics: &std::collections::BTreeMap<String, f64>, counts: [f64; 5]) {
    let seen = [
        "events_published",
        "events_failed_entries",
        "events_retries",
        "events_failed_records",
        "batches",
    ]
    .map(|name| metrics.get(name).copied().unwrap_or(0.0));
    assert_eq!(seen, counts, "{metrics:?}");
    assert_eq!(
        metrics.get("cold_starts").copied(),
        Some(1.0),
        "{metrics:?}"
    );
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(crm_domain::events::SCHEMA).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Asserts that every entry is a change event of this function, on [`BUS`], whose detail matches
/// the published schema and holds no value.
fn assert_well_formed(entries: &[Entry]) {
    let validator = validator();
    for entry in entries {
        assert_eq!(entry.source, "crm.customers");
        assert_eq!(entry.bus, BUS);
        assert_eq!(entry.detail_type, entry.detail["type"].as_str().unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&entry.detail)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", entry.detail_text);
        assert_no_secret(&entry.detail_text);
        let time = at(entry.detail["time"].as_str().unwrap());
        #[allow(clippy::cast_precision_loss)]
        let seconds = time.unix_millis() as f64 / 1000.0;
        assert!((entry.time - seconds).abs() < 0.001, "{entry:?}");
    }
}

/// How many times each (id, version) was sent.
fn sends_of(entries: &[Entry], key: (&str, u64)) -> usize {
    entries
        .iter()
        .filter(|e| e.key() == (key.0.to_owned(), key.1))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_five_creations_go_to_the_bus_in_three_calls_of_at_most_ten() {
    let function = Function::start().await;
    let customers: Vec<Customer> = (0..25).map(|n| customer(&format!("c{n:02}"))).collect();

    let answer = function.publish(&batch(inserts(&customers))).await;

    assert_eq!(answer, all_published());
    let calls = function.bus.calls();
    let mut sizes: Vec<usize> = calls.iter().map(|call| call.entries.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [5, 10, 10]);
    for (target, content_type) in function.bus.request_headers() {
        assert_eq!(target.as_deref(), Some("AWSEvents.PutEvents"));
        assert_eq!(content_type.as_deref(), Some("application/x-amz-json-1.1"));
    }
    let sent = function.bus.sent();
    assert_well_formed(&sent);
    assert!(sent.iter().all(|e| e.detail_type == "customer.created"));
    let accepted: HashSet<(String, u64)> = function.bus.accepted().into_iter().collect();
    let expected: HashSet<(String, u64)> =
        customers.iter().map(|c| (c.id().to_string(), 1)).collect();
    assert_eq!(accepted, expected);
    assert_eq!(sent.len(), 25, "each event sent once");

    let ids = function.runtime.issued_ids();
    let printed = function.stop().await;
    assert_no_secret(&printed);
    let lines = batch_lines(&printed);
    assert_eq!(lines.len(), 1, "{printed}");
    assert_counts(&lines[0], [25, 25, 25, 0, 0]);
    assert_metrics(&metrics_of(&printed), [25.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(lines[0]["request_id"], ids[0].as_str());
    assert_eq!(lines[0]["level"], "INFO");
    for id in customers.iter().map(|c| c.id().to_string()) {
        assert!(!printed.contains(&format!("\"{id}\"")), "{id} logged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customers_events_never_share_a_call_and_reach_the_bus_in_version_order() {
    let function = Function::start().await;
    let ada = customer("ada");
    let ada2 = renamed(&ada);
    let ada3 = renamed(&ada2);
    let others: Vec<Customer> = (0..12).map(|n| customer(&format!("o{n:02}"))).collect();
    let mut changes = vec![("INSERT", None, Some(image(&ada)))];
    changes.extend(inserts(&others[..6]));
    changes.push(("MODIFY", Some(image(&ada)), Some(image(&ada2))));
    changes.push(("MODIFY", Some(image(&ada2)), Some(image(&ada3))));
    changes.extend(inserts(&others[6..]));
    changes.push(("MODIFY", Some(image(&ada3)), Some(tombstone(&ada3))));

    let answer = function.publish(&batch(changes)).await;

    assert_eq!(answer, all_published());
    let calls = function.bus.calls();
    for call in &calls {
        assert!(call.entries.len() <= 10);
        let ids: HashSet<String> = call.entries.iter().map(|e| e.key().0).collect();
        assert_eq!(
            ids.len(),
            call.entries.len(),
            "one customer twice: {call:?}"
        );
    }
    assert_well_formed(&function.bus.sent());
    // Ada's events in call order: each in a later call than the one before, in version order.
    let ada_calls: Vec<(usize, &Entry)> = calls
        .iter()
        .enumerate()
        .flat_map(|(n, call)| call.entries.iter().map(move |e| (n, e)))
        .filter(|(_, e)| e.key().0 == "ada")
        .collect();
    let versions: Vec<u64> = ada_calls.iter().map(|(_, e)| e.key().1).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert!(
        ada_calls.windows(2).all(|w| w[0].0 < w[1].0),
        "{ada_calls:?}"
    );
    let types: Vec<&str> = ada_calls
        .iter()
        .map(|(_, e)| e.detail_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "customer.updated",
            "customer.updated",
            "customer.deleted"
        ]
    );
    assert_eq!(ada_calls[1].1.detail["changedFields"], json!(["lastName"]));
    assert_eq!(function.bus.accepted().len(), 16);

    let printed = function.stop().await;
    assert_no_secret(&printed);
    assert_counts(&batch_lines(&printed)[0], [16, 16, 16, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_entries_are_sent_again_and_accepted_ones_never_are() {
    let function = Function::start().await;
    let customers: Vec<Customer> = (0..12).map(|n| customer(&format!("c{n:02}"))).collect();
    let mut changes = inserts(&customers);
    let c03_2 = renamed(&customers[3]);
    changes.push(("MODIFY", Some(image(&customers[3])), Some(image(&c03_2))));
    function.bus.refuse_entry("c03", 1, 2);

    let answer = function.publish(&batch(changes)).await;

    assert_eq!(answer, all_published());
    let sent = function.bus.sent();
    assert_eq!(sends_of(&sent, ("c03", 1)), 3);
    assert_eq!(sends_of(&sent, ("c03", 2)), 1);
    for c in customers.iter().filter(|c| c.id().as_str() != "c03") {
        assert_eq!(sends_of(&sent, (c.id().as_str(), 1)), 1, "{}", c.id());
    }
    // c03's update went after its creation was accepted.
    let accepted = function.bus.accepted();
    assert_eq!(accepted.len(), 13);
    let position = |key: (&str, u64)| {
        accepted
            .iter()
            .position(|k| *k == (key.0.to_owned(), key.1))
            .unwrap()
    };
    assert!(position(("c03", 1)) < position(("c03", 2)));
    let calls = function.bus.calls();
    let first_call_of_update = calls
        .iter()
        .position(|call| {
            call.entries
                .iter()
                .any(|e| e.key() == ("c03".to_owned(), 2))
        })
        .unwrap();
    let accepting_call = calls
        .iter()
        .position(|call| match &call.answer {
            Answer::Entries(ok) => call
                .entries
                .iter()
                .zip(ok)
                .any(|(e, ok)| *ok && e.key() == ("c03".to_owned(), 1)),
            Answer::Refused(_) => false,
        })
        .unwrap();
    assert!(accepting_call < first_call_of_update);

    let printed = function.stop().await;
    let lines = batch_lines(&printed);
    assert_counts(&lines[0], [13, 13, 13, 2, 0]);
    // Refused twice, sent again twice, nothing handed back.
    assert_metrics(&metrics_of(&printed), [13.0, 2.0, 2.0, 0.0, 1.0]);
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["error"], "InternalFailure");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_and_failing_calls_are_sent_again_with_their_entries() {
    let function = Function::start().await;
    let customers: Vec<Customer> = (0..3).map(|n| customer(&format!("c{n:02}"))).collect();
    function
        .bus
        .refuse_calls([CallFault::Throttle, CallFault::Internal]);

    let answer = function.publish(&batch(inserts(&customers))).await;

    assert_eq!(answer, all_published());
    let calls = function.bus.calls();
    let answers: Vec<&Answer> = calls.iter().map(|call| &call.answer).collect();
    assert_eq!(
        answers,
        [
            &Answer::Refused(CallFault::Throttle),
            &Answer::Refused(CallFault::Internal),
            &Answer::Entries(vec![true, true, true])
        ]
    );
    assert!(calls.iter().all(|call| call.entries == calls[0].entries));
    assert_eq!(function.bus.accepted().len(), 3);

    let printed = function.stop().await;
    assert_counts(&batch_lines(&printed)[0], [3, 3, 3, 6, 0]);
    // Two calls of three entries failed whole: six entries not accepted, six sent again.
    assert_metrics(&metrics_of(&printed), [3.0, 6.0, 6.0, 0.0, 1.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_that_stays_refused_is_handed_back_and_publishing_stops_there() {
    let function = Function::start().await;
    let customers: Vec<Customer> = (0..6).map(|n| customer(&format!("c{n:02}"))).collect();
    let mut changes = inserts(&customers[..5]);
    let c02_2 = renamed(&customers[2]);
    changes.push(("MODIFY", Some(image(&customers[2])), Some(image(&c02_2))));
    changes.extend(inserts(&customers[5..]));
    function.bus.refuse_entry("c02", 1, u32::MAX);

    let answer = function.publish(&batch(changes)).await;

    // Record 2 (c02's creation) is handed back, with everything after it.
    assert_eq!(answer, retry_from(2));
    let sent = function.bus.sent();
    assert_eq!(sends_of(&sent, ("c02", 1)), 4, "sent 4 times in all");
    assert_eq!(sends_of(&sent, ("c02", 2)), 0, "nothing of c02 after it");
    // The last call is the last attempt: nothing was sent once it stayed refused.
    let calls = function.bus.calls();
    let last = calls.last().unwrap();
    assert_eq!(
        last.entries.iter().map(Entry::key).collect::<Vec<_>>(),
        [("c02".to_owned(), 1)]
    );
    assert_eq!(calls.len(), 4);

    let printed = function.stop().await;
    let lines = batch_lines(&printed);
    assert_counts(&lines[0], [7, 7, 5, 3, 5]);
    assert_eq!(lines[0]["level"], "ERROR");
    assert_eq!(lines[0]["error"], "InternalFailure");
    // c02's creation refused 4 times (3 of them sends again), 5 records handed back: the
    // metrics that say so as it happens (a partial batch response is no Lambda error).
    assert_metrics(&metrics_of(&printed), [5.0, 4.0, 3.0, 5.0, 1.0]);
    // Every metric of the function, with the units and dimension sets the templates' alarms and
    // widgets read (tests/fixtures/emf-metrics.json).
    emf::assert_as_contracted(&emf::points(&printed), "crm-lambda-events", &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_refused_for_good_is_not_sent_again() {
    let function = Function::start().await;
    let customers: Vec<Customer> = (0..3).map(|n| customer(&format!("c{n:02}"))).collect();
    function.bus.refuse_calls([CallFault::AccessDenied]);

    let answer = function.publish(&batch(inserts(&customers))).await;

    assert_eq!(answer, retry_from(0));
    assert_eq!(function.bus.calls().len(), 1);
    let printed = function.stop().await;
    let lines = batch_lines(&printed);
    assert_counts(&lines[0], [3, 3, 0, 0, 3]);
    assert_eq!(lines[0]["error"], "AccessDeniedException");
    assert_metrics(&metrics_of(&printed), [0.0, 3.0, 0.0, 3.0, 1.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_cannot_be_read_is_handed_back_and_nothing_after_it_is_published() {
    let function = Function::start().await;
    let customers: Vec<Customer> = (0..4).map(|n| customer(&format!("c{n:02}"))).collect();

    // A customer image crm-dynamo could not have written (an email that is none).
    let mut broken = image(&customers[2]);
    broken["email"] = json!({"S": "Zephyrine at nowhere"});
    let mut changes = inserts(&customers[..2]);
    changes.push(("INSERT", None, Some(broken)));
    changes.extend(inserts(&customers[3..]));
    assert_eq!(function.publish(&batch(changes)).await, retry_from(2));
    let accepted: Vec<String> = function.bus.accepted().into_iter().map(|k| k.0).collect();
    assert_eq!(accepted.len(), 2);
    assert!(accepted.contains(&"c00".to_owned()) && accepted.contains(&"c01".to_owned()));

    // An eventName DynamoDB does not write.
    let mut records = batch(inserts(&customers));
    records[1]["eventName"] = json!("UPSERT");
    assert_eq!(function.publish(&records).await, retry_from(1));

    // Not a stream record at all (no SizeBytes, images that are not DynamoDB JSON).
    let mut records = batch(inserts(&customers));
    records[3]["dynamodb"] = json!({"SequenceNumber": sequence_number(3), "NewImage": "Zephyrine"});
    assert_eq!(function.publish(&records).await, retry_from(3));

    assert!(function.bus.sent().iter().all(|e| e.key().0 != "c03"));
    let printed = function.stop().await;
    assert_no_secret(&printed);
    let lines = batch_lines(&printed);
    assert_eq!(lines.len(), 3, "{printed}");
    assert_counts(&lines[0], [4, 2, 2, 0, 2]);
    assert_eq!(lines[0]["error"], "undecodable-image");
    assert_eq!(lines[1]["error"], "unknown-event-name");
    assert_eq!(lines[2]["error"], "undecodable-record");
    // Three batches, each written after its invocation: 2 + 1 + 3 published, 2 + 3 + 1 handed
    // back, one cold start.
    assert_metrics(&metrics_of(&printed), [6.0, 0.0, 0.0, 6.0, 3.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_idempotency_records_maintenance_and_expired_tombstones_put_nothing() {
    let function = Function::start().await;
    let ada = customer("ada");
    let changes = vec![
        ("INSERT", None, Some(claim("ada"))),
        ("REMOVE", Some(claim("ada")), None),
        ("INSERT", None, Some(idempotency("held"))),
        (
            "MODIFY",
            Some(idempotency("held")),
            Some(idempotency("done")),
        ),
        // The backfill of listing keys rewrites a customer, keeping its version.
        ("MODIFY", Some(image(&ada)), Some(image(&ada))),
        // The time to live drops a tombstone.
        ("REMOVE", Some(tombstone(&ada)), None),
    ];

    let answer = function.publish(&batch(changes)).await;

    assert_eq!(answer, all_published());
    assert!(function.bus.calls().is_empty());
    let printed = function.stop().await;
    assert_counts(&batch_lines(&printed)[0], [6, 0, 0, 0, 0]);
    assert_metrics(&metrics_of(&printed), [0.0, 0.0, 0.0, 0.0, 1.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_off_the_function_writes_no_emf_line() {
    let runtime = FakeRuntime::start().await;
    let bus = FakeEventBridge::start().await;
    let mut child = launch(&runtime, Some(BUS))
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.endpoint())
        .env("CRM_METRICS", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let answer = runtime
        .invoke(json!({"Records": batch(inserts(&[customer("c00")]))}))
        .await
        .response();
    assert_eq!(answer, all_published());
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut printed = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut printed).await;
    }
    assert!(!printed.lines().any(emf::is_emf), "{printed}");
    assert_counts(&batch_lines(&printed)[0], [1, 1, 1, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_empty_bus_name_fails_the_start_with_one_clear_line() {
    for bus_name in [None, Some(""), Some("  ")] {
        let runtime = FakeRuntime::start().await;
        let mut child = launch(&runtime, bus_name)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("it exits")
            .unwrap();
        assert!(!status.success());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        assert!(stderr.contains("CRM_EVENT_BUS_NAME"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(runtime.first_poll().is_none(), "it asked for an event");
    }
}
