//! The configuration of every `crm` binary and of an embedding service: every environment
//! variable `crm` reads, read once, here.
//!
//! [`Config::from_env`] takes one snapshot of the process environment and checks every value it uses, so
//! that a deployment with a typo fails at start with one line naming the variable instead of at
//! the first request. The parser reads from any list of pairs ([`Config::from_vars`]): tests
//! never touch the process environment.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `CRM_TABLE_NAME` | the DynamoDB table; absent or empty: the in-memory store (local mode only) |
//! | `AWS_REGION` (or `AWS_DEFAULT_REGION`) | the table's region; required with a table unless an endpoint is set |
//! | `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`) | another DynamoDB endpoint, such as DynamoDB Local |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | keys to sign with (Lambda sets them); absent: the AWS SDK's default chain (profiles, SSO, instance roles) |
//! | `CRM_DYNAMODB_TIMEOUT_MS` | the most one DynamoDB operation may take, retries included (10–60000, default 3000) |
//! | `CRM_BIND` | the local server's address (default `127.0.0.1:3000`) |
//! | `CRM_CORS_ORIGINS` | `*`, or comma-separated origins; absent: no CORS |
//! | `CRM_REQUEST_DEADLINE_MS` | the most one request may take (1–900000, default 5000); past it: 503 |
//! | `CRM_IDLE_TIMEOUT_MS` | the local server: how long a connection may go without a complete request head, idle between requests or sending one, before it is closed (1000–3600000, default 75000: above the 60 s idle timeout of a load balancer in front, which must be the one to close) |
//! | `CRM_COMPAT_LIST_CAP` | how many customers `GET /Customers` returns at most (1–100000, default 1000) |
//! | `CRM_WARM_UP` | `true`: open the DynamoDB connection during a Lambda cold start (default `false`) |
//! | `CRM_TOMBSTONE_DAYS` | how many days the change feed keeps the tombstone of a deleted customer (1–3650, default 30) |
//! | `CRM_DOCS` | `true`: serve the API docs page at `GET /docs` (default `true` outside Lambda in a build with the `docs-viewer` feature, which `crm-server` has and `crm-lambda` leaves out; `false` otherwise) |
//! | `CRM_METRICS` | where metrics go: `emf` (`CloudWatch` Embedded Metric Format lines on stdout; the default inside Lambda), `prometheus` (Prometheus text at `GET /metrics`; outside Lambda, in a build with the `prometheus` feature), `off` (the default outside Lambda) |
//! | `CRM_METRICS_NAMESPACE` | the `CloudWatch` namespace of the EMF metrics (default `crm`) |
//! | `AWS_LAMBDA_FUNCTION_NAME` | set by AWS Lambda: the `function` dimension of the EMF metrics |
//! | `RUST_LOG` | the log filter (default `info`) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the OTLP/HTTP URL spans are posted to, as is (`http://127.0.0.1:4318/v1/traces`); only in a build with crm-http's `otel` feature |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | the OTLP/HTTP base URL, to which `/v1/traces` is added, when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is absent; neither: no spans are exported |
//! | `OTEL_SERVICE_NAME` | the `service.name` of the exported spans (default `crm`) |
//! | `AWS_LAMBDA_RUNTIME_API` | set by AWS Lambda: running inside Lambda, where a table is required |
//!
//! Every variable whose name starts with `CRM_`, `AWS_` or `OTEL_`, and `RUST_LOG`, must be valid
//! UTF-8: the AWS SDK reads `AWS_*` variables of its own, the OpenTelemetry SDK `OTEL_*` ones, and
//! a value they cannot read would be silently ignored. Other variables are not `crm`'s business
//! and are never read.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(feature = "dynamodb")]
use crm_dynamo::DynamoSettings;
use http::HeaderValue;
use tracing_subscriber::EnvFilter;

/// The name the in-memory store answers to where a table name is expected (the `tableName` of the
/// `DynamoDBManager` envelope, the start-up line).
pub const MEMORY_TABLE_LABEL: &str = "customers";

/// Every variable this configuration reads (the AWS SDK may read more `AWS_*` variables of its own
/// when it falls back to its default credential chain).
pub const VARIABLES: &[&str] = &[
    "CRM_TABLE_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CRM_DYNAMODB_TIMEOUT_MS",
    "CRM_BIND",
    "CRM_CORS_ORIGINS",
    "CRM_REQUEST_DEADLINE_MS",
    "CRM_IDLE_TIMEOUT_MS",
    "CRM_COMPAT_LIST_CAP",
    "CRM_WARM_UP",
    "CRM_TOMBSTONE_DAYS",
    "CRM_DOCS",
    "CRM_METRICS",
    "CRM_METRICS_NAMESPACE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "AWS_LAMBDA_RUNTIME_API",
];

/// The region of a table reached through an endpoint (DynamoDB Local ignores it) when no region is
/// configured.
#[cfg(feature = "dynamodb")]
const ENDPOINT_REGION: &str = "us-east-1";

/// Which browser origins CORS allows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No CORS headers at all (`CRM_CORS_ORIGINS` absent or empty).
    #[default]
    Disabled,
    /// Any origin (`CRM_CORS_ORIGINS=*`).
    Any,
    /// Exactly these origins (`https://app.example.com,https://admin.example.com`).
    List(Vec<HeaderValue>),
}

/// Where the metrics go (`CRM_METRICS`); see [`crate::metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsExport {
    /// Nowhere: no recorder is installed, and each metric costs a few nanoseconds (the default
    /// outside Lambda).
    #[default]
    Off,
    /// `CloudWatch` Embedded Metric Format lines on stdout, flushed after every invocation (the
    /// default inside Lambda, and only there).
    Emf,
    /// Prometheus text at `GET /metrics` (outside Lambda, in a build with the `prometheus`
    /// feature).
    Prometheus,
}

