//! The cold-start harness of the events function (`crm-lambda-events`): runs its release bootstrap
//! as the Lambda service does, through the fake Runtime API on loopback, publishing to a fake
//! `EventBridge` on loopback (both the test support of `crm-lambda`), and measures
//!
//! - **init**: exec → the function's first `GET /runtime/invocation/next`;
//! - **first response**: exec → the answer to a batch of `--records` creations queued before exec;
//! - **warm latency** per batch of `--records` records, and of 1 record, over `--warm` batches each
//!   to one running function; the cost per record is the difference over the records added;
//! - **RSS** after init and after the warm run.
//!
//! Each record is an `INSERT` of a distinct customer, its image the item `crm-dynamo` writes (in
//! DynamoDB JSON), so each tells one `customer.created` event: `--records` 100 is 10 `PutEvents`
//! calls, in 3 rounds. `benches/cold-start-events.sh` builds the bootstrap and calls this.
//!
//! ```text
//! cold-start-events --bootstrap PATH [--runs N] [--warm N] [--records N]
//! ```

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

#[path = "../../../crm-lambda/tests/support/eventbridge.rs"]
mod eventbridge;
#[path = "../../../crm-lambda/tests/support/fake_runtime.rs"]
mod fake_runtime;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use eventbridge::FakeEventBridge;
use fake_runtime::FakeRuntime;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

#[derive(Debug, Clone)]
struct Options {
    bootstrap: String,
    runs: usize,
    warm: usize,
    records: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        if let [key, value] = pair {
            map.insert(key.trim_start_matches("--").to_owned(), value.clone());
        }
    }
    let number =
        |key: &str, default: usize| map.get(key).and_then(|v| v.parse().ok()).unwrap_or(default);
    Options {
        bootstrap: map
            .get("bootstrap")
            .cloned()
            .unwrap_or_else(|| panic!("--bootstrap is required; see the module docs")),
        runs: number("runs", 20),
        warm: number("warm", 200),
        records: number("records", 100).max(2),
    }
}

fn spawn(options: &Options, runtime: &FakeRuntime, bus: &FakeEventBridge) -> Child {
    Command::new(&options.bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "crm-cold-start-events")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/crm-cold-start-events",
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.endpoint())
        .env("CRM_EVENT_BUS_NAME", "crm-cold-start")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the function starts")
}

/// The item `crm-dynamo` writes for customer `id`, in DynamoDB JSON.
fn customer_image(id: &str) -> Value {
    let s = |text: &str| json!({"S": text});
    json!({
        "pk": s(&format!("CUSTOMER#{id}")), "kind": s("customer"), "id": s(id),
        "firstName": s("Ada"), "lastName": s("Lovelace"),
        "email": s("ada@example.com"), "emailKey": s("ada@example.com"),
        "addressLine1": s("12 St James's Square"), "addressCity": s("London"),
        "addressCountry": s("GB"),
        "createdAt": s("2026-12-01T10:00:00.000Z"), "updatedAt": s("2026-12-01T10:00:00.000Z"),
        "version": {"N": "1"}, "shard": s("2"),
        "createdKey": s(&format!("2026-12-01T10:00:00.000Z#{id}")),
        "updatedKey": s(&format!("2026-12-01T10:00:00.000Z#{id}")),
        "nameKey": s(&format!("lovelace ada#{id}")),
        "firstNameKey": s(&format!("ada lovelace#{id}")),
        "writeToken": s("0f3c9a7e")
    })
}

/// A stream batch of `records` creations of distinct customers, named after `batch`.
fn batch(batch: usize, records: usize) -> Value {
    let records: Vec<Value> = (0..records)
        .map(|n| {
            let id = format!("b{batch}-{n}");
            let image = customer_image(&id);
            json!({
                "eventID": format!("{batch}-{n}"), "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/crm/stream/2026-12-01T00:00:00.000",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_795_345_200.0,
                    "Keys": {"pk": image["pk"].clone()},
                    "NewImage": image,
                    "SequenceNumber": format!("{:021}", batch * 100_000 + n),
                    "SizeBytes": 640,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            })
        })
        .collect();
    json!({"Records": records})
}

