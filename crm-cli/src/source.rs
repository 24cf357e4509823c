//! Reading an import file: a first pass that checks and fingerprints it, then its rows one by
//! one, never the whole file in memory.
//!
//! The first pass ([`survey`]) reads the file once, in blocks: its SHA-256 (the import's
//! source name, from which the rows without an id get theirs), that it is UTF-8 (else one line
//! names the line where it is not, before anything is written), that it is not empty, and its
//! format. The second pass ([`Rows`]) reads the rows.
//!
//! Rows are numbered as a spreadsheet or an editor shows them: in a CSV file the header is row
//! 1 and the first customer row 2 (a value over several lines is one row); in JSON Lines, row
//! *n* is line *n*.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crm_domain::{FieldError, NewCustomer};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::cli::Format;
use crate::columns::{Column, ColumnMap, Resolved, SERVER_COLUMNS};
use crate::exit::Failure;
use crate::normalize::{Cells, Normalizer};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How many distinct ignored JSON keys are named in the note.
const IGNORED_NAMES: usize = 20;

/// What the first pass learnt of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// `sha256:<hex>` of the file's bytes: the import's source name.
    pub digest: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Its format.
    pub format: Format,
}

/// Reads `path` once: its digest, its size, that it is UTF-8 and not empty, and its format
/// (`format`, else its extension, else its first character).
///
/// # Errors
/// One line each: the file cannot be read, is not UTF-8 (naming the line), is empty, or is a
/// JSON array.
pub fn survey(path: &Path, format: Option<Format>) -> Result<Survey, Failure> {
    let name = path.display();
    let unreadable = |e: io::Error| Failure::input(format!("cannot read {name}: {e}"));
    let mut file = File::open(path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0_u8; 64 * 1024];
    // The bytes of a character cut by the end of the last block.
    let mut carried: Vec<u8> = Vec::new();
    let mut size: u64 = 0;
    let mut lines: u64 = 1;
    let mut first: Option<u8> = None;
    let mut at_start = true;
    loop {
        let read = file.read(&mut block).map_err(unreadable)?;
        if read == 0 {
            break;
        }
        hasher.update(&block[..read]);
        size += read as u64;
        let mut data = std::mem::take(&mut carried);
        data.extend_from_slice(&block[..read]);
        let mut text = &data[..];
        if at_start {
            if text.len() < BOM.len() && BOM.starts_with(text) {
                carried = data;
                continue;
            }
            text = text.strip_prefix(BOM).unwrap_or(text);
            at_start = false;
        }
        let valid = match std::str::from_utf8(text) {
            Ok(_) => text.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                let line = lines + count_newlines(&text[..e.valid_up_to()]);
                return Err(Failure::input(format!(
                    "{name} is not UTF-8 text (line {line}): save it as UTF-8, or convert it, such as with `iconv -f WINDOWS-1252 -t UTF-8`"
                )));
            }
        };
        if first.is_none() {
            first = text[..valid]
                .iter()
                .copied()
                .find(|b| !b.is_ascii_whitespace());
        }
        lines += count_newlines(&text[..valid]);
        carried = text[valid..].to_vec();
    }
    if !carried.is_empty() && (!at_start || !BOM.starts_with(&carried)) {
        return Err(Failure::input(format!(
            "{name} is not UTF-8 text (line {lines}): it ends inside a character"
        )));
    }
    let Some(first) = first else {
        return Err(Failure::input(format!(
            "{name} is empty: there is nothing to import"
        )));
    };
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .and_then(|e| match e.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        });
    let format = format.or(by_extension).unwrap_or(if first == b'{' {
        Format::Jsonl
    } else {
        Format::Csv
    });
    if format == Format::Jsonl && first == b'[' {
        return Err(Failure::input(format!(
            "{name} is a JSON array, not JSON Lines: write one customer object a line"
        )));
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(Survey {
        digest: hex,
        size,
        format,
    })
}

#[expect(
    clippy::naive_bytecount,
    reason = "one count per 64 KiB block, not worth a crate"
)]
fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// A row as the file holds it, for the rejects file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// A CSV record's values.
    Csv(Vec<String>),
    /// A JSON Lines line.
    Json(String),
}

/// One row read: its number, what it was, and the customer it makes or why it makes none.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its row number (see the [module docs](self)).
    pub row: u64,
    /// The row as written.
    pub raw: Raw,
    /// The customer, or every field that failed.
    pub customer: Result<NewCustomer, Vec<FieldError>>,
}

/// The rows of a file, read one at a time.
pub struct Rows {
    kind: Kind,
    normalizer: Normalizer,
    map: ColumnMap,
    ignored: BTreeSet<String>,
    ignored_more: bool,
}

