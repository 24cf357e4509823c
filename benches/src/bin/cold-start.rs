//! The cold-start harness: runs Lambda functions as the Lambda service does, through a fake
//! Runtime API on loopback, and measures
//!
//! - **init**: exec → the function's first `GET /runtime/invocation/next`;
//! - **first response**: exec → the response to an event queued before exec is posted;
//! - **warm latency**: per invocation, over many events to one running function;
//! - **RSS** after init and after the warm run;
//! - **invocations per second of one sandbox** with `AWS_LAMBDA_MAX_CONCURRENCY` 1 and 8 (Lambda
//!   Managed Instances), that many invocations kept in flight;
//!
//! for crm's release bootstrap (with and without the DynamoDB connection opened during init), for
//! a Python baseline (boto3 under `awslambdaric`, the real Python runtime client) doing the same
//! DynamoDB `GetItem`, and for the physical baseline, a Rust `lambda_runtime` function that answers
//! a fixed document (`benches/hello-lambda`, built with the same profile), in the same run, against
//! DynamoDB Local. `benches/cold-start.sh` builds everything and calls it; see BENCHMARKS.md.
//!
//! ```text
//! cold-start --bootstrap PATH --hello PATH --python PATH --handler-dir DIR [--runs N] [--warm N]
//!            [--throughput N] [--endpoint URL]
//! ```

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

#[path = "../../../crm-lambda/tests/support/fake_runtime.rs"]
mod fake_runtime;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crm_domain::{Customer, CustomerId, CustomerRepository, NewCustomer, Timestamp};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use fake_runtime::FakeRuntime;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

#[derive(Debug, Clone)]
struct Options {
    bootstrap: String,
    hello: String,
    python: String,
    handler_dir: String,
    runs: usize,
    warm: usize,
    /// Invocations per concurrency in the throughput runs.
    throughput: usize,
    endpoint: String,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        if let [key, value] = pair {
            map.insert(key.trim_start_matches("--").to_owned(), value.clone());
        }
    }
    let need = |key: &str| {
        map.get(key)
            .cloned()
            .unwrap_or_else(|| panic!("--{key} is required; see the module docs"))
    };
    Options {
        bootstrap: need("bootstrap"),
        hello: need("hello"),
        python: need("python"),
        handler_dir: need("handler-dir"),
        runs: map.get("runs").and_then(|v| v.parse().ok()).unwrap_or(20),
        warm: map.get("warm").and_then(|v| v.parse().ok()).unwrap_or(1000),
        throughput: map
            .get("throughput")
            .and_then(|v| v.parse().ok())
            .unwrap_or(4000),
        endpoint: map
            .get("endpoint")
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned()),
    }
}

/// One kind of function under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Function {
    /// crm's bootstrap as deployed (`CRM_WARM_UP` unset: no request during init).
    Rust,
    /// crm's bootstrap with `CRM_WARM_UP=true`: the DynamoDB connection opened during init.
    RustWarmUp,
    /// boto3 under awslambdaric.
    Python,
    /// `hello-lambda`: `lambda_runtime` and a fixed answer, nothing else.
    Hello,
}

impl Function {
    const ALL: [Self; 4] = [Self::Rust, Self::RustWarmUp, Self::Python, Self::Hello];

    fn label(self) -> &'static str {
        match self {
            Self::Rust => "crm bootstrap (as deployed)",
            Self::RustWarmUp => "crm bootstrap (CRM_WARM_UP=true)",
            Self::Python => "Python 3.11 + boto3 (awslambdaric)",
            Self::Hello => "Rust lambda_runtime hello (no SDK, fixed answer)",
        }
    }

    fn spawn(self, options: &Options, runtime: &FakeRuntime, table: &str) -> Child {
        self.spawn_with(options, runtime, table, &[])
    }

    fn spawn_with(
        self,
        options: &Options,
        runtime: &FakeRuntime,
        table: &str,
        extra: &[(&str, &str)],
    ) -> Child {
        let mut command = match self {
            Self::Rust | Self::RustWarmUp => Command::new(&options.bootstrap),
            Self::Hello => Command::new(&options.hello),
            Self::Python => {
                let mut c = Command::new(&options.python);
                c.args(["-m", "awslambdaric", "handler.handler"])
                    .current_dir(&options.handler_dir)
                    .env("LAMBDA_TASK_ROOT", &options.handler_dir)
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                c
            }
        };
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "crm-cold-start")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/crm-cold-start")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_SESSION_TOKEN", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &options.endpoint)
            .env("CRM_TABLE_NAME", table)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if self == Self::RustWarmUp {
            command.env("CRM_WARM_UP", "true");
        }
        command.envs(extra.iter().copied());
        command.spawn().expect("the function starts")
    }
}

