//! The rejected rows: counted, the first few listed on stderr, all written to `--rejects`.
//!
//! The rejects file is in the input's format, so that it can be fixed and imported as it is
//! (import ignores the extra columns and keys):
//!
//! - CSV: the header row with `_row`, `_field` and `_reason` after it, then each rejected row as
//!   it was, with its row number, its failing fields (`;`-separated) and their reasons; a row with
//!   fewer values than the header is padded with empty ones, so that the three columns stand
//!   under their names, and one with more keeps them all, the three columns after them;
//! - JSON Lines: each rejected line's object with `_row`, `_field` and `_reason` members added
//!   (a line that is not a JSON object is kept whole as `_line`).
//!
//! Only the file holds values; stderr gets row numbers, fields and reasons.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crm_domain::FieldError;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::exit::Failure;
use crate::source::Raw;

/// How many rejected rows are listed on stderr; the rest are counted.
pub const LISTED: u64 = 20;

/// Where rejected rows go.
pub struct Rejects {
    file: Option<RejectsFile>,
    count: u64,
    listed: Vec<String>,
}

struct RejectsFile {
    path: PathBuf,
    writer: Output,
    /// The header row's width, for CSV.
    columns: usize,
}

#[expect(clippy::large_enum_variant, reason = "one per import")]
enum Output {
    Csv(csv::Writer<BufWriter<File>>),
    Json(BufWriter<File>),
}

impl Rejects {
    /// Rejects that are only counted and listed.
    pub fn counted() -> Self {
        Self {
            file: None,
            count: 0,
            listed: Vec::new(),
        }
    }

    /// Rejects also written to `path`: CSV with `headers` (and the three columns after them),
    /// or JSON Lines when `headers` is `None`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn to_file(path: &Path, headers: Option<&[String]>) -> Result<Self, Failure> {
        let failed = |e: io::Error| {
            Failure::input(format!(
                "cannot write the rejects file {}: {e}",
                path.display()
            ))
        };
        let file = BufWriter::new(File::create(path).map_err(failed)?);
        let writer = match headers {
            Some(headers) => {
                // Flexible: a rejected row may be one whose width differs from the header's.
                let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(file);
                let mut row: Vec<&str> = headers.iter().map(String::as_str).collect();
                row.extend(["_row", "_field", "_reason"]);
                writer.write_record(&row).map_err(|e| failed(e.into()))?;
                Output::Csv(writer)
            }
            None => Output::Json(file),
        };
        Ok(Self {
            file: Some(RejectsFile {
                path: path.to_owned(),
                writer,
                columns: headers.map_or(0, <[String]>::len),
            }),
            count: 0,
            listed: Vec::new(),
        })
    }

    /// Records a rejected row.
    ///
    /// # Errors
    /// When the rejects file cannot be written.
    pub fn add(&mut self, row: u64, raw: &Raw, errors: &[FieldError]) -> Result<(), Failure> {
        self.count += 1;
        if self.count <= LISTED {
            self.listed.push(format!("row {row}: {}", describe(errors)));
        }
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let fields = errors
            .iter()
            .map(|e| e.field.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let reasons = describe(errors);
        let written = match (&mut file.writer, raw) {
            (Output::Csv(writer), Raw::Csv(values)) => {
                let mut record: Vec<&str> = values.iter().map(String::as_str).collect();
                if record.len() < file.columns {
                    record.resize(file.columns, "");
                }
                let row = row.to_string();
                record.extend([row.as_str(), fields.as_str(), reasons.as_str()]);
                writer.write_record(&record).map_err(io::Error::from)
            }
            (Output::Json(writer), Raw::Json(line)) => {
                // The row's members as their JSON text, so that a number stays as written.
                let mut object: BTreeMap<String, Box<RawValue>> = serde_json::from_str(line)
                    .unwrap_or_else(|_| {
                        BTreeMap::from([("_line".to_owned(), json_text(line.as_str()))])
                    });
                object.insert("_row".to_owned(), json_text(row));
                object.insert("_field".to_owned(), json_text(fields));
                object.insert("_reason".to_owned(), json_text(reasons));
                serde_json::to_writer(&mut *writer, &object)
                    .map_err(io::Error::from)
                    .and_then(|()| writer.write_all(b"\n"))
            }
            // A record of the other format cannot happen: one file, one format.
            _ => Ok(()),
        };
        written.map_err(|e| {
            Failure::input(format!(
                "cannot write the rejects file {}: {e}",
                file.path.display()
            ))
        })
    }

    /// How many rows were rejected.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The first rejected rows, one line each (row, fields, reasons).
    pub fn listed(&self) -> &[String] {
        &self.listed
    }

    /// The rejects file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// Flushes the rejects file.
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn finish(&mut self) -> Result<(), Failure> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let flushed = match &mut file.writer {
            Output::Csv(writer) => writer.flush(),
            Output::Json(writer) => writer.flush(),
        };
        flushed.map_err(|e| {
            Failure::input(format!(
                "cannot write the rejects file {}: {e}",
                file.path.display()
            ))
        })
    }
}

/// `field: reason; field: reason`.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `value` as JSON text.
fn json_text(value: impl serde::Serialize) -> Box<RawValue> {
    // A string or an integer always serializes.
    serde_json::value::to_raw_value(&value).unwrap_or_default()
}