#[expect(clippy::large_enum_variant, reason = "one per import")]
enum Kind {
    Csv {
        reader: csv::Reader<BufReader<LineEnds<File>>>,
        resolved: Resolved,
        headers: Vec<String>,
        record: csv::StringRecord,
        /// The last row's number, as a spreadsheet shows it.
        row: u64,
        /// Line ends inside the values read so far (the header's included): the lines that are
        /// not rows of their own.
        inner_lines: u64,
        offset: u64,
    },
    Jsonl {
        reader: BufReader<File>,
        line: String,
        row: u64,
        offset: u64,
    },
}

impl Rows {
    /// Opens `path` in `format`, resolving a CSV header row through `map`.
    ///
    /// # Errors
    /// The file cannot be read; a CSV header row that misses a required column or maps one
    /// twice.
    pub fn open(
        path: &Path,
        format: Format,
        map: ColumnMap,
        normalizer: Normalizer,
    ) -> Result<Self, Failure> {
        let name = path.display();
        let unreadable = |e: io::Error| Failure::input(format!("cannot read {name}: {e}"));
        let mut file = File::open(path).map_err(unreadable)?;
        let mut start = [0_u8; 3];
        let mut got = 0;
        while got < 3 {
            let n = file.read(&mut start[got..]).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let offset = if start[..got] == *BOM { 3 } else { 0 };
        file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
        let kind = match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(BufReader::with_capacity(64 * 1024, LineEnds::new(file)));
                let headers: Vec<String> = reader
                    .headers()
                    .map_err(|e| {
                        Failure::input(format!("cannot read the header row of {name}: {e}"))
                    })?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
                let resolved = map
                    .resolve(&header_refs)
                    .map_err(|e| Failure::input(format!("{name}: {e}")))?;
                let inner_lines = line_ends(headers.iter().map(String::as_str));
                Kind::Csv {
                    reader,
                    resolved,
                    headers,
                    record: csv::StringRecord::new(),
                    row: 1,
                    inner_lines,
                    offset,
                }
            }
            Format::Jsonl => Kind::Jsonl {
                reader: BufReader::with_capacity(64 * 1024, file),
                line: String::new(),
                row: 0,
                offset,
            },
        };
        Ok(Self {
            kind,
            normalizer,
            map,
            ignored: BTreeSet::new(),
            ignored_more: false,
        })
    }

    /// The CSV header row, as written (`None` for JSON Lines).
    pub fn headers(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Csv { headers, .. } => Some(headers),
            Kind::Jsonl { .. } => None,
        }
    }

    /// How many bytes of the file have been read.
    pub fn bytes_read(&self) -> u64 {
        match &self.kind {
            Kind::Csv { reader, offset, .. } => offset + reader.position().byte(),
            Kind::Jsonl { offset, .. } => *offset,
        }
    }

    /// The headers (CSV) or keys (JSON Lines) that fed no field, the server's columns left out;
    /// at most 20 keys are named.
    pub fn ignored(&self) -> Vec<String> {
        match &self.kind {
            Kind::Csv { resolved, .. } => resolved.ignored().to_vec(),
            Kind::Jsonl { .. } => {
                let mut names: Vec<String> = self.ignored.iter().cloned().collect();
                if self.ignored_more {
                    names.push("…".to_owned());
                }
                names
            }
        }
    }

    /// The next row, `None` at the end.
    ///
    /// # Errors
    /// The file cannot be read any more.
    pub fn next_record(&mut self) -> Result<Option<Record>, Failure> {
        match &mut self.kind {
            Kind::Csv {
                reader,
                resolved,
                headers,
                record,
                row,
                inner_lines,
                ..
            } => {
                let more = match reader.read_record(record) {
                    Ok(more) => more,
                    Err(e) => {
                        if let csv::ErrorKind::Io(io) = e.kind() {
                            return Err(Failure::input(format!("cannot read the file: {io}")));
                        }
                        *row += 1;
                        return Ok(Some(Record {
                            row: *row,
                            raw: Raw::Csv(Vec::new()),
                            customer: Err(vec![FieldError::new("$", "is not a readable CSV row")]),
                        }));
                    }
                };
                if !more {
                    return Ok(None);
                }
                // The row a spreadsheet shows: the line the record starts on, less the line ends
                // inside earlier values, so that blank lines count and a value over several lines
                // does not (the reader skips blank lines, and numbers records, not rows). Where
                // the reader stopped, after the record, it has passed every line end before the
                // record's first line, those inside its values, and its own `\n` if it ended with
                // one. (Its own positions do not say it: one starts before the blank lines that
                // precede a record, and after a `\r\n` the next one falls between the two.) The
                // next number at least, where nothing counts lines (CR-only line ends).
                let inner = line_ends(record.iter());
                let after = reader.position().byte();
                let ends = reader.get_mut().get_mut();
                let own = u64::from(ends.is_line_end(after.wrapping_sub(1)));
                let first = (1 + ends.before(after)).saturating_sub(inner + own);
                ends.forget_before(after);
                *row = first.saturating_sub(*inner_lines).max(*row + 1);
                *inner_lines += inner;
                let raw: Vec<String> = record.iter().map(str::to_owned).collect();
                let customer = if record.len() == headers.len() {
                    let mut cells: Cells<'_> = [None; 11];
                    for column in Column::ALL {
                        cells[column.index()] = resolved.source(column).and_then(|i| record.get(i));
                    }
                    self.normalizer.customer(&cells)
                } else {
                    Err(vec![FieldError::new(
                        "$",
                        format!(
                            "has {} values where the header row has {} (a comma in a value that is not quoted?)",
                            record.len(),
                            headers.len()
                        ),
                    )])
                };
                Ok(Some(Record {
                    row: *row,
                    raw: Raw::Csv(raw),
                    customer,
                }))
            }
            Kind::Jsonl {
                reader,
                line,
                row,
                offset,
            } => loop {
                line.clear();
                let read = reader
                    .read_line(line)
                    .map_err(|e| Failure::input(format!("cannot read the file: {e}")))?;
                if read == 0 {
                    return Ok(None);
                }
                *offset += read as u64;
                *row += 1;
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let customer = match object_of(text) {
                    Ok(Some(object)) => json_customer(
                        &object,
                        &self.map,
                        &self.normalizer,
                        &mut self.ignored,
                        &mut self.ignored_more,
                    ),
                    Ok(None) => Err(vec![FieldError::new("$", "is not a JSON object")]),
                    Err(e) => Err(vec![FieldError::new(
                        "$",
                        format!("is not valid JSON (column {})", e.column()),
                    )]),
                };
                return Ok(Some(Record {
                    row: *row,
                    raw: Raw::Json(text.to_owned()),
                    customer,
                }));
            },
        }
    }
}

