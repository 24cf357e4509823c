//! The table layout, as one value that the repository, its table-creation helper and the
//! CloudFormation template are all checked against.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use crm_domain::RepositoryError;

use crate::error::classify;
use crate::item;

/// A global secondary index of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDefinition {
    /// The index name.
    pub name: &'static str,
    /// Its partition key (a string attribute).
    pub partition_key: &'static str,
    /// Its sort key (a string attribute), if it has one.
    pub sort_key: Option<&'static str>,
}

impl IndexDefinition {
    /// The attributes of its key schema: the partition key, then the sort key if any.
    pub fn key_attributes(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.partition_key).chain(self.sort_key)
    }
}

/// What the repository needs of its table: keys, indexes, and the IAM actions it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDefinition {
    /// The partition key (a string attribute); the table has no sort key.
    pub partition_key: &'static str,
    /// Global secondary indexes, all projecting every attribute.
    pub indexes: &'static [IndexDefinition],
    /// The number attribute (epoch seconds) after which DynamoDB's time to live removes an item:
    /// set on the tombstones of deleted customers.
    pub time_to_live_attribute: &'static str,
    /// What the table's stream records of each write (`NEW_AND_OLD_IMAGES`: the item before and
    /// after), which [`crate::stream`] maps to change events.
    pub stream_view_type: &'static str,
    /// The DynamoDB actions the repository calls on the table itself.
    pub table_actions: &'static [&'static str],
    /// The DynamoDB actions the repository calls on the indexes.
    pub index_actions: &'static [&'static str],
}

/// The customers table.
pub const TABLE: TableDefinition = TableDefinition {
    partition_key: "pk",
    indexes: &[
        IndexDefinition {
            name: EMAIL_INDEX,
            partition_key: "emailKey",
            sort_key: None,
        },
        // The listing indexes, in the order in which a table of the previous layout gets them
        // (one index per table update: see deploy/README.md, "Upgrading to the listing indexes").
        // Each is spread over `shard` (a few values, see `item::SHARDS`) so that no single index
        // partition takes every write; a listing reads the shards and merges them.
        IndexDefinition {
            name: CREATED_INDEX,
            partition_key: item::SHARD,
            sort_key: Some(item::CREATED_KEY),
        },
        IndexDefinition {
            name: UPDATED_INDEX,
            partition_key: item::SHARD,
            sort_key: Some(item::UPDATED_KEY),
        },
        IndexDefinition {
            name: NAME_INDEX,
            partition_key: item::SHARD,
            sort_key: Some(item::NAME_KEY),
        },
        IndexDefinition {
            name: FIRST_NAME_INDEX,
            partition_key: item::SHARD,
            sort_key: Some(item::FIRST_NAME_KEY),
        },
    ],
    time_to_live_attribute: item::EXPIRES_AT,
    // Change events need both images: the fields an update changed, and what a delete removed.
    stream_view_type: "NEW_AND_OLD_IMAGES",
    // TransactWriteItems is not an IAM action: a transaction needs the action of each item it holds.
    // No Scan: every read of the service is a GetItem or a Query on an index. The listing-key
    // backfill scans, but it is an operator's tool, run with the operator's credentials.
    table_actions: &[
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ],
    index_actions: &["dynamodb:Query"],
};

/// The index that finds a customer by normalized email.
pub const EMAIL_INDEX: &str = "byEmail";
/// The listing index in `createdAt` order.
pub const CREATED_INDEX: &str = "byCreated";
/// The listing index in `updatedAt` order, which also holds tombstones: the change feed.
pub const UPDATED_INDEX: &str = "byUpdated";
/// The listing index in name order (`last first`), also searched by name prefix.
pub const NAME_INDEX: &str = "byName";
/// The index searched by first-name prefix (`first last`).
pub const FIRST_NAME_INDEX: &str = "byFirstName";