/// An API Gateway HTTP API event for `GET /customers/{id}`.
fn get_event(id: &str) -> Value {
    let path = format!("/customers/{id}");
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "api.example.test"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "api", "domainName": "api.example.test",
            "domainPrefix": "api", "requestId": "cold", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000", "timeEpoch": 1_795_320_000_000_u64,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"}
        },
        "isBase64Encoded": false
    })
}

fn status_of(outcome: fake_runtime::Outcome) -> u64 {
    outcome.response()["statusCode"].as_u64().unwrap_or(0)
}

async fn seed(options: &Options) -> String {
    let table = format!("crm-cold-start-{}", CustomerId::generate());
    let settings = DynamoSettings::new(&table, "us-east-1")
        .unwrap()
        .with_endpoint(&options.endpoint)
        .with_local_credentials();
    let repository = DynamoCustomerRepository::connect(&settings).await;
    repository
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("DynamoDB Local at {}: {e:?}", options.endpoint));
    let input = NewCustomer::from_json(&json!({
        "id": "cold-1", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
        "address": {"line1": "12 St James's Square", "city": "London", "country": "GB"}
    }))
    .unwrap();
    repository
        .create(&Customer::create(
            input,
            CustomerId::generate(),
            Timestamp::now(),
        ))
        .await
        .unwrap();
    table
}

/// One cold start: (init, first response).
async fn cold_start(function: Function, options: &Options, table: &str) -> (Duration, Duration) {
    let runtime = FakeRuntime::start().await;
    let started = Instant::now();
    let child = function.spawn(options, &runtime, table);
    let outcome = runtime.invoke(get_event("cold-1")).await;
    let first_response = started.elapsed();
    assert_eq!(
        status_of(outcome),
        200,
        "{} answered the first event",
        function.label()
    );
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
    latencies: Vec<Duration>,
}

async fn warm_run(function: Function, options: &Options, table: &str) -> Warm {
    let runtime = FakeRuntime::start().await;
    let child = function.spawn(options, &runtime, table);
    let pid = child.id().expect("a pid");
    while runtime.first_poll().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after_init_kib = rss_kib(pid);
    let mut latencies = Vec::with_capacity(options.warm);
    for _ in 0..options.warm {
        let started = Instant::now();
        let outcome = runtime.invoke(get_event("cold-1")).await;
        latencies.push(started.elapsed());
        assert_eq!(status_of(outcome), 200);
    }
    let rss_after_warm_kib = rss_kib(pid);
    drop(child);
    Warm {
        rss_after_init_kib,
        rss_after_warm_kib,
        latencies,
    }
}

