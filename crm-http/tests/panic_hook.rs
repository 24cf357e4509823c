//! The panic hook both binaries install first thing (`telemetry::install_panic_hook`): a panic is
//! one JSON error line naming its location, and its message, which could quote customer data, is
//! written nowhere. A binary of its own, because the hook and the subscriber are process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

#[path = "support/log_buffer.rs"]
mod log_buffer;
use log_buffer::LogBuffer;

/// A message that must never be written.
const SECRET: &str = "Zephyrine Quillfeather, 17 Marigold Lane";

/// The variable that makes [`without_a_subscriber_the_line_goes_to_stderr`] the child process.
const CHILD: &str = "CRM_PANIC_HOOK_CHILD";

/// Panics with [`SECRET`] under the installed hook, catching the unwind; returns the line of the
/// `panic!`.
fn panic_with_the_secret() -> u32 {
    let line = line!() + 1;
    let result = std::panic::catch_unwind(|| panic!("{SECRET}"));
    assert!(result.is_err());
    line
}

/// The one JSON line of `output` that names a panic, checked.
fn the_panic_line(output: &str, line: u32) {
    assert!(
        !output.contains(SECRET),
        "the panic message was written: {output}"
    );
    assert!(!output.contains("Quillfeather"), "{output}");
    let lines: Vec<Value> = output
        .lines()
        .filter(|l| l.contains("panic"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{output}");
    assert_eq!(lines[0]["level"], "ERROR", "{output}");
    assert_eq!(lines[0]["message"], "panicked", "{output}");
    assert_eq!(
        lines[0]["location"],
        format!("{}:{line}", file!()),
        "{output}"
    );
}

#[test]
fn a_panic_is_one_error_line_with_its_location_and_never_its_message() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let buffer = LogBuffer::default();
    let sink = buffer.clone();
    tracing::subscriber::set_global_default(crm_http::telemetry::subscriber("info", move || {
        sink.clone()
    }))
    .unwrap();
    crm_http::telemetry::install_panic_hook();
    let line = panic_with_the_secret();
    let written = buffer.text();
    the_panic_line(&written, line);
}

#[test]
fn without_a_subscriber_the_line_goes_to_stderr() {
    if std::env::var_os(CHILD).is_some() {
        // The child: no subscriber installed, as before `telemetry::init` in the binaries.
        crm_http::telemetry::install_panic_hook();
        let line = panic_with_the_secret();
        eprintln!("child done at line {line}");
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_a_subscriber_the_line_goes_to_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let line: u32 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("child done at line "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child did not run: {stdout}\n{stderr}"));
    the_panic_line(&format!("{stdout}\n{stderr}"), line);
}
