//! The import and export benchmark, in one run (BENCHMARKS.md, "The command line"):
//!
//! ```text
//! scripts/dynamodb-local.sh start
//! cargo test --release -p crm-cli --test bench -- --ignored --nocapture
//! ```
//!
//! 1. `crm import` of a generated CSV (`CRM_BENCH_ROWS`, 20,000 by default: `HubSpot` headers,
//!    every other row with an email, one in 25 with a phone to normalise, one in 4 with an
//!    address) into a fresh DynamoDB Local table, at `--concurrency 8` (`CRM_BENCH_CONCURRENCY`);
//! 2. a bare `BatchWriteItem` loop writing the same items (each customer's item, as the bulk
//!    import writes it, and the claim of each email) into another fresh table, 25 a request,
//!    8 requests in flight, unprocessed items sent again; the items are built before the clock
//!    starts, so the loop does nothing but write;
//! 3. the repository's own bulk path without the command line: `put_many` of the same customers
//!    in batches of 50, 8 at once (what `crm import` drives), into a third fresh table;
//! 4. `crm export` of the imported table to a JSON Lines file;
//! 5. the peak resident memory (`/usr/bin/time`'s maximum RSS) of `crm import --dry-run` on
//!    100,000 and on 1,000,000 generated rows.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::too_many_lines
)]

#[path = "cli/support.rs"]
mod support;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use crm_cli::cli::Format;
use crm_cli::columns::ColumnMap;
use crm_cli::normalize::Normalizer;
use crm_cli::source::{Rows, survey};
use crm_domain::{Customer, CustomerId, Timestamp};
use sha2::Digest as _;
use support::{Table, args, crm, file, generated_csv, runtime, scratch};

