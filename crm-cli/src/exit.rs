//! How a command ends: its exit code, and the one line that says why when it failed.
//!
//! | code | meaning |
//! | ---: | --- |
//! | 0 | done: every row imported or already present (or rejected, with `--allow-rejects`); the export written; the table created; no claim problem left |
//! | 1 | done, but the data needs you: rows were rejected (see `--rejects`), or `claims check` found problems it did not repair |
//! | 2 | nothing (more) done, because of the command line, the configuration or the input: an unknown flag, an invalid variable, a file that is not UTF-8, empty, or lacks a required column |
//! | 3 | the store failed: DynamoDB or the server is unreachable, throttles past every retry, or refuses (permissions, a missing table); an import says how far it got, and running it again finishes it |
//! | 130 | interrupted (Ctrl-C): an import says how far it got, and running it again finishes it |

use std::fmt;
use std::process::ExitCode;

/// How a command that ran to its end (or was stopped cleanly) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything done.
    Success,
    /// Done, but rows were rejected or problems were found and left.
    Rejects,
    /// Stopped by Ctrl-C after reporting how far it got.
    Interrupted,
    /// Stopped part-way by the input or an output file, after reporting how far it got.
    InputFailed,
    /// Stopped because the store failed, after reporting how far it got.
    StoreFailed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Rejects => 1,
            Self::InputFailed => 2,
            Self::StoreFailed => 3,
            Self::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// What kind of failure ended a command, which decides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The command line, the configuration or the input file (exit code 2).
    Input,
    /// The store: unreachable, throttling past every retry, refusing (exit code 3).
    Store,
}

/// A command that could not do its work: one line for stderr, and its exit code.
///
/// The message never holds a customer's data: it names files, rows, columns, variables and
/// the store's own errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    /// A failure of the command line, the configuration or the input (exit code 2).
    pub fn input(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Input,
            message: message.into(),
        }
    }

    /// A failure of the store (exit code 3).
    pub fn store(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Store,
            message: message.into(),
        }
    }

    /// Which kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The process exit code: 2 or 3.
    pub fn code(&self) -> u8 {
        match self.kind {
            FailureKind::Input => 2,
            FailureKind::Store => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever an underlying error held.
        f.write_str(&self.message.replace(['\n', '\r'], " "))
    }
}

/// An error and its sources as one line: `outer: inner: innermost`, each said once.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = inner.source();
    }
    line
}
