//! Where the repository finds its table: configuration read once from the environment, and the SDK
//! client built from it.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};

/// A configuration value that is missing or malformed. Its `Display` is one line naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct SettingsError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl SettingsError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Everything the DynamoDB repository needs to reach its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoSettings {
    table_name: String,
    region: String,
    endpoint_url: Option<String>,
    operation_timeout: Duration,
    connect_timeout: Duration,
    max_attempts: u32,
    local_credentials: bool,
}

/// The region used when only an endpoint is configured (DynamoDB Local ignores it).
const LOCAL_REGION: &str = "us-east-1";

impl DynamoSettings {
    /// Settings for `table_name` in `region`, with the default timeouts: connecting may take 1 s, a
    /// whole operation (with its retries) 3 s, and an operation is tried at most 3 times.
    ///
    /// # Errors
    /// When `table_name` is not a valid DynamoDB table name.
    pub fn new(table_name: &str, region: &str) -> Result<Self, SettingsError> {
        Ok(Self {
            table_name: parse_table_name(table_name)?,
            region: region.to_owned(),
            endpoint_url: None,
            operation_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            max_attempts: 3,
            local_credentials: false,
        })
    }

    /// Reads the settings from the process environment; see [`DynamoSettings::from_map`].
    ///
    /// # Errors
    /// As [`DynamoSettings::from_map`].
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&vars)
    }

    /// Reads the settings from environment variables; `None` when `CRM_TABLE_NAME` is not set (the
    /// caller then uses another store).
    ///
    /// - `CRM_TABLE_NAME`: the table.
    /// - `AWS_REGION` (or `AWS_DEFAULT_REGION`): required unless an endpoint is set.
    /// - `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`): e.g. DynamoDB Local.
    /// - `CRM_DYNAMODB_TIMEOUT_MS`: the most one operation may take, retries included (default 3000).
    ///
    /// # Errors
    /// When a variable is set but malformed, or the region is missing.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Option<Self>, SettingsError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let Some(table) = get("CRM_TABLE_NAME") else {
            return Ok(None);
        };
        let endpoint = get("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| get("AWS_ENDPOINT_URL"));
        let region = match (
            get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            endpoint,
        ) {
            (Some(region), _) => region,
            (None, Some(_)) => LOCAL_REGION,
            (None, None) => {
                return Err(SettingsError::new(
                    "AWS_REGION",
                    "is not set; it is required when CRM_TABLE_NAME is set",
                ));
            }
        };
        let mut settings = Self::new(table, region)?;
        if let Some(endpoint) = endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(SettingsError::new(
                    "AWS_ENDPOINT_URL_DYNAMODB",
                    "must be an http:// or https:// URL",
                ));
            }
            settings.endpoint_url = Some(endpoint.to_owned());
        }
        if let Some(ms) = get("CRM_DYNAMODB_TIMEOUT_MS") {
            let ms: u64 = ms
                .parse()
                .ok()
                .filter(|ms| (10..=60_000).contains(ms))
                .ok_or_else(|| {
                    SettingsError::new(
                        "CRM_DYNAMODB_TIMEOUT_MS",
                        "must be milliseconds from 10 to 60000",
                    )
                })?;
            settings.operation_timeout = Duration::from_millis(ms);
        }
        Ok(Some(settings))
    }

    /// The same settings pointed at `endpoint_url` (DynamoDB Local, a proxy).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint_url: impl Into<String>) -> Self {
        self.endpoint_url = Some(endpoint_url.into());
        self
    }

    /// The same settings signing with fixed dummy credentials, which DynamoDB Local accepts: for
    /// tests and local runs against it, whatever the environment holds.
    #[must_use]
    pub fn with_local_credentials(mut self) -> Self {
        self.local_credentials = true;
        self
    }

    /// The same settings with another limit for one whole operation, retries included.
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    /// The endpoint, when not the AWS default.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The most one operation may take, retries included.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The SDK configuration these settings describe.
    ///
    /// Credentials come from the `AWS_ACCESS_KEY_ID` family of variables when they are set, which is
    /// always the case on Lambda: reading three variables costs nothing, where the SDK's default
    /// chain would first look for profiles, SSO and instance metadata. Elsewhere (a laptop with
    /// `~/.aws`) the default chain is used.
    pub async fn sdk_config(&self) -> aws_sdk_dynamodb::Config {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.operation_timeout / 2)
            .build();
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .timeout_config(timeouts)
            // DynamoDB answers in milliseconds, and a request must fit its deadline (3 s by
            // default): back off from 50 ms (DynamoDB's own SDKs used 25–50 ms), not the
            // generic 1 s, which would spend a third of the deadline on one wait.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(Duration::from_millis(50)),
            )
            .retry_classifier(crate::error::TransactionConflictRetry);
        let credentials = if self.local_credentials {
            SharedCredentialsProvider::new(Credentials::new(
                "local",
                "local",
                None,
                None,
                "crm-local",
            ))
        } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
            SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            )
        } else {
            let shared = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(self.region.clone()))
                .load()
                .await;
            match shared.credentials_provider() {
                Some(provider) => provider,
                None => SharedCredentialsProvider::new(
                    aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                ),
            }
        };
        builder = builder.credentials_provider(credentials);
        if let Some(endpoint) = &self.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        if let Some(client) = self.lean_http_client() {
            builder = builder.http_client(client);
        }
        builder.build()
    }
}

