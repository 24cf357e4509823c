//! Every subcommand through a local server on the memory store (`--url`): the bulk import of a
//! generated file, an import killed halfway and run again, export and re-import, the orders,
//! progress lines and Ctrl-C.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crm_domain::SortOrder;

use crate::support::{Run, Server, crm, fields, file, generated_csv, run, scratch, walk};

/// Each generated row is `First{i} Last{i}`: the row of each stored customer, counted.
fn rows_stored(customers: &BTreeMap<String, crm_domain::Customer>) -> BTreeMap<String, usize> {
    let mut rows = BTreeMap::new();
    for customer in customers.values() {
        *rows.entry(customer.first_name().to_string()).or_insert(0) += 1;
    }
    rows
}

#[test]
fn a_generated_100000_row_csv_is_imported_whole() {
    let dir = scratch("hundred_thousand");
    let csv = file(&dir, "generated.csv", generated_csv(100_000));
    let server = Server::start();
    let started = Instant::now();
    let first = run(&[
        "--url",
        &server.url,
        "import",
        &csv,
        "--phone-region",
        "GB",
        "--progress",
        "off",
    ])
    .expect_code(0);
    let took = started.elapsed();
    assert!(
        first
            .stdout
            .contains("created 100,000, already present 0, rejected 0"),
        "{}",
        first.stdout
    );
    eprintln!("100,000 rows through a local server (debug build): {took:.1?}");
    let customers = server.customers();
    assert_eq!(customers.len(), 100_000);
    let sample = customers
        .values()
        .find(|c| c.first_name().as_str() == "First25")
        .unwrap();
    assert_eq!(sample.phone().unwrap().as_str(), "+442070250025");
}

