//! `crm table` and `crm claims`: the DynamoDB table tools, over what `crm-dynamo` provides
//! (`create_table`, `describe_table`, `check_claims`). Each prints to stdout what it found;
//! table metadata and claim findings hold ids and claim keys (digests), never a customer's field.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_dynamo::{
    ClaimsCheck, ClaimsPosition, ClaimsReport, DynamoCustomerRepository, TableDescription,
};

use crate::Interrupt;
use crate::cli::{ClaimsCommand, TableCommand};
use crate::exit::{Exit, Failure, chain};

/// Runs `crm table create|describe`.
///
/// `create` of a table that exists already does what a setup script run twice needs: it creates
/// nothing, says so, describes the table and answers as `describe` does (0 when it matches the
/// code, 1 when it differs), instead of failing on DynamoDB's refusal. The table is looked at
/// before anything is created, so a failure of the creation itself (its wait, its time to live)
/// is reported as such.
///
/// # Errors
/// When DynamoDB refuses (`describe` of a table that does not exist; `create` of one it cannot
/// make) or cannot be reached.
pub async fn table(
    command: &TableCommand,
    repository: &DynamoCustomerRepository,
) -> Result<Exit, Failure> {
    let name = repository.table_name();
    match command {
        TableCommand::Create => {
            // Most often a table that cannot be described does not exist; anything else, the
            // creation's own refusal tells.
            if let Ok(description) = repository.describe_table().await {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "table {name} exists already; nothing was created");
                if description.status != "ACTIVE" {
                    let _ = writeln!(
                        out,
                        "it is {}, not ACTIVE: follow it with `crm table describe`",
                        description.status
                    );
                }
                return Ok(print_description(&mut out, &description));
            }
            repository.create_table().await.map_err(|e| {
                Failure::store(format!("cannot create table {name}: {}", chain(&e)))
            })?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "created table {name}: the code's layout (key, indexes, stream, time to live), billed on demand"
            );
            Ok(Exit::Success)
        }
        TableCommand::Describe => {
            let description = repository.describe_table().await.map_err(|e| {
                Failure::store(format!("cannot describe table {name}: {}", chain(&e)))
            })?;
            Ok(print_description(
                &mut std::io::stdout().lock(),
                &description,
            ))
        }
    }
}

/// Prints `description` and answers whether the table matches the code.
fn print_description(out: &mut impl std::io::Write, description: &TableDescription) -> Exit {
    let text = description.to_string();
    let _ = write!(out, "{text}");
    if !text.ends_with('\n') {
        let _ = writeln!(out);
    }
    if description.matches_code() {
        Exit::Success
    } else {
        Exit::Rejects
    }
}

/// Runs `crm claims check [--repair] [--resume-after POSITION]`: findings on stdout as the walk
/// meets them, a progress line on stderr every few seconds, the counts at the end.
///
/// # Errors
/// An invalid position; DynamoDB failing (the counts so far and the position to resume after
/// are printed first).
pub async fn claims(
    command: &ClaimsCommand,
    repository: &DynamoCustomerRepository,
    interrupt: &Interrupt,
) -> Result<Exit, Failure> {
    let ClaimsCommand::Check {
        repair,
        resume_after,
    } = command;
    let mut check = ClaimsCheck::new().repair(*repair);
    if let Some(position) = resume_after {
        let position: ClaimsPosition = position
            .parse()
            .map_err(|e| Failure::input(format!("--resume-after {position}: {e}")))?;
        check = check.resume_after(position);
    }
    let started = Instant::now();
    let last = Arc::new(Mutex::new(ClaimsReport::default()));
    let printed = Arc::new(Mutex::new((0_usize, Duration::ZERO)));
    let progress = {
        let last = Arc::clone(&last);
        move |report: &ClaimsReport| {
            let mut printed = printed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut out = std::io::stdout().lock();
            for finding in report.findings.iter().skip(printed.0) {
                let _ = writeln!(out, "{finding}");
            }
            printed.0 = report.findings.len();
            let elapsed = started.elapsed();
            if elapsed >= printed.1 + Duration::from_secs(5) {
                printed.1 = elapsed;
                crate::say(format_args!("claims: {report}"));
            }
            if let Ok(mut last) = last.lock() {
                *last = report.clone();
            }
        }
    };
    let walk = repository.check_claims(&check, progress);
    let watch = async {
        while !interrupt.happened() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let outcome = tokio::select! {
        outcome = walk => Some(outcome),
        () = watch => None,
    };
    let mut out = std::io::stdout().lock();
    match outcome {
        Some(Ok(report)) => {
            let _ = writeln!(out, "{report}");
            let left = report
                .findings
                .iter()
                .filter(|f| !f.repair.is_repaired())
                .count();
            if left > 0 {
                let _ = writeln!(
                    out,
                    "{left} finding(s) left{}",
                    if *repair {
                        ""
                    } else {
                        ": run with --repair to mend what can be mended"
                    }
                );
                Ok(Exit::Rejects)
            } else {
                Ok(Exit::Success)
            }
        }
        Some(Err(error)) => {
            let _ = writeln!(out, "{error}");
            Err(Failure::store(format!(
                "the claims check stopped: {}",
                chain(&error.source)
            )))
        }
        None => {
            let report = last.lock().map(|r| r.clone()).unwrap_or_default();
            let _ = writeln!(out, "interrupted: {report}");
            Ok(Exit::Interrupted)
        }
    }
}
