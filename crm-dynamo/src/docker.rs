//! Amazon's DynamoDB Local in a Docker container, started through testcontainers (feature
//! `testcontainers`): for people with a Docker engine who would rather not install DynamoDB Local
//! from npm. The project's scripts and CI use `scripts/dynamodb-local.sh` instead.

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, TestcontainersError};

/// The DynamoDB Local image used; pinned so that runs are repeatable.
pub const IMAGE: (&str, &str) = ("amazon/dynamodb-local", "2.6.1");

/// A running DynamoDB Local container; it is removed when this value is dropped.
pub struct DynamoDbLocalContainer {
    // Held for its `Drop`, which stops the container.
    _container: ContainerAsync<GenericImage>,
    endpoint: String,
}

impl std::fmt::Debug for DynamoDbLocalContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbLocalContainer")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DynamoDbLocalContainer {
    /// Starts DynamoDB Local (in memory) and waits until it is ready.
    ///
    /// # Errors
    /// When Docker is not reachable or the container does not start.
    pub async fn start() -> Result<Self, TestcontainersError> {
        let (name, tag) = IMAGE;
        let container = GenericImage::new(name, tag)
            .with_exposed_port(8000.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Initializing DynamoDB Local"))
            .start()
            .await?;
        let port = container.get_host_port_ipv4(8000.tcp()).await?;
        Ok(Self {
            _container: container,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The endpoint URL, for [`DynamoSettings::with_endpoint`](crate::DynamoSettings::with_endpoint).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}
