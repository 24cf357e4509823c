//! The JSON log line, written straight into the line's buffer.
//!
//! The lines have the shape `tracing-subscriber`'s JSON format gives with `flatten_event` and
//! `with_current_span`: `{"timestamp", "level", <the event's fields>, "target", "span": {<the
//! current span's fields>, "name"}}` (no `span` outside a span). What differs is the cost. That
//! format records every field into a map of `serde_json::Value`s, then serializes the map through
//! an `io::Write` adapter that checks each piece for UTF-8 again on its way into the line's
//! `String`. Here each field is written once, escaped on the way, and a span's fields are kept as
//! the JSON members they will be written as; the timestamp and integers are written digit by
//! digit, and a value with nothing to escape is written whole. The request line and its span cost
//! the local server about 10,000 instructions per GET by id, against 23,500 with that format
//! (`benches/callgrind.sh`, at `info` against `warn`).
//!
//! Values: strings (and `%` / `?` values, through their `Display` / `Debug`) are JSON strings;
//! integers and booleans are JSON numbers and booleans; a float is a number, or `null` when it is
//! not finite. A field recorded again on a span is written again, later in the object (JSON
//! readers, `CloudWatch` Logs Insights among them, take the last).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::json::{Digits, Escaped, ascii, string, write_digits};

/// The event format: one JSON object per line.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonLine;

/// The span fields' format: the JSON members (`"name":value,…`) the lines inside the span carry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonMembers;

impl<S> FormatEvent<S, JsonMembers> for JsonLine
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonMembers>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        writer.write_str(timestamp(std::time::SystemTime::now()).text())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut members = Members::new(&mut writer, false);
        event.record(&mut members);
        members.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        if let Some(span) = ctx.parent_span() {
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<JsonMembers>>() {
                writer.write_str(",\"span\":{")?;
                if !fields.fields.is_empty() {
                    writer.write_str(&fields.fields)?;
                    writer.write_char(',')?;
                }
                writer.write_str("\"name\":")?;
                string(&mut writer, span.name())?;
                writer.write_char('}')?;
            }
        }
        writer.write_str("}\n")
    }
}

impl<'writer> FormatFields<'writer> for JsonMembers {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // A new span's members go into an empty `String` of their own, which would grow three or
        // four times on the way (a request span's id alone is 51 bytes): written on the stack
        // first, they reach it in one piece, one allocation. Members that do not fit are
        // written again, straight into it.
        let mut staged = Staged::new();
        let mut members = Members::new(&mut staged, true);
        fields.record(&mut members);
        // `full`, not only the result: a `Debug` that ignores a failed write would otherwise
        // leave a hole in its value.
        if members.result.is_ok() && !staged.full {
            return writer.write_str(staged.text());
        }
        let mut members = Members::new(&mut writer, true);
        fields.record(&mut members);
        members.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let before = current.fields.len();
        let mut writer = current.as_writer();
        let mut members = Members::new(&mut writer, before == 0);
        fields.record(&mut members);
        let result = members.result;
        // A value whose `Debug` or `Display` failed half-way would leave a member half-written,
        // and every later line of the span invalid JSON: the span keeps what it had.
        if result.is_err() {
            current.fields.truncate(before);
        }
        result
    }
}

/// Up to [`Staged::CAPACITY`] bytes of text on the stack; once a write did not fit, it is full:
/// that write and every later one fail.
struct Staged {
    bytes: [u8; Staged::CAPACITY],
    len: usize,
    full: bool,
}

impl Staged {
    const CAPACITY: usize = 256;

