//! The configuration of both binaries, read once at start from the environment.
//!
//! Every value is checked here, so that a deployment with a typo fails at start with one line naming
//! the variable, instead of at the first request. The parser reads from any map of variables
//! ([`Config::from_vars`]): tests never touch the process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderValue;
use tracing_subscriber::EnvFilter;

/// The name the in-memory store answers to where a table name is expected (the `tableName` of the
/// `DynamoDBManager` envelope, the start-up line).
pub const MEMORY_TABLE_LABEL: &str = "customers";

/// The variables this configuration reads.
const VARIABLES: &[&str] = &[
    "CRM_TABLE_NAME",
    "CRM_BIND",
    "CRM_CORS_ORIGINS",
    "CRM_REQUEST_DEADLINE_MS",
    "CRM_COMPAT_LIST_CAP",
    "CRM_WARM_UP",
    "RUST_LOG",
    "AWS_LAMBDA_RUNTIME_API",
];

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

/// A configuration value that is missing or invalid: one line, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}{} {message}", value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default())]
pub struct ConfigError {
    variable: &'static str,
    value: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error about the variable as a whole (missing, not UTF-8).
    fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            value: None,
            message: message.into(),
        }
    }

    /// An error about the value given.
    fn value(variable: &'static str, value: &str, message: impl Into<String>) -> Self {
        Self {
            variable,
            value: Some(value.to_owned()),
            message: message.into(),
        }
    }

    /// The environment variable at fault.
    pub fn variable(&self) -> &'static str {
        self.variable
    }
}

/// The typed configuration: see DESIGN.md "Configuration".
#[derive(Debug, Clone)]
pub struct Config {
    table_name: Option<String>,
    in_lambda: bool,
    bind: SocketAddr,
    cors_origins: CorsOrigins,
    request_deadline: Duration,
    compat_list_cap: usize,
    warm_up: bool,
    log_filter: String,
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
    /// The log filter when `RUST_LOG` is absent.
    pub const DEFAULT_LOG_FILTER: &str = "info";

    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// The first variable that is invalid, or `CRM_TABLE_NAME` when running inside Lambda without it.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = HashMap::new();
        for &name in VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                vars.insert(name.to_owned(), utf8(name, value)?);
            }
        }
        Self::from_vars(vars)
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
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |name: &str| vars.get(name).map(String::as_str);

        let in_lambda = get("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.is_empty());
        let table_name = get("CRM_TABLE_NAME")
            .filter(|v| !v.is_empty())
            .map(table_name)
            .transpose()?;
        if in_lambda && table_name.is_none() {
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
        let request_deadline = get("CRM_REQUEST_DEADLINE_MS")
            .map(|v| number("CRM_REQUEST_DEADLINE_MS", v, 1, Self::MAX_DEADLINE_MS))
            .transpose()?
            .map_or(Self::DEFAULT_DEADLINE, Duration::from_millis);
        let compat_list_cap = get("CRM_COMPAT_LIST_CAP")
            .map(|v| {
                number(
                    "CRM_COMPAT_LIST_CAP",
                    v,
                    1,
                    Self::MAX_COMPAT_LIST_CAP as u64,
                )
            })
            .transpose()?
            .map_or(Self::DEFAULT_COMPAT_LIST_CAP, |n| {
                usize::try_from(n).unwrap_or(Self::MAX_COMPAT_LIST_CAP)
            });
        let warm_up = match get("CRM_WARM_UP").map(str::trim) {
            Some("true" | "1") => true,
            None | Some("" | "false" | "0") => false,
            Some(other) => {
                return Err(ConfigError::value(
                    "CRM_WARM_UP",
                    other,
                    "must be true or false",
                ));
            }
        };
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
        Ok(Self {
            table_name,
            in_lambda,
            bind,
            cors_origins,
            request_deadline,
            compat_list_cap,
            warm_up,
            log_filter,
        })
    }

    /// The DynamoDB table, or `None` for the in-memory store.
    pub fn table_name(&self) -> Option<&str> {
        self.table_name.as_deref()
    }

    /// The table the `DynamoDBManager` envelope accepts as `tableName`: the DynamoDB table, or
    /// [`MEMORY_TABLE_LABEL`] for the in-memory store.
    pub fn table_label(&self) -> &str {
        self.table_name().unwrap_or(MEMORY_TABLE_LABEL)
    }

    /// Whether the DynamoDB connection is opened during a Lambda cold start's init phase, so that
    /// the first request does not pay for TCP and TLS set-up (`CRM_WARM_UP`, default false: the
    /// cold-start harness measured it slower to the first response, see BENCHMARKS.md).
    pub fn warm_up(&self) -> bool {
        self.warm_up
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

    /// How many customers `GET /Customers` returns at most.
    pub fn compat_list_cap(&self) -> usize {
        self.compat_list_cap
    }

    /// The `tracing` filter (`RUST_LOG`, `info` by default); already checked. It is the user's
    /// filter as given: [`telemetry::subscriber`](crate::telemetry::subscriber) holds the runtime and
    /// AWS SDK crates at `info` on top of it, whatever it says, since below that they log request
    /// bodies.
    pub fn log_filter(&self) -> &str {
        &self.log_filter
    }
}

impl Default for Config {
    /// The configuration of an empty environment: local mode, in-memory store, every default.
    fn default() -> Self {
        Self {
            table_name: None,
            in_lambda: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            cors_origins: CorsOrigins::Disabled,
            request_deadline: Self::DEFAULT_DEADLINE,
            compat_list_cap: Self::DEFAULT_COMPAT_LIST_CAP,
            warm_up: false,
            log_filter: Self::DEFAULT_LOG_FILTER.to_owned(),
        }
    }
}

fn utf8(name: &'static str, value: OsString) -> Result<String, ConfigError> {
    value
        .into_string()
        .map_err(|_| ConfigError::new(name, "is not valid UTF-8"))
}

/// A DynamoDB table name: 3–255 characters of `A-Z a-z 0-9 _ - .`.
fn table_name(v: &str) -> Result<String, ConfigError> {
    let valid = (3..=255).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(v.to_owned())
    } else {
        Err(ConfigError::value(
            "CRM_TABLE_NAME",
            v,
            "is not a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ - .)",
        ))
    }
}

fn number(name: &'static str, v: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
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

    fn fails_on(vars: &[(&str, &str)]) -> &'static str {
        config(vars).unwrap_err().variable()
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
        assert_eq!(c.compat_list_cap(), 1000);
        assert_eq!(c.log_filter(), "info");
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("CRM_TABLE_NAME", "crm-customers"),
            ("CRM_BIND", "0.0.0.0:8080"),
            (
                "CRM_CORS_ORIGINS",
                "https://a.example.com, http://localhost:5173",
            ),
            ("CRM_REQUEST_DEADLINE_MS", "250"),
            ("CRM_COMPAT_LIST_CAP", "50"),
            ("RUST_LOG", "crm_lambda=debug,warn"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ])
        .unwrap();
        assert_eq!(c.table_name(), Some("crm-customers"));
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
        assert_eq!(c.compat_list_cap(), 50);
        assert_eq!(c.log_filter(), "crm_lambda=debug,warn");
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
        for bad in ["0", "100001", "many"] {
            assert_eq!(
                fails_on(&[("CRM_COMPAT_LIST_CAP", bad)]),
                "CRM_COMPAT_LIST_CAP"
            );
        }
        assert_eq!(fails_on(&[("RUST_LOG", "crm=lots[")]), "RUST_LOG");
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
}
