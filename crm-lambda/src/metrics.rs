//! The metrics of the Lambda functions as `CloudWatch` Embedded Metric Format (EMF): JSON lines in
//! the function's log stream, which `CloudWatch` Logs turns into metrics. No API call, no agent, no
//! extension: the bootstrap writes the lines to stdout, as it writes its logs.
//!
//! The recorder is this module's own, a `metrics::Recorder` of about a hundred lines: counters are
//! atomics, a histogram is the list of its values since the last flush, and a flush writes them
//! in lines of at most 100 values each (EMF's limit per metric and line), so that no value is ever
//! dropped however many a flush finds. (`metrics_cloudwatch_embedded`, used first, keeps at
//! most 100 values of a histogram between two flushes and drops the rest; a keyed batch of 100
//! customers reaches that in one invocation.)
//!
//! `crm-lambda-http` and `crm-lambda-envelope` [`install`] the recorder at start when
//! [`Config::metrics`] says `emf` (the default inside Lambda; `CRM_METRICS=off` turns it off), and
//! `crm-lambda-events` [`install_emf`]s it when its
//! [`EventsConfig::metrics`](crate::events::EventsConfig::metrics) says so (the same rule).
//! What is recorded, and under which names, is `crm_http::metrics`'s table, the events function's
//! ([`events`](crate::events), "Metrics"), plus [`COLD_STARTS`]; every metric gets the dimension
//! [`FUNCTION`] (the function's name, `AWS_LAMBDA_FUNCTION_NAME`) besides its labels, in the
//! namespace `CRM_METRICS_NAMESPACE` (default `crm`).
//!
//! # Dimension sets
//!
//! `CloudWatch` files a metric under each dimension set a line declares, and matches a set
//! exactly: an alarm on `function` and `status_class` sees nothing of a metric filed under
//! `function, route, method, status_class` only. So besides its full set (`function` and every
//! label) a metric is filed under the coarser sets of [`ROLLUPS`], the ones the stack's alarms and
//! dashboard read (`deploy/src/crm.yaml.in`):
//!
//! | metric | dimension sets |
//! | --- | --- |
//! | `http_requests` | `function, method, route, status_class`; `function, status_class` |
//! | `http_request_duration_ms` | `function, method, route, status_class`; `function, route` |
//! | `dynamodb_errors` | `function, operation`; `function` |
//! | every other metric | `function` and its labels |
//!
//! Each set is a metric of its own in `CloudWatch`, billed as one custom metric per combination
//! of dimension values that receives data: the rollups add at most 5 (`status_class`) + one per
//! route template (`route`) + 1 (`function`) custom metrics per function, where a set per metric
//! and label combination would add a multiple. (EMF bounds a set to 30 dimensions and lets a
//! directive declare several sets; a line carries one directive per distinct list of sets.)
//!
//! # When the lines are written
//!
//! [`serve`](crate::serve) calls [`flush`] after every invocation, before the runtime posts the
//! response: Lambda may freeze the sandbox as soon as the response is posted, and a line still in
//! memory would be written, late, at the next invocation, or never. The exporter aggregates
//! between flushes: counters are summed, histograms keep every value, and a flush writes one line
//! per label set that changed (more when a histogram holds over 100 values), then starts again from
//! zero. Where one sandbox serves several invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`,
//! Lambda Managed Instances), each invocation's flush writes whatever has been recorded so far,
//! its neighbours' numbers too; nothing is counted twice (a flush takes what it writes) and
//! nothing is left behind (every invocation ends with a flush). Each flush's lines go to stdout
//! in one write under its lock, so no log line lands inside a metrics line.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crm_http::{Config, MetricsExport};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// Counter: cold starts, counted once per sandbox, at its first invocation.
pub const COLD_STARTS: &str = "cold_starts";

/// The dimension every EMF metric carries: the Lambda function's name.
pub const FUNCTION: &str = "function";

