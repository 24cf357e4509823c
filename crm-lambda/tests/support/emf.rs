//! `CloudWatch` Embedded Metric Format lines read as `CloudWatch` Logs reads them (the specification:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! a line that does not hold to it is a test failure, not a skipped line. A metric is filed once
//! per dimension set of its directive, and `CloudWatch` matches a set exactly, so a point here is
//! one metric under one set, and [`total`] and [`samples`] match a set exactly too.
//!
//! And the contract with the templates: `fixtures/emf-metrics.json` lists, per bootstrap, every
//! metric it writes with its unit and dimension sets; [`assert_as_contracted`] holds what a test
//! saw to it, and `crm-dynamo/tests/dynamodb/template.rs` holds every alarm and dashboard widget
//! on these metrics to it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The units `CloudWatch` accepts (`MetricDatum.Unit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric of one line under one of its dimension sets: where `CloudWatch` files it and the
/// values it gets.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) unit: Option<String>,
    /// Dimension name to value, for one dimension set of the directive.
    pub(crate) dimensions: BTreeMap<String, String>,
    pub(crate) values: Vec<f64>,
}

impl Point {
    /// The names of its dimensions, sorted.
    pub(crate) fn dimension_set(&self) -> Vec<String> {
        self.dimensions.keys().cloned().collect()
    }
}

/// Whether `line` is meant as EMF (`CloudWatch` looks for `_aws` at the root).
pub(crate) fn is_emf(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v.get("_aws").is_some())
}

/// The metrics of one EMF line; panics, naming the rule, when `CloudWatch` would reject it.
pub(crate) fn parse(line: &str) -> Vec<Point> {
    let root: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let root = root.as_object().expect("an object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    let timestamp = aws["Timestamp"].as_u64().expect("_aws.Timestamp in ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let now = u64::try_from(now).unwrap();
    assert!(
        timestamp.abs_diff(now) < 3_600_000,
        "timestamp {timestamp} is not now: {line}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("_aws.CloudWatchMetrics is an array");
    assert!(!directives.is_empty(), "{line}");
    let mut points = Vec::new();
    let mut declared = BTreeSet::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("a Namespace");
        assert!((1..=255).contains(&namespace.len()), "{line}");
        let sets = directive["Dimensions"]
            .as_array()
            .expect("Dimensions is an array");
        assert!(
            !sets.is_empty(),
            "a directive without a dimension set: {line}"
        );
        let mut filed_under = Vec::new();
        for set in sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "more than 30 dimensions: {line}");
            let mut dimensions = BTreeMap::new();
            for name in set {
                let name = name.as_str().expect("a dimension name is a string");
                let value = root
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("dimension {name} is no string member: {line}"));
                assert!((1..=1024).contains(&value.len()), "{line}");
                let before = dimensions.insert(name.to_owned(), value.to_owned());
                assert!(before.is_none(), "dimension {name} twice in a set: {line}");
            }
            assert!(
                !filed_under.contains(&dimensions),
                "a dimension set twice in a directive: {line}"
            );
            filed_under.push(dimensions);
        }
        let metrics = directive["Metrics"]
            .as_array()
            .expect("Metrics is an array");
        assert!((1..=100).contains(&metrics.len()), "{line}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric Name");
            assert!((1..=1024).contains(&name.len()), "{line}");
            // This exporter declares each metric once per line (two directives filing one
            // metric under one set would count its values twice).
            assert!(
                declared.insert(name.to_owned()),
                "{name} declared twice: {line}"
            );
            let unit = metric.get("Unit").map(|u| {
                let u = u.as_str().expect("a Unit is a string");
                assert!(UNITS.contains(&u), "unit {u} is not CloudWatch's: {line}");
                u.to_owned()
            });
            let values = match root.get(name) {
                Some(Value::Number(n)) => vec![n.as_f64().unwrap()],
                Some(Value::Array(values)) => {
                    assert!((1..=100).contains(&values.len()), "{line}");
                    values
                        .iter()
                        .map(|v| v.as_f64().expect("a number"))
                        .collect()
                }
                _ => panic!("metric {name} has no number at the root: {line}"),
            };
            for dimensions in &filed_under {
                points.push(Point {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    unit: unit.clone(),
                    dimensions: dimensions.clone(),
                    values: values.clone(),
                });
            }
        }
    }
    points
}

/// Every point of the EMF lines in `printed` (other lines, the logs, are left alone).
pub(crate) fn points(printed: &str) -> Vec<Point> {
    printed
        .lines()
        .filter(|line| is_emf(line))
        .flat_map(parse)
        .collect()
}

/// The sum of the values of `name` filed under exactly `dimensions` (as `CloudWatch` answers a
/// query for that metric).
pub(crate) fn total(points: &[Point], name: &str, dimensions: &[(&str, &str)]) -> f64 {
    matching(points, name, dimensions)
        .flat_map(|p| p.values.iter())
        .sum()
}

/// How many values (samples) `name` got under exactly `dimensions`.
pub(crate) fn samples(points: &[Point], name: &str, dimensions: &[(&str, &str)]) -> usize {
    matching(points, name, dimensions)
        .map(|p| p.values.len())
        .sum()
}

/// The sum of the values of `name` filed under the dimension set `set` (any values).
pub(crate) fn total_under(points: &[Point], name: &str, set: &[&str]) -> f64 {
    under(points, name, set).flat_map(|p| p.values.iter()).sum()
}