/// Where the spans go: an OTLP/HTTP endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` added) and the service name the spans carry
/// (`OTEL_SERVICE_NAME`). Only a build with crm-http's `otel` feature accepts an endpoint; see
/// [`crate::telemetry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracesExport {
    endpoint: String,
    service_name: String,
}

impl TracesExport {
    /// The URL the spans are posted to, the signal path included
    /// (`http://127.0.0.1:4318/v1/traces`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The `service.name` resource attribute of every span (`OTEL_SERVICE_NAME`, default `crm`).
    pub fn service_name(&self) -> &str {
        &self.service_name
    }
}

/// A configuration value that is missing or invalid: one line, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}{} {message}", value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default())]
pub struct ConfigError {
    variable: String,
    value: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error about the variable as a whole (missing, not UTF-8, secret).
    fn new(variable: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            value: None,
            message: message.into(),
        }
    }

    /// An error about the value given, which the line repeats.
    fn value(variable: &str, value: &str, message: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            value: Some(value.to_owned()),
            message: message.into(),
        }
    }

    /// The environment variable at fault.
    pub fn variable(&self) -> &str {
        &self.variable
    }
}

/// Where customers are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The in-memory store: empty at start, gone at exit (no `CRM_TABLE_NAME`).
    #[default]
    Memory,
    /// A DynamoDB table (`CRM_TABLE_NAME` and the `AWS_*` variables).
    #[cfg(feature = "dynamodb")]
    DynamoDb(DynamoSettings),
}

/// The typed configuration, read once at start.
#[derive(Debug, Clone)]
pub struct Config {
    store: StoreConfig,
    in_lambda: bool,
    bind: SocketAddr,
    cors_origins: CorsOrigins,
    request_deadline: Duration,
    idle_timeout: Duration,
    compat_list_cap: usize,
    warm_up: bool,
    tombstone_retention: Duration,
    docs: bool,
    metrics: MetricsExport,
    metrics_namespace: String,
    function_name: Option<String>,
    log_filter: String,
    traces: Option<TracesExport>,
}

impl Config {
    /// The default local address.
    pub const DEFAULT_BIND: &str = "127.0.0.1:3000";
    /// The default per-request deadline.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
    /// The longest deadline accepted: Lambda's own maximum run time, 15 minutes.
    pub const MAX_DEADLINE_MS: u64 = 900_000;
    /// How many customers `GET /Customers` returns at most, by default.
    pub const DEFAULT_COMPAT_LIST_CAP: usize = 1000;
    /// The largest cap accepted for `GET /Customers`.
    pub const MAX_COMPAT_LIST_CAP: usize = 100_000;
    /// How many days the change feed keeps a tombstone, by default.
    pub const DEFAULT_TOMBSTONE_DAYS: u64 = 30;
    /// The most days accepted for `CRM_TOMBSTONE_DAYS`: ten years.
    pub const MAX_TOMBSTONE_DAYS: u64 = 3650;
    /// The `CloudWatch` namespace of the EMF metrics when `CRM_METRICS_NAMESPACE` is absent.
    pub const DEFAULT_METRICS_NAMESPACE: &str = "crm";
    /// The log filter when `RUST_LOG` is absent.
    pub const DEFAULT_LOG_FILTER: &str = "info";
    /// The `service.name` of the exported spans when `OTEL_SERVICE_NAME` is absent.
    pub const DEFAULT_SERVICE_NAME: &str = "crm";