/// The coarser dimension sets a metric is filed under besides its full one: the metric, and the
/// labels the set keeps ([`FUNCTION`] is in every set). A rollup applies to a series that has
/// every label it keeps and more; see the [module docs](self).
pub const ROLLUPS: &[(&str, &[&str])] = &[
    // The function's 5xx by its own count, whatever the route (the server-errors alarm).
    (
        crm_http::metrics::HTTP_REQUESTS,
        &[crm_http::metrics::STATUS_CLASS],
    ),
    // p99 latency per route, whatever the method and status (the dashboard).
    (
        crm_http::metrics::HTTP_REQUEST_DURATION,
        &[crm_http::metrics::ROUTE],
    ),
    // DynamoDB calls that failed, whatever the operation (the DynamoDB errors alarm).
    (crm_dynamo::metrics::ERRORS, &[]),
];

/// The most values of one metric in one EMF line.
const VALUES_PER_LINE: usize = 100;

/// The EMF recorder, once [`install`]ed.
static RECORDER: OnceLock<&'static Emf> = OnceLock::new();

/// Whether no invocation has started yet in this process.
static COLD: AtomicBool = AtomicBool::new(true);

/// The recorder could not be installed: another one already is.
#[derive(Debug)]
pub struct InstallError(String);

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot install the EMF metrics recorder: {}", self.0)
    }
}

impl std::error::Error for InstallError {}

/// Installs the EMF recorder when `config` asks for it ([`MetricsExport::Emf`]), with its
/// namespace and function name; returns whether it did.
///
/// # Errors
/// When a global `metrics` recorder is already installed.
pub fn install(config: &Config) -> Result<bool, InstallError> {
    if config.metrics() != MetricsExport::Emf {
        return Ok(false);
    }
    install_emf(config.metrics_namespace(), config.function_name())?;
    Ok(true)
}

/// Installs the EMF recorder as the process's global `metrics` recorder, in `namespace`, with
/// the dimension [`FUNCTION`] when `function` is given, and describes every metric (their units).
///
/// # Errors
/// When a global `metrics` recorder is already installed, or this was called before.
pub fn install_emf(namespace: &str, function: Option<&str>) -> Result<(), InstallError> {
    let recorder: &'static Emf = Box::leak(Box::new(Emf {
        namespace: namespace.to_owned(),
        function: function.map(str::to_owned),
        state: Mutex::default(),
    }));
    metrics::set_global_recorder(recorder).map_err(|e| InstallError(e.to_string()))?;
    RECORDER
        .set(recorder)
        .map_err(|_| InstallError("already installed".to_owned()))?;
    crm_http::metrics::describe();
    crate::events::describe_metrics();
    metrics::describe_counter!(
        COLD_STARTS,
        Unit::Count,
        "cold starts (first invocation of a sandbox)"
    );
    Ok(())
}

/// The dimension sets of `metric` in a series with these `labels` (sorted by name): the full set
/// first ([`FUNCTION`] when `function` is given, then every label), then the [`ROLLUPS`] that
/// apply, in their order.
fn dimension_sets(metric: &str, labels: &[&str], function: bool) -> Vec<Vec<String>> {
    let with_function = |kept: Vec<&str>| -> Vec<String> {
        function
            .then_some(FUNCTION)
            .into_iter()
            .chain(kept)
            .map(str::to_owned)
            .collect()
    };
    let mut sets = vec![with_function(labels.to_vec())];
    for (_, kept) in ROLLUPS.iter().filter(|(name, _)| *name == metric) {
        if kept.len() >= labels.len() || !kept.iter().all(|k| labels.contains(k)) {
            continue;
        }
        // In the series' label order, as the full set.
        let rollup = with_function(
            labels
                .iter()
                .copied()
                .filter(|label| kept.contains(label))
                .collect(),
        );
        if !sets.contains(&rollup) {
            sets.push(rollup);
        }
    }
    sets
}