/// How many values `name` got under the dimension set `set` (any values).
pub(crate) fn samples_under(points: &[Point], name: &str, set: &[&str]) -> usize {
    under(points, name, set).map(|p| p.values.len()).sum()
}

fn under<'p>(
    points: &'p [Point],
    name: &'p str,
    set: &'p [&'p str],
) -> impl Iterator<Item = &'p Point> {
    let mut set: Vec<&str> = set.to_vec();
    set.sort_unstable();
    points.iter().filter(move |p| {
        p.name == name
            && p.dimensions
                .keys()
                .map(String::as_str)
                .eq(set.iter().copied())
    })
}

/// Asserts that every coarser set of a metric holds what its full set holds, summed over the
/// dimensions it drops: the same values, grouped by the dimensions it keeps (a rollup is the same
/// measurements filed again, never others).
#[track_caller]
pub(crate) fn assert_rollups_agree(points: &[Point]) {
    let names: BTreeSet<&str> = points.iter().map(|p| p.name.as_str()).collect();
    for name in names {
        let of_name: Vec<&Point> = points.iter().filter(|p| p.name == name).collect();
        let full = of_name
            .iter()
            .map(|p| p.dimensions.len())
            .max()
            .unwrap_or(0);
        let sets: BTreeSet<Vec<String>> = of_name.iter().map(|p| p.dimension_set()).collect();
        for set in sets.iter().filter(|s| s.len() < full) {
            let grouped = |points: &mut dyn Iterator<Item = &&Point>| {
                let mut groups: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
                for p in points {
                    let key = set.iter().map(|d| p.dimensions[d].clone()).collect();
                    groups
                        .entry(key)
                        .or_default()
                        .extend(p.values.iter().map(|v| format!("{v:?}")));
                }
                for values in groups.values_mut() {
                    values.sort();
                }
                groups
            };
            let from_full = grouped(&mut of_name.iter().filter(|p| p.dimensions.len() == full));
            let rolled = grouped(&mut of_name.iter().filter(|p| p.dimension_set() == *set));
            assert_eq!(rolled, from_full, "{name} under {set:?}");
        }
    }
}

fn matching<'p>(
    points: &'p [Point],
    name: &'p str,
    dimensions: &'p [(&'p str, &'p str)],
) -> impl Iterator<Item = &'p Point> {
    points.iter().filter(move |p| {
        p.name == name
            && p.dimensions.len() == dimensions.len()
            && dimensions
                .iter()
                .all(|(k, v)| p.dimensions.get(*k).map(String::as_str) == Some(*v))
    })
}

/// What a bootstrap writes, by the contract: each metric's unit and dimension sets (each sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contracted {
    pub(crate) unit: String,
    pub(crate) dimension_sets: BTreeSet<Vec<String>>,
}

/// The metrics `bootstrap` writes by `fixtures/emf-metrics.json`, by name.
pub(crate) fn contract(bootstrap: &str) -> BTreeMap<String, Contracted> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/emf-metrics.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let contract: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let names = contract["functions"][bootstrap]
        .as_array()
        .unwrap_or_else(|| panic!("{path} has no functions.{bootstrap}"));
    names
        .iter()
        .map(|name| {
            let name = name.as_str().expect("a metric name");
            let metric = &contract["metrics"][name];
            let sets = metric["dimension_sets"]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: metrics.{name}.dimension_sets"))
                .iter()
                .map(|set| {
                    let mut set: Vec<String> = set
                        .as_array()
                        .expect("a set is an array")
                        .iter()
                        .map(|d| d.as_str().expect("a dimension name").to_owned())
                        .collect();
                    set.sort();
                    set
                })
                .collect();
            let unit = metric["unit"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: metrics.{name}.unit"))
                .to_owned();
            (
                name.to_owned(),
                Contracted {
                    unit,
                    dimension_sets: sets,
                },
            )
        })
        .collect()
}

/// What `points` show of each metric: its unit and the dimension sets it was filed under.
pub(crate) fn filed(points: &[Point]) -> BTreeMap<String, Contracted> {
    let mut filed: BTreeMap<String, Contracted> = BTreeMap::new();
    for point in points {
        let entry = filed
            .entry(point.name.clone())
            .or_insert_with(|| Contracted {
                unit: point.unit.clone().unwrap_or_else(|| "None".to_owned()),
                dimension_sets: BTreeSet::new(),
            });
        assert_eq!(
            Some(&entry.unit),
            point.unit.as_ref(),
            "{} with two units",
            point.name
        );
        entry.dimension_sets.insert(point.dimension_set());
    }
    filed
}

/// Asserts that `points` file every metric of `bootstrap`'s contract, but those named in
/// `not_seen` (which the test cannot make it write), with the contract's unit and exactly its
/// dimension sets, and nothing else: so that what the templates' alarms and widgets read
/// (crm-dynamo/tests/dynamodb/template.rs holds them to the same file) is what the code writes.
#[track_caller]
pub(crate) fn assert_as_contracted(points: &[Point], bootstrap: &str, not_seen: &[&str]) {
    let mut expected = contract(bootstrap);
    for name in not_seen {
        assert!(
            expected.remove(*name).is_some(),
            "{name} is not in the contract of {bootstrap}"
        );
    }
    assert_eq!(
        filed(points),
        expected,
        "what {bootstrap} wrote is not what tests/fixtures/emf-metrics.json says (update both it and deploy/src/crm.yaml.in)"
    );
}