/// A reader that notes where the line ends (`\n`) it passes are, so that a CSV row's line can be
/// found from byte offsets (see [`Rows::next_record`]).
struct LineEnds<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// The offsets of the line ends not yet forgotten, in order.
    offsets: VecDeque<u64>,
    /// Line ends forgotten: all before the first offset kept.
    forgotten: u64,
}

impl<R> LineEnds<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            offsets: VecDeque::new(),
            forgotten: 0,
        }
    }

    /// Line ends before `offset` (not forgotten ones only: all of them).
    fn before(&self, offset: u64) -> u64 {
        self.forgotten + self.offsets.partition_point(|&o| o < offset) as u64
    }

    /// Whether the byte at `offset` is a line end.
    fn is_line_end(&self, offset: u64) -> bool {
        self.offsets.binary_search(&offset).is_ok()
    }

    /// Stops keeping the offsets before `offset`: no row asks about them any more.
    fn forget_before(&mut self, offset: u64) {
        while self.offsets.front().is_some_and(|&o| o < offset) {
            self.offsets.pop_front();
            self.forgotten += 1;
        }
    }
}

impl<R: Read> Read for LineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            self.offsets.push_back(self.read + i as u64);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// The line ends inside `values` (a `\r\n` is one).
fn line_ends<'a>(values: impl Iterator<Item = &'a str>) -> u64 {
    values.map(|value| count_newlines(value.as_bytes())).sum()
}

/// A JSON object with each member's value as its JSON text: a number keeps the digits it was
/// written with (`serde_json`'s `Value` would make `1e3` the float `1000.0`, and a number past
/// 64 bits a float too).
type Object = BTreeMap<String, Box<RawValue>>;

/// The object a line of JSON holds; `None` for any other JSON value.
fn object_of(text: &str) -> serde_json::Result<Option<Object>> {
    let value = serde_json::from_str::<Box<RawValue>>(text)?;
    if value.get().starts_with('{') {
        serde_json::from_str(value.get()).map(Some)
    } else {
        Ok(None)
    }
}

/// How deep objects may nest in a row: no field of a customer is deeper than `address.city`.
/// (Reading a value as raw text does not recurse, so `serde_json`'s own depth limit does not
/// bound this.)
const MAX_DEPTH: usize = 8;