#[test]
fn an_import_killed_halfway_and_run_again_holds_every_row_exactly_once() {
    let dir = scratch("killed");
    let rows = 20_000;
    let csv = file(&dir, "generated.csv", generated_csv(rows));
    let server = Server::start();
    let mut child = crm()
        .args([
            "--url",
            &server.url,
            "import",
            &csv,
            "--phone-region",
            "GB",
            "--progress",
            "off",
        ])
        .args(["--concurrency", "2", "--batch-size", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while server.store.len() < 3_000 {
        assert!(Instant::now() < deadline, "the import did not get going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to finish anything
    child.wait().unwrap();
    // A request the child had sent may still be finishing in the server.
    std::thread::sleep(Duration::from_millis(300));
    let before = server.store.len();
    assert!(before < rows, "killed halfway, not at the end: {before}");
    let rerun = run(&[
        "--url",
        &server.url,
        "import",
        &csv,
        "--phone-region",
        "GB",
        "--progress",
        "off",
    ])
    .expect_code(0);
    let stored = rows_stored(&server.customers());
    assert_eq!(stored.len(), rows, "every row is there");
    assert!(stored.values().all(|n| *n == 1), "and only once");
    let present = rows - (rows - before);
    assert!(
        rerun.stdout.contains(&format!(
            "created {}, already present {}",
            crate::thousands(rows - before),
            crate::thousands(present)
        )),
        "{}",
        rerun.stdout
    );
}

#[test]
fn an_export_imports_into_an_empty_store_as_the_same_customers_in_either_format() {
    let dir = scratch("round_trip");
    let source = Server::start();
    let csv = file(&dir, "generated.csv", generated_csv(1_500));
    run(&[
        "--url",
        &source.url,
        "import",
        &csv,
        "--phone-region",
        "GB",
        "--progress",
        "off",
    ])
    .expect_code(0);
    let expected: BTreeMap<String, serde_json::Value> = source
        .customers()
        .iter()
        .map(|(id, c)| (id.clone(), fields(c)))
        .collect();
    for format in ["csv", "jsonl"] {
        let exported = dir.join(format!("export.{format}"));
        let run = run(&[
            "--url",
            &source.url,
            "export",
            "-o",
            &exported.to_string_lossy(),
            "--progress",
            "off",
        ])
        .expect_code(0);
        assert!(
            run.stderr.contains("exported 1,500 customers"),
            "{}",
            run.stderr
        );
        let target = Server::start();
        crate::support::run(&[
            "--url",
            &target.url,
            "import",
            &exported.to_string_lossy(),
            "--progress",
            "off",
        ])
        .expect_code(0);
        let imported: BTreeMap<String, serde_json::Value> = target
            .customers()
            .iter()
            .map(|(id, c)| (id.clone(), fields(c)))
            .collect();
        assert_eq!(imported.len(), expected.len(), "{format}");
        for (id, customer) in &expected {
            assert_eq!(imported.get(id), Some(customer), "{format}: {id}");
        }
    }
}

#[test]
fn an_export_follows_each_order_the_api_offers() {
    let dir = scratch("orders");
    let server = Server::start();
    let names = "firstName,lastName\nZoe,Adams\nAda,Lovelace\nÉmile,Zola\nbob,baker\n";
    let csv = file(&dir, "names.csv", names);
    run(&["--url", &server.url, "import", &csv, "--progress", "off"]).expect_code(0);
    for order in SortOrder::ALL {
        let run = run(&[
            "--url",
            &server.url,
            "export",
            "--sort",
            order.as_str(),
            "--progress",
            "off",
        ])
        .expect_code(0);
        let ids: Vec<String> = run
            .stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let expected: Vec<String> = walk(&*server.store, order)
            .iter()
            .map(|c| c.id().to_string())
            .collect();
        assert_eq!(ids, expected, "{order}");
    }
    let by_name = run(&[
        "--url",
        &server.url,
        "export",
        "--sort",
        "name",
        "--format",
        "csv",
        "--progress",
        "off",
    ]);
    let last_names: Vec<String> = by_name
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(last_names, ["Adams", "baker", "Lovelace", "Zola"]);
    run(&["--url", &server.url, "export", "--sort", "email"]).expect_code(2);
}

#[test]
fn without_a_terminal_progress_is_a_plain_line_every_few_seconds_on_stderr() {
    let dir = scratch("plain_progress");
    let csv = file(&dir, "generated.csv", generated_csv(10_000));
    let server = Server::start();
    let run = run(&[
        "--url",
        &server.url,
        "import",
        &csv,
        "--progress-every",
        "0.05",
        "--concurrency",
        "1",
        "--phone-region",
        "GB",
    ])
    .expect_code(0);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("import: "))
        .collect();
    assert!(!lines.is_empty(), "{}", run.stderr);
    assert!(
        lines[0].contains(" rows, ") && lines[0].contains(" rows/s"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("% of the file read"), "{}", lines[0]);
    assert!(!run.stderr.contains('\r'), "no terminal redraws in a log");
    let quiet = crate::support::run(&[
        "--url",
        &server.url,
        "import",
        &csv,
        "--progress",
        "off",
        "--phone-region",
        "GB",
    ])
    .expect_code(0);
    assert!(!quiet.stderr.contains("import: "), "{}", quiet.stderr);
}

#[test]
fn ctrl_c_stops_cleanly_with_the_summary_so_far_and_the_rerun_hint() {
    let dir = scratch("ctrl_c");
    let csv = file(&dir, "generated.csv", generated_csv(30_000));
    let server = Server::start();
    let mut child = crm()
        .args([
            "--url",
            &server.url,
            "import",
            &csv,
            "--progress",
            "off",
            "--concurrency",
            "1",
            "--batch-size",
            "10",
        ])
        .args(["--phone-region", "GB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while server.store.len() < 500 {
        assert!(Instant::now() < deadline, "the import did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    let run = run.expect_code(130);
    assert!(
        run.stdout
            .contains("interrupted: run the same command again to finish"),
        "{}",
        run.stdout
    );
    let created = server.store.len();
    assert!(created < 30_000, "stopped before the end");
    assert!(
        run.stdout
            .contains(&format!("created {}", crate::thousands(created))),
        "the summary counts what was written: {created}\n{}",
        run.stdout
    );
}

/// A child process killed (and reaped) when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_ctrl_c_stops_an_export_at_once_and_leaves_no_partial_file() {
    let dir = scratch("second_ctrl_c");
    let target = dir.join("out.jsonl");
    // A server that takes connections and never answers: the export waits on its first page.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", stalled.local_addr().unwrap());
    // Killed when the test ends, should an assertion fail before the export does.
    let mut child = Reaped(
        crm()
            .args(["--url", &url, "export", "-o", &target.to_string_lossy()])
            .args(["--progress", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let stderr = std::sync::Arc::clone(&stderr);
        let mut pipe = child.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0; 1024];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                stderr
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    let partials = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(".out.jsonl.partial-"))
            .collect()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}: {}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let interrupt = || {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    wait_for("the export did not open its partial file", &|| {
        !partials().is_empty()
    });
    interrupt();
    wait_for("the first Ctrl-C was not told", &|| {
        stderr.lock().unwrap().contains("crm: interrupted:")
    });
    assert!(!partials().is_empty(), "the export still waits on its page");
    interrupt();
    let status = child.0.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted again: stopping now"),
        "{stderr}"
    );
    assert_eq!(
        partials(),
        Vec::<String>::new(),
        "the partial file is removed"
    );
    assert!(!target.exists(), "no export under the name asked for");
    drop(stalled);
}