    /// Reads the configuration from one snapshot of the process environment.
    ///
    /// # Errors
    /// The first variable that is invalid (a `CRM_*`, `AWS_*` or `RUST_LOG` variable that is not
    /// UTF-8 among them), or `CRM_TABLE_NAME` when running inside Lambda without it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_os_vars(std::env::vars_os())
    }

    /// Reads the configuration from `vars`, pairs of variable name and value as the operating
    /// system gives them; see [`Config::from_env`].
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_os_vars<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let mut utf8 = Vec::new();
        for (name, value) in vars {
            // A name that is not UTF-8 cannot be one of ours.
            let Some(name) = name.to_str() else { continue };
            if !is_ours(name) {
                continue;
            }
            match value.into_string() {
                Ok(value) => utf8.push((name.to_owned(), value)),
                Err(_) => return Err(ConfigError::new(name, "is not valid UTF-8")),
            }
        }
        Self::from_vars(utf8)
    }

    /// Reads the configuration from `vars`, pairs of variable name and value; names this
    /// configuration does not read are ignored.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |name: &str| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };

        let in_lambda = get("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.is_empty());
        let store = store(&get)?;
        if in_lambda && matches!(store, StoreConfig::Memory) {
            return Err(ConfigError::new(
                "CRM_TABLE_NAME",
                "is required inside AWS Lambda (AWS_LAMBDA_RUNTIME_API is set): the in-memory store is for local mode only",
            ));
        }
        let bind = get("CRM_BIND")
            .map_or(Ok(Self::DEFAULT_BIND), Ok)
            .and_then(|v| {
                v.trim().parse::<SocketAddr>().map_err(|_| {
                    ConfigError::value(
                        "CRM_BIND",
                        v,
                        "must be an IP address and port, such as 127.0.0.1:3000",
                    )
                })
            })?;
        let cors_origins = get("CRM_CORS_ORIGINS").map_or(Ok(CorsOrigins::Disabled), cors)?;
        let count = |name: &str, min: u64, max: u64| {
            get(name).map(|v| number(name, v, min, max)).transpose()
        };
        let flag = |name: &str| {
            get(name)
                .map(|v| boolean(name, v))
                .transpose()
                .map(Option::flatten)
        };
        let request_deadline = count("CRM_REQUEST_DEADLINE_MS", 1, Self::MAX_DEADLINE_MS)?
            .map_or(Self::DEFAULT_DEADLINE, Duration::from_millis);
        let idle_timeout = count("CRM_IDLE_TIMEOUT_MS", 1_000, 3_600_000)?.map_or(
            crate::server::Connections::DEFAULT_IDLE_TIMEOUT,
            Duration::from_millis,
        );
        let max_cap = Self::MAX_COMPAT_LIST_CAP as u64;
        let compat_list_cap = count("CRM_COMPAT_LIST_CAP", 1, max_cap)?
            .map_or(Self::DEFAULT_COMPAT_LIST_CAP, |n| {
                usize::try_from(n).unwrap_or(Self::MAX_COMPAT_LIST_CAP)
            });
        let warm_up = flag("CRM_WARM_UP")?.unwrap_or(false);
        let docs = flag("CRM_DOCS")?.unwrap_or(DOCS_VIEWER && !in_lambda);
        if docs && !DOCS_VIEWER {
            return Err(ConfigError::new(
                "CRM_DOCS",
                "asks for the API docs page, but this build has no docs viewer (crm-http's `docs-viewer` feature is off)",
            ));
        }
        let (metrics, metrics_namespace, function_name) = metrics_settings(&get, in_lambda)?;
        let tombstone_days = count("CRM_TOMBSTONE_DAYS", 1, Self::MAX_TOMBSTONE_DAYS)?
            .unwrap_or(Self::DEFAULT_TOMBSTONE_DAYS);
        let log_filter = get("RUST_LOG")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(Self::DEFAULT_LOG_FILTER)
            .to_owned();
        if let Err(e) = EnvFilter::builder().parse(&log_filter) {
            return Err(ConfigError::value(
                "RUST_LOG",
                &log_filter,
                format!("is not a valid tracing filter: {e}"),
            ));
        }
        let traces = traces(&get, OTEL)?;
        Ok(Self {
            store,
            in_lambda,
            bind,
            cors_origins,
            request_deadline,
            idle_timeout,
            compat_list_cap,
            warm_up,
            tombstone_retention: days(tombstone_days),
            docs,
            metrics,
            metrics_namespace,
            function_name,
            log_filter,
            traces,
        })
    }

    /// Where customers are stored.
    pub fn store(&self) -> &StoreConfig {
        &self.store
    }

    /// The DynamoDB table, or `None` for the in-memory store.
    pub fn table_name(&self) -> Option<&str> {
        match &self.store {
            StoreConfig::Memory => None,
            #[cfg(feature = "dynamodb")]
            StoreConfig::DynamoDb(settings) => Some(settings.table_name()),
        }
    }

    /// The table the `DynamoDBManager` envelope accepts as `tableName`: the DynamoDB table, or
    /// [`MEMORY_TABLE_LABEL`] for the in-memory store.
    pub fn table_label(&self) -> &str {
        self.table_name().unwrap_or(MEMORY_TABLE_LABEL)
    }

    /// Whether the DynamoDB connection is opened during a Lambda cold start's init phase, so that
    /// the first request does not pay for TCP and TLS set-up (`CRM_WARM_UP`, default false: the
    /// cold-start harness measured it slower to the first response).
    pub fn warm_up(&self) -> bool {
        self.warm_up
    }

    /// Whether `GET /docs` serves the API docs page, Swagger UI over `GET /openapi.json`
    /// (`CRM_DOCS`; by default on outside Lambda when the crate is built with its `docs-viewer`
    /// feature, off otherwise; never on without the feature).
    pub fn docs(&self) -> bool {
        self.docs
    }

    /// Where the metrics go (`CRM_METRICS`: EMF by default inside Lambda, off outside).
    pub fn metrics(&self) -> MetricsExport {
        self.metrics
    }

    /// The `CloudWatch` namespace of the EMF metrics (`CRM_METRICS_NAMESPACE`, default `crm`).
    pub fn metrics_namespace(&self) -> &str {
        &self.metrics_namespace
    }

    /// The Lambda function's name (`AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets), the `function`
    /// dimension of the EMF metrics.
    pub fn function_name(&self) -> Option<&str> {
        self.function_name.as_deref()
    }

    /// True when running inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` is set).
    pub fn in_lambda(&self) -> bool {
        self.in_lambda
    }

    /// Where the local server listens.
    pub fn bind(&self) -> SocketAddr {
        self.bind
    }

    /// The origins CORS allows.
    pub fn cors_origins(&self) -> &CorsOrigins {
        &self.cors_origins
    }

    /// How long one request may take before it is answered 503.
    pub fn request_deadline(&self) -> Duration {
        self.request_deadline
    }

    /// How long the local server lets a connection go without a complete request head
    /// (`CRM_IDLE_TIMEOUT_MS`).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How many customers `GET /Customers` returns at most.
    pub fn compat_list_cap(&self) -> usize {
        self.compat_list_cap
    }

    /// How long the change feed keeps the tombstone of a deleted customer (`CRM_TOMBSTONE_DAYS`,
    /// 30 days by default); [`store::connect`](crate::store::connect) gives it to the store.
    pub fn tombstone_retention(&self) -> Duration {
        self.tombstone_retention
    }

    /// The `tracing` filter (`RUST_LOG`, `info` by default); already checked. It is the user's
    /// filter as given: [`telemetry::subscriber`](crate::telemetry::subscriber) holds the runtime and
    /// AWS SDK crates at `info` on top of it, whatever it says, since below that they log request
    /// bodies.
    pub fn log_filter(&self) -> &str {
        &self.log_filter
    }

    /// Where the spans go, when an OTLP endpoint is configured (only a build with crm-http's
    /// `otel` feature accepts one); `None`: no span is exported, and nothing of OpenTelemetry is
    /// installed.
    pub fn traces(&self) -> Option<&TracesExport> {
        self.traces.as_ref()
    }
}