/// A JSON object's members as `(path, value)` pairs: nested objects flattened with dots
/// (`address.city`), numbers as written, `null` left out.
fn flatten(object: &Object, prefix: &str, out: &mut Vec<(String, Result<String, &'static str>)>) {
    flatten_within(object, prefix, MAX_DEPTH, out);
}

fn flatten_within(
    object: &Object,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, Result<String, &'static str>)>,
) {
    for (key, value) in object {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = value.get();
        match text.as_bytes().first() {
            Some(b'n') => {}
            Some(b'"') => match serde_json::from_str::<String>(text) {
                Ok(string) => out.push((path, Ok(string))),
                // An escape of half a surrogate pair, which no text holds.
                Err(_) => out.push((path, Err("is not valid JSON text"))),
            },
            Some(b'-' | b'0'..=b'9') => out.push((path, Ok(text.to_owned()))),
            Some(b'{') if depth == 0 => out.push((path, Err("nests too deep"))),
            Some(b'{') => match serde_json::from_str::<Object>(text) {
                Ok(inner) => flatten_within(&inner, &path, depth - 1, out),
                Err(_) => out.push((path, Err("is not valid JSON text"))),
            },
            _ => out.push((path, Err("must be a string"))),
        }
    }
}

fn json_customer(
    object: &Object,
    map: &ColumnMap,
    normalizer: &Normalizer,
    ignored: &mut BTreeSet<String>,
    ignored_more: &mut bool,
) -> Result<NewCustomer, Vec<FieldError>> {
    let mut members = Vec::new();
    flatten(object, "", &mut members);
    let mut values: [Option<String>; 11] = Default::default();
    let mut sources: [Option<&str>; 11] = [None; 11];
    let mut errors = Vec::new();
    for (path, value) in &members {
        let Some(column) = map.column_of(path) else {
            let server = SERVER_COLUMNS.contains(&path.as_str());
            if !server && !ignored.contains(path) {
                if ignored.len() < IGNORED_NAMES {
                    ignored.insert(path.clone());
                } else {
                    *ignored_more = true;
                }
            }
            continue;
        };
        if let Some(earlier) = sources[column.index()] {
            errors.push(FieldError::new(
                column.name(),
                format!("is given twice, as `{earlier}` and as `{path}`"),
            ));
            continue;
        }
        sources[column.index()] = Some(path);
        match value {
            Ok(text) => values[column.index()] = Some(text.clone()),
            Err(message) => errors.push(FieldError::new(column.name(), *message)),
        }
    }
    let cells: Cells<'_> = std::array::from_fn(|i| values[i].as_deref());
    match normalizer.customer(&cells) {
        Ok(customer) if errors.is_empty() => Ok(customer),
        Ok(_) => Err(errors),
        Err(mut more) => {
            more.retain(|e| !errors.iter().any(|x| x.field == e.field));
            errors.extend(more);
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_taken_as_written_and_objects_flattened() {
        let object = object_of(
            r#"{"lastName": 1e3, "phone": -4.4207e11, "id": 123456789012345678901234567890,
                "address": {"postalCode": 90210, "city": "K\u00f6ln"}, "tags": [1], "ok": true,
                "email": null}"#,
        )
        .unwrap()
        .unwrap();
        let mut members = Vec::new();
        flatten(&object, "", &mut members);
        let text = |s: &str| Ok(s.to_owned());
        assert_eq!(
            members,
            [
                ("address.city".to_owned(), text("Köln")),
                ("address.postalCode".to_owned(), text("90210")),
                ("id".to_owned(), text("123456789012345678901234567890")),
                ("lastName".to_owned(), text("1e3")),
                ("ok".to_owned(), Err("must be a string")),
                ("phone".to_owned(), text("-4.4207e11")),
                ("tags".to_owned(), Err("must be a string")),
            ]
        );
    }

    #[test]
    fn deep_nesting_and_broken_escapes_are_errors_of_their_member() {
        let deep = format!(
            r#"{{"a": {}1{}}}"#,
            r#"{"a": "#.repeat(50_000),
            "}".repeat(50_000)
        );
        let object = object_of(&deep).unwrap().unwrap();
        let mut members = Vec::new();
        flatten(&object, "", &mut members);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].1, Err("nests too deep"));
        let object = object_of(r#"{"lastName": "\ud800"}"#).unwrap().unwrap();
        let mut members = Vec::new();
        flatten(&object, "", &mut members);
        assert_eq!(members[0].1, Err("is not valid JSON text"));
    }

    #[test]
    fn a_line_that_is_no_object_or_no_json_is_told_apart() {
        assert!(object_of("[1, 2]").unwrap().is_none());
        assert!(object_of("\"text\"").unwrap().is_none());
        assert!(object_of("{\"a\": 1").is_err());
        assert!(object_of("not json").is_err());
    }
}