/// Counts a cold start if this is the process's first invocation. [`serve`](crate::serve) calls it
/// as each invocation starts.
pub(crate) fn invocation_started() {
    if COLD.swap(false, Ordering::Relaxed) {
        metrics::counter!(COLD_STARTS).increment(1);
    }
}

/// Calls [`flush`] when dropped: at the end of an invocation however it ends (an answer, a panic
/// that unwinds, a future dropped).
pub(crate) struct FlushOnDrop;

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush();
    }
}

/// Writes what was recorded since the last flush to stdout, as EMF lines, in one write; nothing
/// when no EMF recorder is installed.
pub fn flush() {
    let mut lines = Vec::new();
    flush_into(&mut lines);
    if !lines.is_empty() {
        let _ = std::io::stdout().lock().write_all(&lines);
    }
}

/// Appends what was recorded since the last flush to `lines`, as EMF lines (one JSON object per
/// line); nothing when no EMF recorder is installed.
pub fn flush_into(lines: &mut Vec<u8>) {
    if let Some(recorder) = RECORDER.get() {
        recorder.flush_into(lines);
    }
}

/// The recorder: every metric by its label set, then by its name.
struct Emf {
    namespace: String,
    function: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The described units, by metric name.
    units: HashMap<String, Unit>,
    /// The metrics of each label set (labels sorted by name), by name.
    series: BTreeMap<Vec<(String, String)>, BTreeMap<String, Cell>>,
}

/// One metric of one label set.
#[derive(Clone)]
enum Cell {
    Counter(Arc<AtomicU64>),
    /// The bits of the last value.
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Values>),
}

/// A histogram's values since the last flush.
#[derive(Default)]
struct Values(Mutex<Vec<f64>>);

impl HistogramFn for Values {
    fn record(&self, value: f64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(value);
    }
}

impl Emf {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cell of `key`, made by `make` the first time.
    fn cell(&self, key: &Key, make: impl FnOnce() -> Cell) -> Cell {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        labels.sort();
        self.lock()
            .series
            .entry(labels)
            .or_default()
            .entry(key.name().to_owned())
            .or_insert_with(make)
            .clone()
    }

    fn describe(&self, key: &KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            self.lock().units.insert(key.as_str().to_owned(), unit);
        }
    }

    /// Appends one line per label set that has news (more when a histogram holds over
    /// [`VALUES_PER_LINE`] values), and starts each metric again from zero.
    fn flush_into(&self, lines: &mut Vec<u8>) {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let state = self.lock();
        for (labels, metrics) in &state.series {
            // Each metric's values, taken: a counter's sum, a gauge's value, a histogram's list.
            let mut taken: Vec<(&str, Vec<Value>)> = Vec::new();
            for (name, cell) in metrics {
                let values: Vec<Value> = match cell {
                    Cell::Counter(sum) => match sum.swap(0, Ordering::Relaxed) {
                        0 => continue,
                        n => vec![json!(n)],
                    },
                    Cell::Gauge(bits) => vec![json!(f64::from_bits(bits.load(Ordering::Relaxed)))],
                    Cell::Histogram(values) => std::mem::take(
                        &mut *values.0.lock().unwrap_or_else(PoisonError::into_inner),
                    )
                    .into_iter()
                    .map(|v| json!(v))
                    .collect(),
                };
                if !values.is_empty() {
                    taken.push((name, values));
                }
            }
            let lines_needed = taken
                .iter()
                .map(|(_, values)| values.len().div_ceil(VALUES_PER_LINE))
                .max()
                .unwrap_or(0);
            let keys: Vec<&str> = labels.iter().map(|(key, _)| key.as_str()).collect();
            for part in 0..lines_needed {
                let mut line = Map::new();
                let mut members = Vec::new();
                if let Some(function) = &self.function {
                    members.push((FUNCTION.to_owned(), json!(function)));
                }
                for (key, value) in labels {
                    members.push((key.clone(), json!(value)));
                }
                // One directive per list of dimension sets, with the metrics filed under it.
                let mut directives: BTreeMap<Vec<Vec<String>>, Vec<Value>> = BTreeMap::new();
                for (name, values) in &taken {
                    let chunk: Vec<Value> = values
                        .iter()
                        .skip(part * VALUES_PER_LINE)
                        .take(VALUES_PER_LINE)
                        .cloned()
                        .collect();
                    if chunk.is_empty() {
                        continue;
                    }
                    let mut metric = Map::new();
                    metric.insert("Name".to_owned(), json!(name));
                    if let Some(unit) = state.units.get(*name).and_then(|u| cloudwatch_unit(*u)) {
                        metric.insert("Unit".to_owned(), json!(unit));
                    }
                    directives
                        .entry(dimension_sets(name, &keys, self.function.is_some()))
                        .or_default()
                        .push(Value::Object(metric));
                    members.push(((*name).to_owned(), Value::Array(chunk)));
                }
                let directives: Vec<Value> = directives
                    .into_iter()
                    .map(|(sets, declared)| {
                        json!({
                            "Namespace": self.namespace,
                            "Dimensions": sets,
                            "Metrics": declared,
                        })
                    })
                    .collect();
                line.insert(
                    "_aws".to_owned(),
                    json!({
                        "Timestamp": timestamp,
                        "CloudWatchMetrics": directives,
                    }),
                );
                line.extend(members);
                if serde_json::to_writer(&mut *lines, &Value::Object(line)).is_ok() {
                    lines.push(b'\n');
                }
            }
        }
    }
}