impl TableDefinition {
    /// Creates a table of this layout named `name`, billed on demand, with its stream on, waits
    /// until it is active, and turns its time to live on.
    /// For local use and tests: in AWS the CloudFormation template creates the table.
    ///
    /// # Errors
    /// When DynamoDB refuses (the table exists, the endpoint is down).
    pub async fn create(&self, client: &Client, name: &str) -> Result<(), RepositoryError> {
        let mut attributes = Vec::new();
        for name in self.key_attributes() {
            attributes.push(string_attribute(name)?);
        }
        let mut indexes = Vec::new();
        for index in self.indexes {
            let mut key_schema = vec![hash_key(index.partition_key)?];
            if let Some(sort_key) = index.sort_key {
                key_schema.push(range_key(sort_key)?);
            }
            indexes.push(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(RepositoryError::unexpected)?,
            );
        }
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attributes))
            .key_schema(hash_key(self.partition_key)?)
            .set_global_secondary_indexes(Some(indexes))
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(self.stream_view_type))
                    .build()
                    .map_err(RepositoryError::unexpected)?,
            )
            .customize()
            .config_override(control_plane())
            .send()
            .await
            .map_err(|e| classify("CreateTable", &e))?;
        for _ in 0..100 {
            let table = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", &e))?;
            let active = table
                .table()
                .and_then(|t| t.table_status())
                .map(aws_sdk_dynamodb::types::TableStatus::as_str)
                == Some("ACTIVE");
            if active {
                return self.enable_time_to_live(client, name).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(RepositoryError::unavailable(
            "the table did not become active in 10 s",
        ))
    }
}

impl TableDefinition {
    /// Every attribute of a key schema, of the table or of an index, once each, in order of first
    /// use: what the table's attribute definitions must list, no more (DynamoDB refuses a
    /// definition that no key uses).
    pub fn key_attributes(&self) -> Vec<&'static str> {
        let mut attributes = vec![self.partition_key];
        for attribute in self
            .indexes
            .iter()
            .flat_map(IndexDefinition::key_attributes)
        {
            if !attributes.contains(&attribute) {
                attributes.push(attribute);
            }
        }
        attributes
    }

    async fn enable_time_to_live(
        &self,
        client: &Client,
        name: &str,
    ) -> Result<(), RepositoryError> {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(self.time_to_live_attribute)
            .enabled(true)
            .build()
            .map_err(RepositoryError::unexpected)?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(specification)
            .customize()
            .config_override(control_plane())
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", &e))?;
        Ok(())
    }
}

/// The timeouts of the table's own operations (`CreateTable`, `UpdateTimeToLive`): a minute, not
/// the repository's data-plane deadline. Creating a table with five indexes and a stream can take
/// DynamoDB Local seconds when it is busy; an attempt cut short by a timeout is retried, and the
/// retry of a `CreateTable` that went through is refused as `ResourceInUseException`, failing a
/// creation that succeeded.
fn control_plane() -> aws_sdk_dynamodb::config::Builder {
    let minute = std::time::Duration::from_mins(1);
    aws_sdk_dynamodb::config::Builder::new().timeout_config(
        aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .operation_timeout(minute)
            .operation_attempt_timeout(minute)
            .build(),
    )
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, RepositoryError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(RepositoryError::unexpected)
}

fn hash_key(name: &str) -> Result<KeySchemaElement, RepositoryError> {
    key_element(name, KeyType::Hash)
}

fn range_key(name: &str) -> Result<KeySchemaElement, RepositoryError> {
    key_element(name, KeyType::Range)
}

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, RepositoryError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(RepositoryError::unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_attribute_is_defined_once() {
        assert_eq!(
            TABLE.key_attributes(),
            [
                "pk",
                "emailKey",
                "shard",
                "createdKey",
                "updatedKey",
                "nameKey",
                "firstNameKey"
            ]
        );
    }

    #[test]
    fn every_listing_index_is_sharded_and_sorted() {
        for name in [CREATED_INDEX, UPDATED_INDEX, NAME_INDEX, FIRST_NAME_INDEX] {
            let index = TABLE.indexes.iter().find(|i| i.name == name);
            assert!(
                index.is_some_and(|i| i.partition_key == item::SHARD && i.sort_key.is_some()),
                "{name}: {index:?}"
            );
        }
    }

    #[test]
    fn the_service_never_scans() {
        assert!(!TABLE.table_actions.contains(&"dynamodb:Scan"));
        assert_eq!(TABLE.index_actions, ["dynamodb:Query"]);
    }
}