impl Default for Config {
    /// The configuration of an empty environment: local mode, in-memory store, every default.
    fn default() -> Self {
        Self {
            store: StoreConfig::Memory,
            in_lambda: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            cors_origins: CorsOrigins::Disabled,
            request_deadline: Self::DEFAULT_DEADLINE,
            idle_timeout: crate::server::Connections::DEFAULT_IDLE_TIMEOUT,
            compat_list_cap: Self::DEFAULT_COMPAT_LIST_CAP,
            warm_up: false,
            tombstone_retention: days(Self::DEFAULT_TOMBSTONE_DAYS),
            docs: DOCS_VIEWER,
            metrics: MetricsExport::Off,
            metrics_namespace: Self::DEFAULT_METRICS_NAMESPACE.to_owned(),
            function_name: None,
            log_filter: Self::DEFAULT_LOG_FILTER.to_owned(),
            traces: None,
        }
    }
}

/// Whether this build can serve the API docs page (crm-http's `docs-viewer` feature).
const DOCS_VIEWER: bool = cfg!(feature = "docs-viewer");

/// `CRM_METRICS` (checked against where the process runs), `CRM_METRICS_NAMESPACE` and
/// `AWS_LAMBDA_FUNCTION_NAME`.
fn metrics_settings<'v>(
    get: &impl Fn(&str) -> Option<&'v str>,
    in_lambda: bool,
) -> Result<(MetricsExport, String, Option<String>), ConfigError> {
    let metrics = get("CRM_METRICS").map_or(Ok(None), metrics_export)?;
    let metrics = match metrics {
        None if in_lambda => MetricsExport::Emf,
        None => MetricsExport::Off,
        Some(MetricsExport::Emf) if !in_lambda => {
            return Err(ConfigError::value(
                "CRM_METRICS",
                "emf",
                "is for AWS Lambda, whose log stream turns the lines into metrics; outside Lambda use prometheus or off",
            ));
        }
        Some(MetricsExport::Prometheus) if in_lambda => {
            return Err(ConfigError::value(
                "CRM_METRICS",
                "prometheus",
                "cannot be scraped inside AWS Lambda; use emf (the default there) or off",
            ));
        }
        Some(MetricsExport::Prometheus) if !PROMETHEUS => {
            return Err(ConfigError::value(
                "CRM_METRICS",
                "prometheus",
                "asks for GET /metrics, but this build has no Prometheus exporter (crm-http's `prometheus` feature is off)",
            ));
        }
        Some(export) => export,
    };
    let metrics_namespace = get("CRM_METRICS_NAMESPACE")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map_or(Ok(Config::DEFAULT_METRICS_NAMESPACE), namespace)?
        .to_owned();
    let function_name = get("AWS_LAMBDA_FUNCTION_NAME")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Ok((metrics, metrics_namespace, function_name))
}

/// Whether this build can serve Prometheus text at `GET /metrics` (crm-http's `prometheus` feature).
const PROMETHEUS: bool = cfg!(feature = "prometheus");

/// `CRM_METRICS`: `emf`, `prometheus`, `off`; empty is `None`, as absent.
fn metrics_export(v: &str) -> Result<Option<MetricsExport>, ConfigError> {
    match v.trim() {
        "emf" => Ok(Some(MetricsExport::Emf)),
        "prometheus" => Ok(Some(MetricsExport::Prometheus)),
        "off" => Ok(Some(MetricsExport::Off)),
        "" => Ok(None),
        _ => Err(ConfigError::value(
            "CRM_METRICS",
            v,
            "must be emf, prometheus or off",
        )),
    }
}

/// A `CloudWatch` namespace: 1–255 of letters, digits and `.-_/#: `, not starting with `AWS/`
/// (reserved for AWS's own).
fn namespace(v: &str) -> Result<&str, ConfigError> {
    let valid = (1..=255).contains(&v.len())
        && !v.starts_with("AWS/")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#: ".contains(&b));
    if valid {
        Ok(v)
    } else {
        Err(ConfigError::value(
            "CRM_METRICS_NAMESPACE",
            v,
            "must be 1 to 255 letters, digits and . - _ / # : or spaces, not starting with AWS/",
        ))
    }
}

/// A boolean variable: `true` or `1`, `false` or `0`; empty is `None`, as absent.
fn boolean(name: &str, v: &str) -> Result<Option<bool>, ConfigError> {
    match v.trim() {
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        "" => Ok(None),
        _ => Err(ConfigError::value(name, v, "must be true or false")),
    }
}

/// Whether `crm` (or the AWS or OpenTelemetry SDK under it) reads variables of this name.
fn is_ours(name: &str) -> bool {
    name.starts_with("CRM_")
        || name.starts_with("AWS_")
        || name.starts_with("OTEL_")
        || name == "RUST_LOG"
}

/// Whether this build can export spans (crm-http's `otel` feature).
const OTEL: bool = cfg!(feature = "otel");

/// The most bytes of `OTEL_SERVICE_NAME`.
const MAX_SERVICE_NAME: usize = 255;

/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (plus
/// `/v1/traces`), as the OpenTelemetry specification reads them for OTLP/HTTP, and
/// `OTEL_SERVICE_NAME`; `None` when neither endpoint is set (blank is unset). An endpoint is
/// refused unless the build `can_export` ([`OTEL`]; a parameter, so that both answers are tested
/// in any build).
fn traces<'v>(
    get: &impl Fn(&str) -> Option<&'v str>,
    can_export: bool,
) -> Result<Option<TracesExport>, ConfigError> {
    let set = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());
    let (variable, url) = match (
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        set("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url),
        (None, Some(url)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", url),
        (None, None) => return Ok(None),
    };
    if !can_export {
        return Err(ConfigError::new(
            variable,
            "asks for OpenTelemetry spans, but this build cannot export them (crm-http's `otel` feature is off)",
        ));
    }
    let endpoint = otlp_url(variable, url)?;
    let endpoint = if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    } else {
        endpoint
    };
    let service_name = match set("OTEL_SERVICE_NAME") {
        None => Config::DEFAULT_SERVICE_NAME.to_owned(),
        Some(name) if name.len() <= MAX_SERVICE_NAME && !name.chars().any(char::is_control) => {
            name.to_owned()
        }
        Some(name) => {
            return Err(ConfigError::value(
                "OTEL_SERVICE_NAME",
                name,
                format!("must be at most {MAX_SERVICE_NAME} bytes, without control characters"),
            ));
        }
    };
    Ok(Some(TracesExport {
        endpoint,
        service_name,
    }))
}

