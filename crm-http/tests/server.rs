//! The `crm-server` binary as a user runs it: it starts on the address it is given, answers, and
//! stops on SIGTERM; a configuration error, a non-UTF-8 value among them, is one line on stderr and
//! exit code 1, never a panic; a stray non-UTF-8 variable that is not `crm`'s is ignored.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::ffi::OsStringExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm-server"));
    command
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The server process, killed when the test ends however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address in the server's first line ("crm-server listening on http://127.0.0.1:PORT …").
fn address_in(first_line: &str) -> String {
    first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned()
}

/// The first line the server writes on stdout (which it then no longer writes to the test).
fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

/// `GET /health` on a connection of its own, which must answer 200.
fn get_health(address: &str) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Sends SIGTERM to `child`, which must exit successfully within 10 s.
fn terminate(child: &mut std::process::Child) {
    terminate_within(child, Duration::from_secs(10));
}

/// Sends SIGTERM to `child`, which must exit successfully within `limit`.
fn terminate_within(child: &mut std::process::Child, limit: Duration) {
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < limit,
            "the server did not stop on SIGTERM within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

fn not_utf8() -> OsString {
    OsString::from_vec(b"127.0.0.1:\xff".to_vec())
}

/// Runs the server to its exit, which must come quickly, and returns its exit code and stderr.
fn run_to_failure(command: &mut Command) -> (Option<i32>, String) {
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the server kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn a_configuration_error_is_one_line_naming_the_variable_and_exit_code_1() {
    for (variable, value) in [
        ("CRM_BIND", OsString::from("localhost")),
        ("CRM_BIND", not_utf8()),
        ("AWS_PROFILE", not_utf8()),
        ("CRM_REQUEST_DEADLINE_MS", OsString::from("soon")),
    ] {
        let (code, stderr) = run_to_failure(server().env(variable, &value));
        assert_eq!(code, Some(1), "{variable}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{variable}: {stderr}");
        assert!(
            stderr.starts_with(&format!("crm-server: invalid configuration: {variable}")),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_server_starts_answers_and_stops_on_sigterm_whatever_else_the_environment_holds() {
    // A DynamoDB table is configured (the settings reader once panicked on a stray non-UTF-8
    // variable); no request reaches it: /health does not touch the store.
    let mut server = Running(
        server()
            .env("CRM_BIND", "127.0.0.1:0")
            .env("CRM_TABLE_NAME", "crm-server-test")
            .env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("SOMEONE_ELSES_VARIABLE", not_utf8())
            .spawn()
            .unwrap(),
    );
    let child = &mut server.0;
    // "crm-server listening on http://127.0.0.1:PORT with DynamoDB table crm-server-test; ..."
    let first_line = first_line(child);
    let address = address_in(&first_line);
    assert!(
        first_line.contains("DynamoDB table crm-server-test"),
        "{first_line}"
    );
    get_health(&address);
    terminate(child);
}

/// Lines the server writes are batched (2 ms at most in a buffer): stopping it right after a burst
/// of requests must still write every request line, and the last line last.
#[test]
fn every_request_line_and_the_last_line_reach_stdout_when_the_server_stops() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 50;
    let mut server = Running(
        server()
            .env("RUST_LOG", "info")
            .env("CRM_BIND", "127.0.0.1:0")
            .spawn()
            .unwrap(),
    );
    let child = &mut server.0;
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    let address = address_in(&first_line);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PER_THREAD {
                    get_health(&address);
                }
            });
        }
    });
    // The rest of stdout, read beside: the pipe closes when the process has exited.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).map(|_| rest)
    });
    // At once: the last lines are still in the log writer's buffer.
    terminate(child);
    let rest = reader.join().unwrap().unwrap();
    let lines: Vec<serde_json::Value> = rest
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let requests = lines
        .iter()
        .filter(|line| line["message"] == "request" && line["route"] == "/health")
        .count();
    assert_eq!(requests, THREADS * PER_THREAD, "request lines lost");
    assert_eq!(
        lines.last().map(|line| line["message"].clone()),
        Some("stopped".into()),
        "the last line is not the last one written"
    );
}

/// A connection that sent part of a request head and nothing more.
fn stalled(address: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: loc")
        .unwrap();
    stream
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_cut_off_and_holds_no_stop_up() {
    // The idle timeout shortened to 2 s (CRM_IDLE_TIMEOUT_MS), so that the test is quick.
    let timeout = Duration::from_secs(2);
    let mut server = Running(
        server()
            .env("CRM_BIND", "127.0.0.1:0")
            .env("CRM_IDLE_TIMEOUT_MS", timeout.as_millis().to_string())
            .spawn()
            .unwrap(),
    );
    let child = &mut server.0;
    let address = address_in(&first_line(child));

    // Cut off once the header read timeout has passed, with no answer, or a 408.
    let mut slow = stalled(&address);
    slow.set_read_timeout(Some(timeout * 6)).unwrap();
    let mut answer = Vec::new();
    match slow.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still open after {:?}: {e}", timeout * 6),
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    get_health(&address);

    // A stop waits for a request head under way, at most the idle timeout. (The server accepts in
    // order: once the request after it is answered, the stalled connection is being served.)
    let _slow = stalled(&address);
    get_health(&address);
    terminate_within(child, timeout * 3);
}

#[test]
fn a_client_that_never_reads_its_answers_holds_a_stop_up_no_longer_than_the_grace() {
    // The grace is the request deadline and a second more: 2 s here.
    let mut server = Running(
        server()
            .env("CRM_BIND", "127.0.0.1:0")
            .env("CRM_REQUEST_DEADLINE_MS", "1000")
            .spawn()
            .unwrap(),
    );
    let child = &mut server.0;
    let address = address_in(&first_line(child));
    // Requests for a large answer, pipelined, and never read: the server's writes fill the
    // socket's buffers and wait.
    let mut greedy = std::net::TcpStream::connect(&address).unwrap();
    let request = b"GET /openapi.json HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let pipelined: Vec<u8> = request
        .iter()
        .copied()
        .cycle()
        .take(request.len() * 2_000)
        .collect();
    greedy.write_all(&pipelined).unwrap();
    get_health(&address);
    terminate_within(child, Duration::from_secs(15));
}