/// Writes in flight, for the import and both loops (`CRM_BENCH_CONCURRENCY`, 8 by default).
fn concurrency() -> usize {
    std::env::var("CRM_BENCH_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8)
}

fn rows() -> usize {
    std::env::var("CRM_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// The customers of `path`, with the ids the import gives them.
fn customers_of(path: &str) -> Vec<Customer> {
    let path = std::path::Path::new(path);
    let survey = survey(path, Some(Format::Csv)).unwrap();
    let mut rows = Rows::open(
        path,
        Format::Csv,
        ColumnMap::default(),
        Normalizer::new(Some("GB")).unwrap(),
    )
    .unwrap();
    let now = Timestamp::now();
    let mut customers = Vec::new();
    while let Some(record) = rows.next_record().unwrap() {
        let input = record.customer.expect("a generated row is valid");
        customers.push(Customer::create(
            input,
            CustomerId::derived(&survey.digest, record.row),
            now,
        ));
    }
    customers
}

/// `put_many` of `customers` in batches of 50, `concurrency()` at once.
async fn put_many(table: &Table, customers: &[Customer]) {
    use crm_domain::CustomerRepository as _;
    let repository = Arc::new(table.repository.clone());
    let batches: Vec<Vec<Customer>> = customers.chunks(50).map(<[Customer]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency() {
        let repository = Arc::clone(&repository);
        let queue = Arc::clone(&queue);
        workers.spawn(async move {
            loop {
                let Some(mut batch) = queue.lock().unwrap().pop() else {
                    return;
                };
                // What the store did not confirm is sent again, as `crm import` does.
                while !batch.is_empty() {
                    let report = repository.put_many(&batch).await.expect("put_many");
                    batch.retain(|c| report.unconfirmed.contains(c.id()));
                }
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.expect("every customer written");
    }
}

/// The items the bulk import writes for the customers of `path`: each customer's item and the
/// claim of its email.
fn items_of(path: &str) -> Vec<HashMap<String, AttributeValue>> {
    let path = std::path::Path::new(path);
    let survey = survey(path, Some(Format::Csv)).unwrap();
    let mut rows = Rows::open(
        path,
        Format::Csv,
        ColumnMap::default(),
        Normalizer::new(Some("GB")).unwrap(),
    )
    .unwrap();
    let now = Timestamp::now();
    let mut items = Vec::new();
    while let Some(record) = rows.next_record().unwrap() {
        let input = record.customer.expect("a generated row is valid");
        let customer =
            Customer::create(input, CustomerId::derived(&survey.digest, record.row), now);
        if let Some(email) = customer.email() {
            let digest = sha2::Sha256::digest(email.normalized().as_bytes());
            let hex = digest.iter().fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
            items.push(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(format!("EMAIL#{hex}"))),
                ("kind".to_owned(), AttributeValue::S("email".to_owned())),
                (
                    "customerId".to_owned(),
                    AttributeValue::S(customer.id().to_string()),
                ),
            ]));
        }
        items.push(crm_dynamo::items::to_item(&customer).unwrap());
    }
    items
}

/// Writes `items` with `BatchWriteItem`, 25 a request, `concurrency()` requests in flight.
async fn batch_write(table: &Table, items: Vec<HashMap<String, AttributeValue>>) {
    let client = Arc::new(table.client().await);
    let chunks: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect()
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(chunks));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency() {
        let client = Arc::clone(&client);
        let queue = Arc::clone(&queue);
        let name = table.name.clone();
        workers.spawn(async move {
            loop {
                let Some(mut requests) = queue.lock().unwrap().pop() else {
                    return;
                };
                while !requests.is_empty() {
                    let answer = client
                        .batch_write_item()
                        .request_items(&name, requests)
                        .send()
                        .await
                        .expect("BatchWriteItem");
                    requests = answer
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&name))
                        .unwrap_or_default();
                }
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.expect("every item written");
    }
}

/// The maximum resident set size of `crm import --dry-run FILE`, in MiB.
fn peak_rss_mib(path: &str) -> (f64, Duration) {
    let report = std::env::temp_dir().join(format!("crm-bench-rss-{}", std::process::id()));
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_crm"))
        .args([
            "import",
            path,
            "--dry-run",
            "--phone-region",
            "GB",
            "--progress",
            "off",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("/usr/bin/time runs (apt-get install time)");
    let took = started.elapsed();
    assert!(status.success());
    let kib: f64 = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(report);
    (kib / 1024.0, took)
}

#[test]
#[ignore = "a benchmark: run it with --release -- --ignored --nocapture"]
fn import_and_export_throughput_and_dry_run_memory() {
    let dir = scratch("bench");
    let rows = rows();
    let csv = file(&dir, "generated.csv", generated_csv(rows));

    let imported = Table::create();
    let started = Instant::now();
    let run = crm()
        .args(args(
            &imported.flags(),
            &["import", &csv, "--phone-region", "GB", "--progress", "off"],
        ))
        .args([
            "--concurrency",
            &concurrency().to_string(),
            "--retry-for",
            "600",
        ])
        .output()
        .unwrap();
    let import_time = started.elapsed();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );

    let items = items_of(&csv);
    let item_count = items.len();
    let bare = Table::create();
    let started = Instant::now();
    runtime().block_on(batch_write(&bare, items));
    let bare_time = started.elapsed();

    let customers = customers_of(&csv);
    let direct = Table::create();
    let started = Instant::now();
    runtime().block_on(put_many(&direct, &customers));
    let direct_time = started.elapsed();

    let exported = dir.join("export.jsonl");
    let started = Instant::now();
    let run = crm()
        .args(args(
            &imported.flags(),
            &[
                "export",
                "-o",
                &exported.to_string_lossy(),
                "--progress",
                "off",
            ],
        ))
        .output()
        .unwrap();
    let export_time = started.elapsed();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let small = file(&dir, "100k.csv", generated_csv(100_000));
    let (small_rss, small_time) = peak_rss_mib(&small);
    let large = file(&dir, "1m.csv", generated_csv(1_000_000));
    let (large_rss, large_time) = peak_rss_mib(&large);

    let import_rate = per_second(rows, import_time);
    let bare_rate = per_second(rows, bare_time);
    println!();
    let concurrency = concurrency();
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!("| rows | {rows} ({item_count} items with the email claims) |");
    println!(
        "| `crm import`, DynamoDB Local, concurrency {concurrency} | {:.1} s, {import_rate:.0} rows/s |",
        import_time.as_secs_f64()
    );
    println!(
        "| bare `BatchWriteItem` loop, same items, concurrency {concurrency} | {:.1} s, {bare_rate:.0} rows/s |",
        bare_time.as_secs_f64()
    );
    println!(
        "| import / bare loop | {:.0} % |",
        import_rate / bare_rate * 100.0
    );
    let direct_rate = per_second(rows, direct_time);
    println!(
        "| repository `put_many` loop, same customers, batches of 50, concurrency {concurrency} | {:.1} s, {direct_rate:.0} rows/s |",
        direct_time.as_secs_f64()
    );
    println!(
        "| import / `put_many` loop | {:.0} % |",
        import_rate / direct_rate * 100.0
    );
    println!(
        "| `crm export` (JSON Lines) | {:.1} s, {:.0} customers/s |",
        export_time.as_secs_f64(),
        per_second(rows, export_time)
    );
    println!(
        "| `crm import --dry-run`, 100,000 rows: peak RSS, time | {small_rss:.1} MiB, {:.1} s |",
        small_time.as_secs_f64()
    );
    println!(
        "| `crm import --dry-run`, 1,000,000 rows: peak RSS, time | {large_rss:.1} MiB, {:.1} s |",
        large_time.as_secs_f64()
    );
    println!(
        "| peak RSS, 1,000,000 / 100,000 rows | {:.2} |",
        large_rss / small_rss
    );
}