/// An OTLP/HTTP endpoint: an `http` or `https` URL with a host, and no user name, password,
/// query or fragment. The error never repeats the value, which could hold a secret; credentials
/// go in `OTEL_EXPORTER_OTLP_HEADERS`, which the OpenTelemetry SDK reads itself.
fn otlp_url(variable: &str, url: &str) -> Result<String, ConfigError> {
    let rule = "must be an http:// or https:// URL with a host and no user, query or fragment, such as http://127.0.0.1:4318";
    let uri: http::Uri = url.parse().map_err(|_| ConfigError::new(variable, rule))?;
    let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri
            .authority()
            .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
        && uri.query().is_none()
        && !url.contains('#');
    if well_formed {
        Ok(url.to_owned())
    } else {
        Err(ConfigError::new(variable, rule))
    }
}

/// The store: DynamoDB when `CRM_TABLE_NAME` is set (and not empty), else memory.
fn store<'v>(get: &impl Fn(&str) -> Option<&'v str>) -> Result<StoreConfig, ConfigError> {
    // Blank means unset for these: a template that passes an empty parameter means "none".
    let set = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());
    let Some(table) = set("CRM_TABLE_NAME") else {
        return Ok(StoreConfig::Memory);
    };
    #[cfg(not(feature = "dynamodb"))]
    {
        let _ = set;
        Err(ConfigError::value(
            "CRM_TABLE_NAME",
            table,
            "names a DynamoDB table, but this build has no DynamoDB store (crm-http's `dynamodb` feature is off)",
        ))
    }
    #[cfg(feature = "dynamodb")]
    {
        let region = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION"));
        let mut settings = DynamoSettings::new(table, region.unwrap_or(ENDPOINT_REGION))
            .map_err(|e| ConfigError::value("CRM_TABLE_NAME", table, e.to_string()))?;
        let endpoint = match set("AWS_ENDPOINT_URL_DYNAMODB")
            .map(|v| ("AWS_ENDPOINT_URL_DYNAMODB", v))
            .or_else(|| set("AWS_ENDPOINT_URL").map(|v| ("AWS_ENDPOINT_URL", v)))
        {
            Some((_, url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url)
            }
            // Not repeated in the error: a URL can carry credentials (`https://user:key@host`).
            Some((name, _)) => {
                return Err(ConfigError::new(name, "must be an http:// or https:// URL"));
            }
            None => None,
        };
        if region.is_none() && endpoint.is_none() {
            return Err(ConfigError::new(
                "AWS_REGION",
                "is not set; it is required when CRM_TABLE_NAME is set",
            ));
        }
        if let Some(endpoint) = endpoint {
            settings = settings.with_endpoint(endpoint);
        }
        if let Some(ms) = set("CRM_DYNAMODB_TIMEOUT_MS") {
            let ms = number("CRM_DYNAMODB_TIMEOUT_MS", ms, 10, 60_000)?;
            settings = settings.with_operation_timeout(Duration::from_millis(ms));
        }
        // The values of these are secrets: an error names the variable, never the value.
        match (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                let token = set("AWS_SESSION_TOKEN").map(str::to_owned);
                settings = settings.with_static_credentials(id, secret, token);
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "AWS_SECRET_ACCESS_KEY",
                    "is not set; it is required when AWS_ACCESS_KEY_ID is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "AWS_ACCESS_KEY_ID",
                    "is not set; it is required when AWS_SECRET_ACCESS_KEY is set",
                ));
            }
            (None, None) => {}
        }
        Ok(StoreConfig::DynamoDb(settings))
    }
}

/// `n` days.
const fn days(n: u64) -> Duration {
    Duration::from_hours(n * 24)
}

fn number(name: &str, v: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ConfigError::value(name, v, format!("must be an integer from {min} to {max}"))
        })
}

