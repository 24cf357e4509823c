//! Where the repository finds its table, and the SDK client built from that.
//!
//! These settings read nothing from the environment: the application that embeds the repository
//! decides where they come from (`crm-http`'s configuration reads them from environment
//! variables, once, at start).

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};

/// A table name that DynamoDB would refuse: it must be 3–255 characters of `a-z A-Z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 3-255 characters of a-z, A-Z, 0-9, '_', '-' and '.'")]
pub struct InvalidTableName;

/// Everything the DynamoDB repository needs to reach its table.
#[derive(Clone, PartialEq, Eq)]
pub struct DynamoSettings {
    table_name: String,
    region: String,
    endpoint_url: Option<String>,
    operation_timeout: Duration,
    connect_timeout: Duration,
    max_attempts: u32,
    credentials: CredentialSource,
}

/// Where the SDK client gets its credentials.
#[derive(Clone, PartialEq, Eq)]
enum CredentialSource {
    /// The SDK's default chain: environment, profiles, SSO, container and instance metadata.
    DefaultChain,
    /// Keys the caller read (on Lambda: the function role's, from the environment).
    Static {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    /// Fixed dummy keys, which DynamoDB Local accepts.
    Local,
}

impl fmt::Debug for DynamoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = match &self.credentials {
            CredentialSource::DefaultChain => "the SDK's default chain",
            CredentialSource::Static { .. } => "static keys (redacted)",
            CredentialSource::Local => "DynamoDB Local's dummy keys",
        };
        f.debug_struct("DynamoSettings")
            .field("table_name", &self.table_name)
            .field("region", &self.region)
            .field(
                "endpoint_url",
                &self.endpoint_url.as_deref().map(without_userinfo),
            )
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("credentials", &credentials)
            .finish()
    }
}

impl DynamoSettings {
    /// The limit of one whole operation, retries included, unless set otherwise.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

    /// Settings for `table_name` in `region`, with the default timeouts (connecting may take 1 s, a
    /// whole operation with its retries [`DEFAULT_OPERATION_TIMEOUT`](Self::DEFAULT_OPERATION_TIMEOUT),
    /// and an operation is tried at most 3 times) and the SDK's default credential chain.
    ///
    /// # Errors
    /// When `table_name` is not a valid DynamoDB table name. This is the one place that rule is
    /// written.
    pub fn new(table_name: &str, region: &str) -> Result<Self, InvalidTableName> {
        let valid = (3..=255).contains(&table_name.len())
            && table_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !valid {
            return Err(InvalidTableName);
        }
        Ok(Self {
            table_name: table_name.to_owned(),
            region: region.to_owned(),
            endpoint_url: None,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            connect_timeout: Duration::from_secs(1),
            max_attempts: 3,
            credentials: CredentialSource::DefaultChain,
        })
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
        self.credentials = CredentialSource::Local;
        self
    }

    /// The same settings signing with these keys instead of the SDK's default chain.
    ///
    /// On Lambda the function role's keys are in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`; taking them from there costs nothing, where the default chain would
    /// first look for profiles and SSO. `Debug` never shows them.
    #[must_use]
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = CredentialSource::Static {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        };
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

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
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
            .retry_classifier(crate::error::TransactionConflictRetry)
            .interceptor(crate::metrics::CallMetrics)
            .credentials_provider(self.credentials_provider().await);
        if let Some(endpoint) = &self.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        if let Some(client) = self.lean_http_client() {
            builder = builder.http_client(client);
        }
        builder.build()
    }

    async fn credentials_provider(&self) -> SharedCredentialsProvider {
        let fixed = |id: &str, secret: &str, token: Option<String>| {
            SharedCredentialsProvider::new(Credentials::new(id, secret, token, None, "crm"))
        };
        match &self.credentials {
            CredentialSource::Local => fixed("local", "local", None),
            CredentialSource::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => fixed(access_key_id, secret_access_key, session_token.clone()),
            CredentialSource::DefaultChain => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.region.clone()))
                    .load()
                    .await;
                shared.credentials_provider().unwrap_or_else(|| {
                    SharedCredentialsProvider::new(
                        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                    )
                })
            }
        }
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

/// `url` without the `user:password@` it may carry, for `Debug`.
fn without_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://(redacted)@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The roots of Amazon Trust Services and the Starfield root that cross-signs them.
const AMAZON_ROOTS: &str = include_str!("../certs/amazon-roots.pem");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_dynamodbs_rule() {
        for good in ["abc", "crm-customers", "a.b_c-D9", &"x".repeat(255)] {
            assert!(DynamoSettings::new(good, "eu-west-1").is_ok(), "{good}");
        }
        for bad in ["", "ab", "a b", "crm/customers", "café", &"x".repeat(256)] {
            assert_eq!(
                DynamoSettings::new(bad, "eu-west-1"),
                Err(InvalidTableName),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_keys() {
        let settings = DynamoSettings::new("customers", "eu-west-1")
            .unwrap()
            .with_static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI", Some("token".to_owned()));
        let debug = format!("{settings:?}");
        for secret in ["AKIDEXAMPLE", "wJalrXUtnFEMI", "token"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("customers"), "{debug}");
        let with_userinfo = settings.with_endpoint("https://user:s3cret@dynamodb.example.com");
        let debug = format!("{with_userinfo:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("dynamodb.example.com"), "{debug}");
    }
}