    fn new() -> Self {
        Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
            full: false,
        }
    }

    fn text(&self) -> &str {
        // Only whole `str`s were copied in: valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for Staged {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let slot = match self.bytes.get_mut(self.len..end) {
            Some(slot) if !self.full => slot,
            _ => {
                self.full = true;
                return Err(fmt::Error);
            }
        };
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes each field it visits as a JSON member, with a comma before every one but the first.
struct Members<'a, W> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> Members<'a, W> {
    /// Members written to `out`; `first`: no member precedes them in their object.
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    /// Writes `"name":` and then the value with `value`, unless an earlier write failed.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        self.member_then(field, "\":", value);
    }

    /// Writes `"name":"`, the value escaped with `value`, and the closing quote: a string member
    /// in five writes (three of them fixed text) where [`member`](Self::member) and [`string`]
    /// would take eight.
    fn string_member(
        &mut self,
        field: &Field,
        value: impl FnOnce(&mut Escaped<'_, W>) -> fmt::Result,
    ) {
        self.member_then(field, "\":\"", |out| {
            value(&mut Escaped(&mut *out))?;
            out.write_str("\"")
        });
    }

    /// Writes the member's opening (`"name` after a comma unless it is the first), `after_name`
    /// and then the value with `value`, unless an earlier write failed. Each piece of fixed text is
    /// one write: a write to the line's buffer goes through a `dyn fmt::Write`.
    fn member_then(
        &mut self,
        field: &Field,
        after_name: &str,
        value: impl FnOnce(&mut W) -> fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            let first = std::mem::take(&mut self.first);
            self.out.write_str(if first { "\"" } else { ",\"" })?;
            // A raw identifier (`r#type`) is the field `type`.
            let name = field.name();
            Escaped(&mut *self.out).write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.out.write_str(after_name)?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string_member(field, |out| out.write_str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string_member(field, |out| write!(out, "{value:?}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| out.write_str(Digits::new(value).text()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| {
            if value < 0 {
                out.write_char('-')?;
            }
            out.write_str(Digits::new(value.unsigned_abs()).text())
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }
}

/// A log line's timestamp, `2026-12-02T11:32:33.327995Z` (UTC, microseconds), as
/// `tracing-subscriber`'s `SystemTime` writes it, written digit by digit.
struct LineTime([u8; 27]);

impl LineTime {
    fn text(&self) -> &str {
        ascii(&self.0)
    }
}

/// `time` as a [`LineTime`]; a time before 1970 (a clock set wrong) as 1970's first instant.
fn timestamp(time: std::time::SystemTime) -> LineTime {
    let since = time
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (no negative days here).
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let of_era = shifted % 146_097;
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, value: u64| {
        write_digits(&mut out[at..at + width], value);
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    LineTime(out)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// The text `emit` writes through the format.
    fn text(emit: impl FnOnce()) -> String {
        let sink = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonMembers)
            .event_format(JsonLine)
            .with_writer(sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    /// The lines `emit` writes through the format, each parsed by `serde_json`.
    fn lines(emit: impl FnOnce()) -> Vec<Value> {
        text(emit)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_shape_of_the_flattened_json_format() {
        let emit = || tracing::info!(request_id = "r-1", status = 200_u64, ok = true, "request");
        let text = text(emit);
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        // The members in the order the format writes them.
        let keys = [
            "timestamp",
            "level",
            "message",
            "request_id",
            "status",
            "ok",
            "target",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|key| text.find(&format!("\"{key}\":")).unwrap())
            .collect();
        assert!(at.is_sorted(), "{text}");
        let lines = lines(emit);
        let line = lines[0].as_object().unwrap();
        assert_eq!(line.len(), keys.len());
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["status"], 200);
        assert_eq!(line["ok"], true);
        assert_eq!(line["target"], module_path!());
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() == "2026-12-02T11:32:33.327995Z".len() && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    }

    #[test]
    fn a_line_is_written_byte_for_byte_as_the_format_writes_it() {
        let text = text(|| {
            let span = tracing::info_span!("request", request_id = "r-3", r#type = "q\"t");
            span.in_scope(|| {
                tracing::info!(
                    r#type = "raw",
                    text = "a\"b\\c\n",
                    shown = ?"d",
                    count = 3_u64,
                    below = -2_i64,
                    ok = false,
                    "done"
                );
            });
        });
        // Everything after the timestamp, which changes from run to run.
        let (_, rest) = text.split_once("Z\",").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            rest,
            "\"level\":\"INFO\",\"message\":\"done\",\"type\":\"raw\",\"text\":\"a\\\"b\\\\c\\n\",\
             \"shown\":\"\\\"d\\\"\",\"count\":3,\"below\":-2,\"ok\":false,\
             \"target\":\"crm_http::telemetry::json_lines::tests\",\
             \"span\":{\"request_id\":\"r-3\",\"type\":\"q\\\"t\",\"name\":\"request\"}}\n"
        );
    }

    #[test]
    fn lines_inside_a_span_carry_its_fields_and_name_also_those_recorded_later() {
        let lines = lines(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "r-2",
                trace_id = tracing::field::Empty
            );
            span.in_scope(|| tracing::warn!(retry = 1_i64, "slow"));
            span.record("trace_id", "1-5759e988-bd862e3fe1be46a994272793");
            span.in_scope(|| tracing::error!(error = %"gone", "failed"));
            tracing::info!("outside");
        });
        assert_eq!(
            lines[0]["span"],
            json!({"request_id": "r-2", "name": "request"})
        );
        assert_eq!(lines[0]["retry"], 1);
        assert_eq!(
            lines[1]["span"],
            json!({
                "request_id": "r-2",
                "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
                "name": "request"
            })
        );
        assert_eq!(lines[1]["error"], "gone");
        assert!(lines[2].get("span").is_none());
    }

    #[test]
    fn a_span_s_fields_longer_than_the_stack_s_room_are_all_written() {
        let long = "é\"".repeat(Staged::CAPACITY);
        let lines = lines(|| {
            let span = tracing::info_span!("request", request_id = "r-4", long = long.as_str());
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(
            lines[0]["span"],
            json!({"request_id": "r-4", "long": long, "name": "request"})
        );
    }

    #[test]
    fn a_value_that_ignores_a_failed_write_still_reaches_the_span_whole() {
        struct Careless(String);
        impl fmt::Display for Careless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Both results ignored: after a write too long for the stack, a short one that
                // fitted would leave a hole in the value.
                let _ = f.write_str(&self.0);
                let _ = f.write_str("-end");
                Ok(())
            }
        }
        let long = "x".repeat(Staged::CAPACITY);
        let lines = lines(|| {
            let span = tracing::info_span!("request", value = %Careless(long.clone()));
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(lines[0]["span"]["value"], format!("{long}-end"));
    }

    #[test]
    fn a_value_that_fails_to_format_leaves_the_span_s_fields_as_they_were() {
        struct Failing;
        impl fmt::Display for Failing {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("half")?;
                Err(fmt::Error)
            }
        }
        let lines = lines(|| {
            let span =
                tracing::info_span!("request", request_id = "r-3", extra = tracing::field::Empty);
            span.record("extra", tracing::field::display(Failing));
            span.in_scope(|| tracing::info!("after"));
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]["span"],
            json!({"request_id": "r-3", "name": "request"})
        );
    }

    #[test]
    fn timestamps_are_the_utc_calendar_to_the_microsecond() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |millis: u64, micros: u64| {
            timestamp(UNIX_EPOCH + Duration::from_millis(millis) + Duration::from_micros(micros))
                .text()
                .to_owned()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_764_675_153_327, 995), "2025-12-02T11:32:33.327995Z");
        assert_eq!(at(951_782_400_000, 1), "2000-02-29T00:00:00.000001Z");
        // Every millisecond's calendar agrees with crm-domain's timestamps (themselves checked
        // against `core::fmt`), about every ten days from 1970 to 9999.
        let mut millis = 0_u64;
        while millis < 253_402_300_799_000 {
            let expected = crm_domain::Timestamp::from_unix_millis(i64::try_from(millis).unwrap())
                .unwrap()
                .to_string();
            let line = at(millis, 0);
            assert_eq!(line[..23], expected[..23], "{millis}");
            millis += 863_999_977;
        }
        assert_eq!(
            timestamp(UNIX_EPOCH - Duration::from_secs(1)).text(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn integers_are_written_in_full() {
        for value in [0, 7, 10, 99, 200, 65_535, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(Digits::new(value).text(), value.to_string());
        }
        let lines = lines(|| {
            tracing::info!(
                smallest = i64::MIN,
                largest = u64::MAX,
                zero = 0_i64,
                yes = true,
                no = false
            );
        });
        assert_eq!(lines[0]["smallest"], i64::MIN);
        assert_eq!(lines[0]["largest"], u64::MAX);
        assert_eq!(lines[0]["zero"], 0);
        assert_eq!(lines[0]["yes"], true);
        assert_eq!(lines[0]["no"], false);
    }

    #[test]
    fn every_value_is_escaped_as_json_and_floats_that_are_not_finite_are_null() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 é 😀 \u{1f}";
        let lines = lines(|| {
            tracing::info!(
                text = nasty,
                shown = %nasty,
                debugged = ?nasty,
                r#type = "raw",
                ratio = 0.5_f64,
                infinite = f64::INFINITY,
                not_a_number = f64::NAN,
                negative = -3_i64,
                "{nasty}"
            );
        });
        let line = &lines[0];
        assert_eq!(line["text"], nasty);
        assert_eq!(line["shown"], nasty);
        assert_eq!(line["debugged"], format!("{nasty:?}"));
        assert_eq!(line["message"], nasty);
        assert_eq!(line["type"], "raw");
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["infinite"], Value::Null);
        assert_eq!(line["not_a_number"], Value::Null);
        assert_eq!(line["negative"], -3);
    }
}