fn cors(v: &str) -> Result<CorsOrigins, ConfigError> {
    let entries: Vec<&str> = v.split(',').map(str::trim).collect();
    if entries.iter().all(|e| e.is_empty()) {
        return Ok(CorsOrigins::Disabled);
    }
    if entries == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    let mut origins = Vec::with_capacity(entries.len());
    for entry in entries {
        let invalid = |why: &str| {
            ConfigError::value(
                "CRM_CORS_ORIGINS",
                v,
                format!(
                    "holds {entry:?}, which {why}; give `*` alone or a comma-separated list of origins such as https://app.example.com"
                ),
            )
        };
        if entry == "*" {
            return Err(invalid("is only allowed alone"));
        }
        let uri: http::Uri = entry.parse().map_err(|_| invalid("is not a URL"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let bare = uri.authority().is_some()
            && uri
                .path_and_query()
                .is_none_or(|p| matches!(p.as_str(), "" | "/"))
            && !entry.ends_with('/');
        if !scheme_ok || !bare {
            return Err(invalid(
                "is not an origin (http or https scheme, host, optional port; no path or trailing slash)",
            ));
        }
        origins.push(
            HeaderValue::from_str(entry).map_err(|_| invalid("is not a valid header value"))?,
        );
    }
    Ok(CorsOrigins::List(origins))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().copied())
    }

    fn fails_on(vars: &[(&str, &str)]) -> String {
        config(vars).unwrap_err().variable().to_owned()
    }

    #[cfg(feature = "dynamodb")]
    fn dynamo(vars: &[(&str, &str)]) -> DynamoSettings {
        match config(vars).unwrap().store() {
            StoreConfig::DynamoDb(settings) => settings.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_environment_is_local_mode_with_every_default() {
        let c = config(&[]).unwrap();
        assert_eq!(c.table_name(), None);
        assert_eq!(c.table_label(), MEMORY_TABLE_LABEL);
        assert!(!c.in_lambda());
        assert_eq!(c.bind().to_string(), "127.0.0.1:3000");
        assert_eq!(c.cors_origins(), &CorsOrigins::Disabled);
        assert_eq!(c.request_deadline(), Duration::from_secs(5));
        assert_eq!(c.idle_timeout(), Duration::from_secs(75));
        assert_eq!(c.compat_list_cap(), 1000);
        assert_eq!(c.tombstone_retention(), Duration::from_hours(30 * 24));
        assert_eq!(c.log_filter(), "info");
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("CRM_TABLE_NAME", "crm-customers"),
            ("AWS_REGION", "eu-west-1"),
            ("CRM_DYNAMODB_TIMEOUT_MS", "750"),
            ("CRM_BIND", "0.0.0.0:8080"),
            (
                "CRM_CORS_ORIGINS",
                "https://a.example.com, http://localhost:5173",
            ),
            ("CRM_REQUEST_DEADLINE_MS", "250"),
            ("CRM_IDLE_TIMEOUT_MS", "2000"),
            ("CRM_COMPAT_LIST_CAP", "50"),
            ("CRM_TOMBSTONE_DAYS", "7"),
            ("RUST_LOG", "crm_http=debug,warn"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("CRM_WARM_UP", "true"),
        ])
        .unwrap();
        assert_eq!(c.table_name(), Some("crm-customers"));
        let StoreConfig::DynamoDb(settings) = c.store() else {
            panic!("{:?}", c.store());
        };
        assert_eq!(settings.region(), "eu-west-1");
        assert_eq!(settings.operation_timeout(), Duration::from_millis(750));
        assert!(c.warm_up());
        assert_eq!(c.table_label(), "crm-customers");
        assert!(c.in_lambda());
        assert_eq!(c.bind().port(), 8080);
        assert_eq!(
            c.cors_origins(),
            &CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example.com"),
                HeaderValue::from_static("http://localhost:5173")
            ])
        );
        assert_eq!(c.request_deadline(), Duration::from_millis(250));
        assert_eq!(c.idle_timeout(), Duration::from_secs(2));
        assert_eq!(c.compat_list_cap(), 50);
        assert_eq!(c.tombstone_retention(), Duration::from_hours(7 * 24));
        assert_eq!(c.log_filter(), "crm_http=debug,warn");
    }

    #[test]
    fn inside_lambda_a_table_is_required() {
        assert_eq!(
            fails_on(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]),
            "CRM_TABLE_NAME"
        );
        assert_eq!(
            fails_on(&[("AWS_LAMBDA_RUNTIME_API", "x"), ("CRM_TABLE_NAME", "")]),
            "CRM_TABLE_NAME"
        );
    }

    #[test]
    fn an_empty_table_name_means_the_memory_store_locally() {
        assert_eq!(
            config(&[("CRM_TABLE_NAME", "")]).unwrap().table_name(),
            None
        );
    }

    #[test]
    fn invalid_values_fail_naming_their_variable() {
        assert_eq!(fails_on(&[("CRM_TABLE_NAME", "a b")]), "CRM_TABLE_NAME");
        assert_eq!(fails_on(&[("CRM_TABLE_NAME", "ab")]), "CRM_TABLE_NAME");
        assert_eq!(fails_on(&[("CRM_BIND", "localhost")]), "CRM_BIND");
        assert_eq!(fails_on(&[("CRM_BIND", "127.0.0.1")]), "CRM_BIND");
        for bad in ["0", "900001", "-1", "5s", ""] {
            assert_eq!(
                fails_on(&[("CRM_REQUEST_DEADLINE_MS", bad)]),
                "CRM_REQUEST_DEADLINE_MS",
                "{bad}"
            );
        }
        for bad in ["999", "3600001", "soon"] {
            assert_eq!(
                fails_on(&[("CRM_IDLE_TIMEOUT_MS", bad)]),
                "CRM_IDLE_TIMEOUT_MS",
                "{bad}"
            );
        }
        for bad in ["0", "100001", "many"] {
            assert_eq!(
                fails_on(&[("CRM_COMPAT_LIST_CAP", bad)]),
                "CRM_COMPAT_LIST_CAP"
            );
        }
        assert_eq!(fails_on(&[("RUST_LOG", "crm=lots[")]), "RUST_LOG");
        for bad in ["0", "3651", "-1", "30d", "1.5", ""] {
            assert_eq!(
                fails_on(&[("CRM_TOMBSTONE_DAYS", bad)]),
                "CRM_TOMBSTONE_DAYS",
                "{bad}"
            );
        }
    }

    #[test]
    fn tombstones_are_kept_from_one_day_to_ten_years() {
        for (value, days) in [("1", 1), (" 90 ", 90), ("3650", 3650)] {
            assert_eq!(
                config(&[("CRM_TOMBSTONE_DAYS", value)])
                    .unwrap()
                    .tombstone_retention(),
                Duration::from_hours(days * 24),
                "{value}"
            );
        }
        assert_eq!(
            config(&[("CRM_TOMBSTONE_DAYS", "0")])
                .unwrap_err()
                .to_string(),
            "invalid configuration: CRM_TOMBSTONE_DAYS=\"0\" must be an integer from 1 to 3650"
        );
    }

    #[test]
    fn cors_takes_a_star_alone_or_bare_origins() {
        assert_eq!(
            config(&[("CRM_CORS_ORIGINS", "*")]).unwrap().cors_origins(),
            &CorsOrigins::Any
        );
        assert_eq!(
            config(&[("CRM_CORS_ORIGINS", " ")]).unwrap().cors_origins(),
            &CorsOrigins::Disabled
        );
        for bad in [
            "*,https://a.example.com",
            "https://a.example.com/",
            "https://a.example.com/app",
            "a.example.com",
            "ftp://a.example.com",
            "https://a.example.com,,https://b.example.com",
        ] {
            assert_eq!(
                fails_on(&[("CRM_CORS_ORIGINS", bad)]),
                "CRM_CORS_ORIGINS",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_error_is_one_line_naming_the_variable_and_the_rule() {
        let e = config(&[("CRM_REQUEST_DEADLINE_MS", "soon")]).unwrap_err();
        let line = e.to_string();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            "invalid configuration: CRM_REQUEST_DEADLINE_MS=\"soon\" must be an integer from 1 to 900000"
        );
    }

    #[test]
    fn the_init_warm_up_is_off_unless_asked_for() {
        assert!(!config(&[]).unwrap().warm_up());
        assert!(config(&[("CRM_WARM_UP", "true")]).unwrap().warm_up());
        assert!(!config(&[("CRM_WARM_UP", "0")]).unwrap().warm_up());
        assert_eq!(fails_on(&[("CRM_WARM_UP", "yes")]), "CRM_WARM_UP");
    }

    #[test]
    fn the_docs_page_is_on_locally_off_in_lambda_and_never_without_its_viewer() {
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("CRM_TABLE_NAME", "customers"),
            ("AWS_REGION", "eu-west-1"),
        ];
        assert_eq!(fails_on(&[("CRM_DOCS", "yes")]), "CRM_DOCS");
        assert!(!config(&[("CRM_DOCS", "false")]).unwrap().docs());
        assert!(!config(&[("CRM_DOCS", " 0 ")]).unwrap().docs());
        if DOCS_VIEWER {
            assert!(config(&[]).unwrap().docs());
            assert!(config(&[("CRM_DOCS", "")]).unwrap().docs());
            assert!(Config::default().docs());
            if cfg!(feature = "dynamodb") {
                assert!(!config(&lambda).unwrap().docs());
                let mut asked = lambda.to_vec();
                asked.push(("CRM_DOCS", "true"));
                assert!(config(&asked).unwrap().docs());
            }
        } else {
            assert!(!config(&[]).unwrap().docs());
            assert!(!Config::default().docs());
            let error = config(&[("CRM_DOCS", "1")]).unwrap_err();
            assert_eq!(error.variable(), "CRM_DOCS");
            assert!(
                error.to_string().contains("`docs-viewer` feature"),
                "{error}"
            );
        }
    }

    #[test]
    fn no_table_name_means_the_memory_store_whatever_aws_says() {
        let c = config(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ])
        .unwrap();
        assert_eq!(c.store(), &StoreConfig::Memory);
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn a_table_needs_a_region_unless_an_endpoint_is_given() {
        assert_eq!(fails_on(&[("CRM_TABLE_NAME", "customers")]), "AWS_REGION");
        let local = dynamo(&[
            ("CRM_TABLE_NAME", "customers"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ]);
        assert_eq!(local.endpoint_url(), Some("http://127.0.0.1:8000"));
        assert_eq!(local.region(), ENDPOINT_REGION);
        let fallback = dynamo(&[
            ("CRM_TABLE_NAME", "customers"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "https://dynamodb.example.com"),
        ]);
        assert_eq!(fallback.region(), "eu-central-1");
        assert_eq!(
            fallback.endpoint_url(),
            Some("https://dynamodb.example.com")
        );
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn malformed_dynamodb_values_name_their_variable() {
        let table = ("CRM_TABLE_NAME", "customers");
        let region = ("AWS_REGION", "eu-west-1");
        assert_eq!(
            fails_on(&[table, ("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000")]),
            "AWS_ENDPOINT_URL_DYNAMODB"
        );
        assert_eq!(
            fails_on(&[table, ("AWS_ENDPOINT_URL", "localhost:8000")]),
            "AWS_ENDPOINT_URL"
        );
        let secret = config(&[
            table,
            ("AWS_ENDPOINT_URL_DYNAMODB", "ftp://user:s3cret@host"),
        ]);
        assert!(!secret.unwrap_err().to_string().contains("s3cret"));
        for bad in ["0", "9", "60001", "soon"] {
            assert_eq!(
                fails_on(&[table, region, ("CRM_DYNAMODB_TIMEOUT_MS", bad)]),
                "CRM_DYNAMODB_TIMEOUT_MS",
                "{bad}"
            );
        }
        assert_eq!(
            dynamo(&[table, region]).operation_timeout(),
            DynamoSettings::DEFAULT_OPERATION_TIMEOUT
        );
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn keys_from_the_environment_are_used_whole_and_never_repeated_in_an_error() {
        let table = ("CRM_TABLE_NAME", "customers");
        let region = ("AWS_REGION", "eu-west-1");
        let both = dynamo(&[
            table,
            region,
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
        ]);
        assert_eq!(
            both,
            DynamoSettings::new("customers", "eu-west-1")
                .unwrap()
                .with_static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI", None)
        );
        let half =
            config(&[table, region, ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")]).unwrap_err();
        assert_eq!(half.variable(), "AWS_ACCESS_KEY_ID");
        assert!(!half.to_string().contains("wJalrXUtnFEMI"), "{half}");
        assert_eq!(
            fails_on(&[table, region, ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]),
            "AWS_SECRET_ACCESS_KEY"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_one_line_naming_its_variable_never_a_panic() {
        use std::os::unix::ffi::OsStringExt as _;
        let not_utf8 = || OsString::from_vec(vec![0x66, 0x6f, 0xff, 0x6f]);
        for name in ["CRM_BIND", "AWS_PROFILE", "RUST_LOG", "CRM_SOMETHING_NEW"] {
            let error = Config::from_os_vars([(OsString::from(name), not_utf8())]).unwrap_err();
            assert_eq!(error.variable(), name);
            assert_eq!(
                error.to_string(),
                format!("invalid configuration: {name} is not valid UTF-8")
            );
        }
        // Variables that are not ours, or whose names are not UTF-8, are none of our business.
        let config = Config::from_os_vars([
            (OsString::from("LS_COLORS"), not_utf8()),
            (not_utf8(), not_utf8()),
            (OsString::from("CRM_BIND"), OsString::from("0.0.0.0:4000")),
        ])
        .unwrap();
        assert_eq!(config.bind().port(), 4000);
    }

    #[cfg(not(feature = "dynamodb"))]
    #[test]
    fn without_the_dynamodb_feature_a_table_name_is_refused_in_one_line() {
        let error = config(&[("CRM_TABLE_NAME", "customers")]).unwrap_err();
        assert_eq!(error.variable(), "CRM_TABLE_NAME");
        assert!(error.to_string().contains("`dynamodb` feature"), "{error}");
    }

    #[test]
    fn metrics_are_emf_in_lambda_off_locally_and_prometheus_only_when_asked_for() {
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("CRM_TABLE_NAME", "customers"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "crm-http-fn"),
        ];
        assert_eq!(config(&[]).unwrap().metrics(), MetricsExport::Off);
        assert_eq!(Config::default().metrics(), MetricsExport::Off);
        assert_eq!(config(&[]).unwrap().metrics_namespace(), "crm");
        assert_eq!(
            config(&[("CRM_METRICS", " off ")]).unwrap().metrics(),
            MetricsExport::Off
        );
        assert_eq!(fails_on(&[("CRM_METRICS", "statsd")]), "CRM_METRICS");
        assert_eq!(fails_on(&[("CRM_METRICS", "emf")]), "CRM_METRICS");
        if PROMETHEUS {
            assert_eq!(
                config(&[("CRM_METRICS", "prometheus")]).unwrap().metrics(),
                MetricsExport::Prometheus
            );
        } else {
            let error = config(&[("CRM_METRICS", "prometheus")]).unwrap_err();
            assert!(
                error.to_string().contains("`prometheus` feature"),
                "{error}"
            );
        }
        if cfg!(feature = "dynamodb") {
            let c = config(&lambda).unwrap();
            assert_eq!(c.metrics(), MetricsExport::Emf);
            assert_eq!(c.function_name(), Some("crm-http-fn"));
            let mut off = lambda.to_vec();
            off.push(("CRM_METRICS", "off"));
            assert_eq!(config(&off).unwrap().metrics(), MetricsExport::Off);
            let mut prometheus = lambda.to_vec();
            prometheus.push(("CRM_METRICS", "prometheus"));
            assert_eq!(fails_on(&prometheus), "CRM_METRICS");
        }
        assert_eq!(
            config(&[("CRM_METRICS_NAMESPACE", "Shop/crm-prod")])
                .unwrap()
                .metrics_namespace(),
            "Shop/crm-prod"
        );
        for bad in ["AWS/Lambda", "crm{x}", &"n".repeat(256)] {
            assert_eq!(
                fails_on(&[("CRM_METRICS_NAMESPACE", bad)]),
                "CRM_METRICS_NAMESPACE",
                "{bad}"
            );
        }
    }

    #[test]
    fn spans_are_exported_only_when_an_otlp_endpoint_is_set_and_the_build_can() {
        assert_eq!(config(&[]).unwrap().traces(), None);
        assert_eq!(Config::default().traces(), None);
        // A service name alone, or blank endpoints, export nothing.
        let quiet = [
            ("OTEL_SERVICE_NAME", "shop"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ];
        assert_eq!(config(&quiet).unwrap().traces(), None);
        // A build without the feature refuses either endpoint, in one line.
        for variable in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            let get = |name: &str| (name == variable).then_some("http://127.0.0.1:4318");
            let error = traces(&get, false).unwrap_err();
            assert_eq!(error.variable(), variable);
            assert!(
                error.to_string().contains("`otel` feature is off"),
                "{error}"
            );
            assert_eq!(error.to_string().lines().count(), 1);
            assert_eq!(traces(&get, true).unwrap().unwrap().service_name(), "crm");
            if !OTEL {
                assert_eq!(fails_on(&[(variable, "http://127.0.0.1:4318")]), variable);
            }
        }
        if !OTEL {
            return;
        }
        let traces = |vars: &[(&str, &str)]| config(vars).unwrap().traces().cloned().unwrap();
        let base = traces(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]);
        assert_eq!(base.endpoint(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(base.service_name(), "crm");
        assert_eq!(
            traces(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://otel.example.com/otlp/"
            )])
            .endpoint(),
            "https://otel.example.com/otlp/v1/traces"
        );
        // The signal's own variable wins, and is taken as is.
        let both = traces(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:9411/traces",
            ),
            ("OTEL_SERVICE_NAME", " crm-prod "),
        ]);
        assert_eq!(both.endpoint(), "http://collector:9411/traces");
        assert_eq!(both.service_name(), "crm-prod");
        for bad in [
            "127.0.0.1:4318",
            "localhost",
            "ftp://collector:4318",
            "http://",
            "http://user:secret@collector:4318",
            "http://collector:4318/v1/traces?key=secret",
            "http://collector:4318/#x",
            "http://coll ector:4318",
        ] {
            let error = config(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", bad)]).unwrap_err();
            assert_eq!(
                error.variable(),
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "{bad}"
            );
            assert!(!error.to_string().contains("secret"), "{error}");
            assert_eq!(error.to_string().lines().count(), 1);
        }
        assert_eq!(
            fails_on(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_SERVICE_NAME", "a\nb"),
            ]),
            "OTEL_SERVICE_NAME"
        );
    }

    #[test]
    fn the_last_value_of_a_repeated_variable_wins() {
        let c = config(&[("CRM_BIND", "127.0.0.1:1"), ("CRM_BIND", "127.0.0.1:2")]).unwrap();
        assert_eq!(c.bind().port(), 2);
    }
}