fn assert_all_published(outcome: fake_runtime::Outcome) {
    assert_eq!(outcome.response(), json!({"batchItemFailures": []}));
}

/// One cold start: (init, first response).
async fn cold_start(options: &Options, bus: &FakeEventBridge, run: usize) -> (Duration, Duration) {
    let runtime = FakeRuntime::start().await;
    let records = batch(run, options.records);
    let started = Instant::now();
    let child = spawn(options, &runtime, bus);
    let outcome = runtime.invoke(records).await;
    let first_response = started.elapsed();
    assert_all_published(outcome);
    let init = runtime
        .first_poll()
        .map(|t| t.duration_since(started))
        .expect("the function polled");
    drop(child);
    (init, first_response)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

struct Warm {
    rss_after_init_kib: u64,
    rss_after_warm_kib: u64,
    /// Per batch of `--records`.
    full: Vec<Duration>,
    /// Per batch of 1.
    single: Vec<Duration>,
}

async fn warm_run(options: &Options, bus: &FakeEventBridge) -> Warm {
    let runtime = FakeRuntime::start().await;
    let child = spawn(options, &runtime, bus);
    let pid = child.id().expect("a pid");
    while runtime.first_poll().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after_init_kib = rss_kib(pid);
    // Names no cold run used.
    let base = options.runs + 1;
    assert_all_published(runtime.invoke(batch(base, options.records)).await);
    let mut full = Vec::with_capacity(options.warm);
    let mut single = Vec::with_capacity(options.warm);
    for n in 0..options.warm {
        // Made before the clock starts: the harness's own work is not the function's.
        let one = batch(base + 1 + 2 * n, 1);
        let many = batch(base + 2 + 2 * n, options.records);
        let started = Instant::now();
        let outcome = runtime.invoke(one).await;
        single.push(started.elapsed());
        assert_all_published(outcome);
        let started = Instant::now();
        let outcome = runtime.invoke(many).await;
        full.push(started.elapsed());
        assert_all_published(outcome);
    }
    let rss_after_warm_kib = rss_kib(pid);
    drop(child);
    Warm {
        rss_after_init_kib,
        rss_after_warm_kib,
        full,
        single,
    }
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index.min(values.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let options = options();
    let bus = FakeEventBridge::start().await;
    let mut init = Vec::with_capacity(options.runs);
    let mut first = Vec::with_capacity(options.runs);
    for run in 0..options.runs {
        let (i, f) = cold_start(&options, &bus, run).await;
        init.push(i);
        first.push(f);
    }
    let mut warm = warm_run(&options, &bus).await;
    let records = options.records;
    let full = percentile(&mut warm.full, 0.5);
    let single = percentile(&mut warm.single, 0.5);
    #[allow(clippy::cast_possible_truncation)]
    let per_record = full.saturating_sub(single) / (records as u32 - 1);
    #[allow(clippy::cast_precision_loss)]
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Events function: {} cold starts; warm: {} batches of {records} records and {} of 1, alternating. Medians unless said. EventBridge is a loopback fake answering at once.\n",
        options.runs, options.warm, options.warm
    );
    let _ = writeln!(
        report,
        "| init (exec → first poll) | first response ({records} records) | warm {records} records p50 | p99 | warm 1 record p50 | per record | RSS after init | RSS after warm run |"
    );
    let _ = writeln!(report, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    let _ = writeln!(
        report,
        "| {} | {} | {} | {} | {} | {:.1} µs | {} | {} |",
        ms(percentile(&mut init, 0.5)),
        ms(percentile(&mut first, 0.5)),
        ms(full),
        ms(percentile(&mut warm.full, 0.99)),
        ms(single),
        per_record.as_secs_f64() * 1e6,
        mib(warm.rss_after_init_kib),
        mib(warm.rss_after_warm_kib),
    );
    let calls = bus.calls().len();
    let entries = bus.sent().len();
    let size = std::fs::metadata(&options.bootstrap).map_or(0, |m| m.len());
    let _ = writeln!(
        report,
        "\n{entries} events in {calls} PutEvents calls. Bootstrap: {} ({size} bytes).",
        options.bootstrap
    );
    print!("{report}");
    let _ = std::fs::write("target/cold-start-events-report.md", report);
}