/// `CloudWatch`'s name of `unit`, where it has one.
fn cloudwatch_unit(unit: Unit) -> Option<&'static str> {
    Some(match unit {
        Unit::Count => "Count",
        Unit::Percent => "Percent",
        Unit::Seconds => "Seconds",
        Unit::Milliseconds => "Milliseconds",
        Unit::Microseconds => "Microseconds",
        Unit::Bytes => "Bytes",
        Unit::Kibibytes => "Kilobytes",
        Unit::Mebibytes => "Megabytes",
        Unit::Gibibytes => "Gigabytes",
        Unit::Tebibytes => "Terabytes",
        Unit::BitsPerSecond => "Bits/Second",
        Unit::CountPerSecond => "Count/Second",
        _ => return None,
    })
}

impl Recorder for Emf {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(&key, unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(&key, unit);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(&key, unit);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.cell(key, || Cell::Counter(Arc::default())) {
            Cell::Counter(sum) => Counter::from_arc(sum),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.cell(key, || Cell::Gauge(Arc::default())) {
            Cell::Gauge(bits) => Gauge::from_arc(bits),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.cell(key, || Cell::Histogram(Arc::default())) {
            Cell::Histogram(values) => Histogram::from_arc(values),
            _ => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Emf {
        Emf {
            namespace: "crm-test".to_owned(),
            function: Some("fn".to_owned()),
            state: Mutex::default(),
        }
    }

    fn lines(emf: &Emf) -> Vec<Value> {
        let mut written = Vec::new();
        emf.flush_into(&mut written);
        String::from_utf8(written)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn no_value_is_dropped_however_many_a_flush_finds() {
        let emf = recorder();
        metrics::with_local_recorder(&emf, || {
            metrics::describe_histogram!("latency_ms", Unit::Milliseconds, "");
            for value in 0..250 {
                metrics::histogram!("latency_ms", "operation" => "PutItem")
                    .record(f64::from(value));
            }
            metrics::counter!("calls", "operation" => "PutItem").increment(250);
        });
        let written = lines(&emf);
        assert_eq!(written.len(), 3, "{written:?}");
        let counts: Vec<usize> = written
            .iter()
            .map(|line| line["latency_ms"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(counts, [100, 100, 50]);
        let values: Vec<f64> = written
            .iter()
            .flat_map(|line| line["latency_ms"].as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values, (0..250).map(f64::from).collect::<Vec<_>>());
        // The counter once, in the first line; every line declares what it carries.
        assert_eq!(written[0]["calls"], json!([250]));
        assert!(written[1].get("calls").is_none());
        for line in &written {
            let aws = &line["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(aws["Namespace"], "crm-test");
            assert_eq!(aws["Dimensions"], json!([["function", "operation"]]));
            assert_eq!(
                (&line["function"], &line["operation"]),
                (&json!("fn"), &json!("PutItem"))
            );
            for metric in aws["Metrics"].as_array().unwrap() {
                assert!(
                    line.get(metric["Name"].as_str().unwrap()).is_some(),
                    "{line}"
                );
            }
            assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        }
        let latency = written[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == "latency_ms")
            .unwrap()
            .clone();
        assert_eq!(latency["Unit"], "Milliseconds");
        // Taken: the next flush has nothing to say.
        assert!(lines(&emf).is_empty());
    }

    /// Each metric of `lines` and the dimension sets of the directive that declares it.
    fn filed(lines: &[Value]) -> BTreeMap<String, Value> {
        let mut filed = BTreeMap::new();
        for line in lines {
            for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                for metric in directive["Metrics"].as_array().unwrap() {
                    let name = metric["Name"].as_str().unwrap().to_owned();
                    let before = filed.insert(name, directive["Dimensions"].clone());
                    assert!(before.is_none(), "declared twice: {line}");
                }
            }
        }
        filed
    }

    #[test]
    fn rollups_file_a_metric_under_the_coarser_sets_the_alarms_read_too() {
        let emf = recorder();
        metrics::with_local_recorder(&emf, || {
            metrics::counter!("http_requests", "route" => "/customers/{id}", "method" => "GET",
                "status_class" => "5xx")
            .increment(2);
            metrics::histogram!("http_request_duration_ms", "route" => "/customers/{id}",
                "method" => "GET", "status_class" => "5xx")
            .record(12.0);
            metrics::counter!("dynamodb_errors", "operation" => "GetItem").increment(1);
            metrics::counter!("dynamodb_calls", "operation" => "GetItem").increment(3);
            metrics::counter!(COLD_STARTS).increment(1);
        });
        let written = lines(&emf);
        // One line per label set, whatever its directives.
        assert_eq!(written.len(), 3, "{written:?}");
        let full = json!(["function", "method", "route", "status_class"]);
        assert_eq!(
            filed(&written),
            BTreeMap::from([
                (
                    "http_requests".to_owned(),
                    json!([full, ["function", "status_class"]])
                ),
                (
                    "http_request_duration_ms".to_owned(),
                    json!([full, ["function", "route"]])
                ),
                (
                    "dynamodb_errors".to_owned(),
                    json!([["function", "operation"], ["function"]])
                ),
                (
                    "dynamodb_calls".to_owned(),
                    json!([["function", "operation"]])
                ),
                ("cold_starts".to_owned(), json!([["function"]])),
            ])
        );
        // Every dimension of every set is a string member of its line.
        for line in &written {
            for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                for set in directive["Dimensions"].as_array().unwrap() {
                    for key in set.as_array().unwrap() {
                        assert!(line[key.as_str().unwrap()].is_string(), "{line}");
                    }
                }
            }
        }
    }

    #[test]
    fn without_a_function_name_the_coarsest_set_is_empty_and_no_set_repeats() {
        assert_eq!(
            dimension_sets("dynamodb_errors", &["operation"], false),
            [vec!["operation".to_owned()], Vec::<String>::new()]
        );
        // No label to drop: the full set alone.
        assert_eq!(
            dimension_sets("dynamodb_errors", &[], true),
            [vec!["function".to_owned()]]
        );
        // A rollup needs every label it keeps.
        assert_eq!(
            dimension_sets("http_requests", &["operation"], true),
            [vec!["function".to_owned(), "operation".to_owned()]]
        );
    }
}
