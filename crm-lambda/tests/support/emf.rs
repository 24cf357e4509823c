//! `CloudWatch` Embedded Metric Format lines read as `CloudWatch` Logs reads them (the specification:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! a line that does not hold to it is a test failure, not a skipped line.

use std::collections::BTreeMap;

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

/// One metric of one line: where `CloudWatch` files it and the values it gets.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) unit: Option<String>,
    /// Dimension name to value, for the line's one dimension set.
    pub(crate) dimensions: BTreeMap<String, String>,
    pub(crate) values: Vec<f64>,
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
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("a Namespace");
        assert!((1..=255).contains(&namespace.len()), "{line}");
        let sets = directive["Dimensions"]
            .as_array()
            .expect("Dimensions is an array");
        // This exporter writes one dimension set per line.
        assert_eq!(sets.len(), 1, "{line}");
        let set = sets[0].as_array().expect("a dimension set is an array");
        assert!(set.len() <= 30, "more than 30 dimensions: {line}");
        let mut dimensions = BTreeMap::new();
        for name in set {
            let name = name.as_str().expect("a dimension name is a string");
            let value = root
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("dimension {name} is no string member: {line}"));
            assert!((1..=1024).contains(&value.len()), "{line}");
            dimensions.insert(name.to_owned(), value.to_owned());
        }
        let metrics = directive["Metrics"]
            .as_array()
            .expect("Metrics is an array");
        assert!((1..=100).contains(&metrics.len()), "{line}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric Name");
            assert!((1..=1024).contains(&name.len()), "{line}");
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
            points.push(Point {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                unit,
                dimensions: dimensions.clone(),
                values,
            });
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

/// The sum of the values of `name` whose dimensions include `dimensions`.
pub(crate) fn total(points: &[Point], name: &str, dimensions: &[(&str, &str)]) -> f64 {
    matching(points, name, dimensions)
        .flat_map(|p| p.values.iter())
        .sum()
}

/// How many values (samples) `name` got with `dimensions`.
pub(crate) fn samples(points: &[Point], name: &str, dimensions: &[(&str, &str)]) -> usize {
    matching(points, name, dimensions)
        .map(|p| p.values.len())
        .sum()
}

fn matching<'p>(
    points: &'p [Point],
    name: &'p str,
    dimensions: &'p [(&'p str, &'p str)],
) -> impl Iterator<Item = &'p Point> {
    points.iter().filter(move |p| {
        p.name == name
            && dimensions
                .iter()
                .all(|(k, v)| p.dimensions.get(*k).map(String::as_str) == Some(*v))
    })
}