impl DynamoSettings {
    /// An HTTP client that trusts only Amazon Trust Services' roots, for the AWS endpoint and for
    /// plain `http://` endpoints (DynamoDB Local, which needs no trust store at all); `None` for a
    /// custom `https://` endpoint, which keeps the platform's roots.
    ///
    /// Why: the SDK's default client reads and parses every certificate of the platform store when
    /// the client is built — about 5 ms of a cold start here (see BENCHMARKS.md) — to talk to one
    /// service whose certificates chain to these five roots.
    fn lean_http_client(&self) -> Option<aws_sdk_dynamodb::config::SharedHttpClient> {
        use aws_smithy_http_client::tls::{
            self, TlsContext, TrustStore, rustls_provider::CryptoMode,
        };
        if self
            .endpoint_url
            .as_deref()
            .is_some_and(|e| e.starts_with("https://"))
        {
            return None;
        }
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_ROOTS.as_bytes());
        let context = TlsContext::builder().with_trust_store(trust).build().ok()?;
        Some(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context)
                .build_https(),
        )
    }
}

/// The roots of Amazon Trust Services and the Starfield root that cross-signs them.
const AMAZON_ROOTS: &str = include_str!("../certs/amazon-roots.pem");

/// Checks DynamoDB's table naming rule: 3–255 characters of `a-z A-Z 0-9 _ - .`.
fn parse_table_name(name: &str) -> Result<String, SettingsError> {
    let valid = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(SettingsError::new(
            "CRM_TABLE_NAME",
            "must be 3-255 characters of a-z, A-Z, 0-9, '_', '-' and '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_table_name_means_no_dynamodb() {
        assert_eq!(
            DynamoSettings::from_map(&vars(&[("AWS_REGION", "eu-west-1")])),
            Ok(None)
        );
    }

    #[test]
    fn a_table_needs_a_region_unless_an_endpoint_is_given() {
        let err = DynamoSettings::from_map(&vars(&[("CRM_TABLE_NAME", "customers")])).unwrap_err();
        assert_eq!(err.variable, "AWS_REGION");
        let local = DynamoSettings::from_map(&vars(&[
            ("CRM_TABLE_NAME", "customers"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(local.endpoint_url(), Some("http://127.0.0.1:8000"));
        assert_eq!(local.region, LOCAL_REGION);
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (pairs, variable) in [
            (
                vec![("CRM_TABLE_NAME", "a b"), ("AWS_REGION", "x")],
                "CRM_TABLE_NAME",
            ),
            (
                vec![
                    ("CRM_TABLE_NAME", "customers"),
                    ("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000"),
                ],
                "AWS_ENDPOINT_URL_DYNAMODB",
            ),
            (
                vec![
                    ("CRM_TABLE_NAME", "customers"),
                    ("AWS_REGION", "x"),
                    ("CRM_DYNAMODB_TIMEOUT_MS", "0"),
                ],
                "CRM_DYNAMODB_TIMEOUT_MS",
            ),
        ] {
            let err = DynamoSettings::from_map(&vars(&pairs)).unwrap_err();
            assert_eq!(err.variable, variable);
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_timeout_is_read_in_milliseconds() {
        let s = DynamoSettings::from_map(&vars(&[
            ("CRM_TABLE_NAME", "customers"),
            ("AWS_REGION", "eu-west-1"),
            ("CRM_DYNAMODB_TIMEOUT_MS", "250"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.operation_timeout(), Duration::from_millis(250));
        assert_eq!(s.table_name(), "customers");
    }
}