/// One sandbox of crm's bootstrap with `AWS_LAMBDA_MAX_CONCURRENCY` = `concurrency`, kept busy
/// by as many callers, each sending its next event when its last is answered, for
/// `options.throughput` invocations in all: (invocations per second, latencies).
async fn throughput(options: &Options, table: &str, concurrency: usize) -> (f64, Vec<Duration>) {
    let runtime = std::sync::Arc::new(FakeRuntime::start().await);
    let child = Function::Rust.spawn_with(
        options,
        &runtime,
        table,
        &[("AWS_LAMBDA_MAX_CONCURRENCY", &concurrency.to_string())],
    );
    assert!(
        runtime
            .wait_for_polls(concurrency, Duration::from_secs(30))
            .await,
        "{concurrency} polls"
    );
    // Warm every poller's connections first.
    for _ in 0..concurrency * 10 {
        assert_eq!(status_of(runtime.invoke(get_event("cold-1")).await), 200);
    }
    let per_caller = (options.throughput / concurrency).max(1);
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let runtime = std::sync::Arc::clone(&runtime);
        callers.spawn(async move {
            let mut latencies = Vec::with_capacity(per_caller);
            for _ in 0..per_caller {
                let sent = Instant::now();
                let outcome = runtime.invoke(get_event("cold-1")).await;
                latencies.push(sent.elapsed());
                assert_eq!(status_of(outcome), 200);
            }
            latencies
        });
    }
    let latencies: Vec<Duration> = callers.join_all().await.into_iter().flatten().collect();
    #[allow(clippy::cast_precision_loss)]
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    drop(child);
    (rate, latencies)
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
    let table = seed(&options).await;
    let mut cold: HashMap<Function, (Vec<Duration>, Vec<Duration>)> = HashMap::new();
    // Interleaved, so that whatever else the machine does falls on every function alike.
    for _ in 0..options.runs {
        for function in Function::ALL {
            let (init, first) = cold_start(function, &options, &table).await;
            let entry = cold.entry(function).or_default();
            entry.0.push(init);
            entry.1.push(first);
        }
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Cold starts: {} per function, interleaved; warm: {} sequential invocations. Medians unless said.\n",
        options.runs, options.warm
    );
    let _ = writeln!(
        report,
        "| function | init (exec → first poll) | first response (exec → response) | warm p50 | warm p99 | RSS after init | RSS after warm run |"
    );
    let _ = writeln!(report, "| --- | --- | --- | --- | --- | --- | --- |");
    let mut medians = HashMap::new();
    for function in Function::ALL {
        let (mut init, mut first) = cold.remove(&function).unwrap_or_default();
        let init_median = percentile(&mut init, 0.5);
        let first_median = percentile(&mut first, 0.5);
        medians.insert(function, (init_median, first_median));
        let (warm_cells, rss_cells) = if function == Function::RustWarmUp {
            ("— | —".to_owned(), "— | —".to_owned())
        } else {
            let mut warm = warm_run(function, &options, &table).await;
            #[allow(clippy::cast_precision_loss)]
            let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
            (
                format!(
                    "{} | {}",
                    ms(percentile(&mut warm.latencies, 0.5)),
                    ms(percentile(&mut warm.latencies, 0.99))
                ),
                format!(
                    "{} | {}",
                    mib(warm.rss_after_init_kib),
                    mib(warm.rss_after_warm_kib)
                ),
            )
        };
        let _ = writeln!(
            report,
            "| {} | {} | {} | {warm_cells} | {rss_cells} |",
            function.label(),
            ms(init_median),
            ms(first_median)
        );
    }
    let (rust_init, rust_first) = medians[&Function::Rust];
    let (python_init, python_first) = medians[&Function::Python];
    let (warm_up_init, warm_up_first) = medians[&Function::RustWarmUp];
    let (hello_init, hello_first) = medians[&Function::Hello];
    let _ = writeln!(
        report,
        "\ncrm ÷ hello (the physical baseline, same profile): init {:.2}×, first response {:.2}×.",
        rust_init.as_secs_f64() / hello_init.as_secs_f64(),
        rust_first.as_secs_f64() / hello_first.as_secs_f64(),
    );
    let _ = writeln!(
        report,
        "\nPython ÷ crm: init {:.0}×, first response {:.0}×. Opening the connection in init (CRM_WARM_UP=true): init {} → {}, first response {} → {}.",
        python_init.as_secs_f64() / rust_init.as_secs_f64(),
        python_first.as_secs_f64() / rust_first.as_secs_f64(),
        ms(rust_init),
        ms(warm_up_init),
        ms(rust_first),
        ms(warm_up_first),
    );
    let _ = writeln!(
        report,
        "\nOne sandbox of crm's bootstrap, GET by id, about {} invocations, as many in flight as AWS_LAMBDA_MAX_CONCURRENCY:\n",
        options.throughput
    );
    let _ = writeln!(
        report,
        "| AWS_LAMBDA_MAX_CONCURRENCY | invocations/s | p50 | p99 |"
    );
    let _ = writeln!(report, "| --- | --- | --- | --- |");
    for concurrency in [1, 8] {
        let (rate, mut latencies) = throughput(&options, &table, concurrency).await;
        let _ = writeln!(
            report,
            "| {concurrency} | {rate:.0} | {} | {} |",
            ms(percentile(&mut latencies, 0.5)),
            ms(percentile(&mut latencies, 0.99))
        );
    }
    let size = std::fs::metadata(&options.bootstrap).map_or(0, |m| m.len());
    let _ = writeln!(report, "Bootstrap: {} ({size} bytes).", options.bootstrap);
    print!("{report}");
    let _ = std::fs::write("target/cold-start-report.md", report);
}
