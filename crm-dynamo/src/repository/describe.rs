//! The table as DynamoDB describes it, compared with the layout the code needs ([`TABLE`]):
//! what `crm table describe` prints, "matches the code" or what to fix.
//!
//! Three requests, sent together: `DescribeTable` (status, size, billing, keys, indexes, stream),
//! `DescribeTimeToLive` and `DescribeContinuousBackups` (point-in-time recovery, which the code
//! does not need and only reports). The comparison is [`TableDescription::differences`]: each way
//! the table departs from [`TABLE`] that makes the code fail or misbehave (a missing index, an
//! index keyed or projected otherwise, the time to live off or on another attribute, the stream
//! off or recording other images, keys of another type), and the indexes the code does not know
//! (which cost every write and serve no read). Statuses (an index still `CREATING`) and the
//! billing mode are reported, not compared: they are the deployment's to choose, or pass.
//!
//! An operator's tool, like the claims check and the backfill: it needs
//! `dynamodb:DescribeTable`, `dynamodb:DescribeTimeToLive` and (for point-in-time recovery only)
//! `dynamodb:DescribeContinuousBackups`, which the function roles of the templates are not
//! granted. Table metadata holds no customer data.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType, StreamSpecification};
use crm_domain::RepositoryError;

use super::DynamoCustomerRepository;
use crate::error::{DynamoFailure, classify};
use crate::table::{IndexDefinition, TABLE, TableDefinition};

/// What DynamoDB says of the table, and how it differs from [`TABLE`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableDescription {
    /// The table name.
    pub name: String,
    /// `ACTIVE`, `CREATING`, `UPDATING`, …
    pub status: String,
    /// How many items it holds, as DynamoDB last counted (it does about every six hours).
    pub approximate_item_count: Option<i64>,
    /// Its size in bytes, counted likewise.
    pub approximate_size_bytes: Option<i64>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`; `None` when DynamoDB does not say (a table provisioned
    /// since before billing modes existed).
    pub billing_mode: Option<String>,
    /// The table's key.
    pub key_schema: KeySchema,
    /// The type (`S`, `N`, `B`) of each attribute that a key of the table or of an index is made
    /// of.
    pub key_attribute_types: BTreeMap<String, String>,
    /// The global secondary indexes, in DynamoDB's order.
    pub indexes: Vec<IndexDescription>,
    /// The time to live.
    pub time_to_live: TimeToLiveDescription,
    /// The stream of changes.
    pub stream: StreamDescription,
    /// `ENABLED` or `DISABLED`; `None` when DynamoDB did not say (DynamoDB Local does not know the
    /// request; the credentials may lack `dynamodb:DescribeContinuousBackups`).
    pub point_in_time_recovery: Option<String>,
    /// How the table departs from [`TABLE`]: empty when it matches the code.
    pub differences: Vec<TableDifference>,
}

impl TableDescription {
    /// Whether the table has everything the code needs, as the code defines it.
    pub fn matches_code(&self) -> bool {
        self.differences.is_empty()
    }

    /// How this table departs from `definition`, in the order of its parts: the table's key and
    /// key types, each index of the definition, the indexes it does not know, the time to live,
    /// the stream. [`differences`](Self::differences) holds those from [`TABLE`].
    pub fn differences_from(&self, definition: &TableDefinition) -> Vec<TableDifference> {
        let mut differences = Vec::new();
        let table_key = KeySchema {
            partition_key: definition.partition_key.to_owned(),
            sort_key: None,
        };
        if self.key_schema != table_key {
            differences.push(TableDifference::TableKeySchema {
                expected: table_key,
                found: self.key_schema.clone(),
            });
        }
        for attribute in definition.key_attributes() {
            if let Some(found) = self.key_attribute_types.get(attribute)
                && found != "S"
            {
                differences.push(TableDifference::KeyAttributeType {
                    attribute: attribute.to_owned(),
                    found: found.clone(),
                });
            }
        }
        for expected in definition.indexes {
            let Some(index) = self.indexes.iter().find(|i| i.name == expected.name) else {
                differences.push(TableDifference::MissingIndex {
                    name: expected.name.to_owned(),
                });
                continue;
            };
            let key_schema = KeySchema::of_index(expected);
            if index.key_schema != key_schema {
                differences.push(TableDifference::IndexKeySchema {
                    name: index.name.clone(),
                    expected: key_schema,
                    found: index.key_schema.clone(),
                });
            }
            if index.projection != "ALL" {
                differences.push(TableDifference::IndexProjection {
                    name: index.name.clone(),
                    found: index.projection.clone(),
                });
            }
        }
        for index in &self.indexes {
            if !definition.indexes.iter().any(|i| i.name == index.name) {
                differences.push(TableDifference::UnknownIndex {
                    name: index.name.clone(),
                });
            }
        }
        let expected_ttl = definition.time_to_live_attribute;
        let ttl = &self.time_to_live;
        if !ttl.is_on() {
            differences.push(TableDifference::TimeToLiveOff {
                expected: expected_ttl.to_owned(),
                status: ttl.status.clone(),
            });
        } else if ttl.attribute.as_deref() != Some(expected_ttl) {
            differences.push(TableDifference::TimeToLiveAttribute {
                expected: expected_ttl.to_owned(),
                found: ttl.attribute.clone(),
            });
        }
        let expected_view = definition.stream_view_type;
        if !self.stream.enabled {
            differences.push(TableDifference::StreamOff {
                expected: expected_view.to_owned(),
            });
        } else if self.stream.view_type.as_deref() != Some(expected_view) {
            differences.push(TableDifference::StreamViewType {
                expected: expected_view.to_owned(),
                found: self.stream.view_type.clone(),
            });
        }
        differences
    }
}

impl fmt::Display for TableDescription {
    /// Several lines: the table, its key, each index, the time to live, the stream, point-in-time
    /// recovery, then "matches the code" or each difference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = |value: Option<&String>| value.map_or("unknown", String::as_str).to_owned();
        let count = |value: Option<i64>| value.map_or("unknown".to_owned(), |n| n.to_string());
        writeln!(
            f,
            "table {}: {}, about {} items, {} bytes, billing {}",
            self.name,
            self.status,
            count(self.approximate_item_count),
            count(self.approximate_size_bytes),
            unknown(self.billing_mode.as_ref())
        )?;
        writeln!(f, "key: {}", self.key_schema)?;
        for index in &self.indexes {
            writeln!(f, "{index}")?;
        }
        writeln!(f, "time to live: {}", self.time_to_live)?;
        writeln!(f, "stream: {}", self.stream)?;
        writeln!(
            f,
            "point-in-time recovery: {}",
            unknown(self.point_in_time_recovery.as_ref())
        )?;
        if self.matches_code() {
            f.write_str("matches the code")
        } else {
            f.write_str("differs from the code:")?;
            for difference in &self.differences {
                write!(f, "\n- {difference}")?;
            }
            Ok(())
        }
    }
}

/// The key of the table or of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// The partition (hash) key.
    pub partition_key: String,
    /// The sort (range) key, if any.
    pub sort_key: Option<String>,
}

impl KeySchema {
    fn of_index(index: &IndexDefinition) -> Self {
        Self {
            partition_key: index.partition_key.to_owned(),
            sort_key: index.sort_key.map(str::to_owned),
        }
    }

    fn of(elements: &[KeySchemaElement]) -> Self {
        let named = |key_type: &KeyType| {
            elements
                .iter()
                .find(|e| e.key_type() == key_type)
                .map(|e| e.attribute_name().to_owned())
        };
        Self {
            partition_key: named(&KeyType::Hash).unwrap_or_default(),
            sort_key: named(&KeyType::Range),
        }
    }
}

impl fmt::Display for KeySchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition key {}", self.partition_key)?;
        if let Some(sort_key) = &self.sort_key {
            write!(f, ", sort key {sort_key}")?;
        }
        Ok(())
    }
}

/// A global secondary index as DynamoDB describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexDescription {
    /// The index name.
    pub name: String,
    /// `ACTIVE`, `CREATING` (with `backfilling` while DynamoDB fills it), `UPDATING`, `DELETING`.
    pub status: String,
    /// Whether DynamoDB is still filling a new index with the items of the table.
    pub backfilling: bool,
    /// Its key.
    pub key_schema: KeySchema,
    /// What it projects: `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
    /// The attributes an `INCLUDE` projection adds to the keys.
    pub projected_attributes: Vec<String>,
    /// How many items it holds, as DynamoDB last counted.
    pub approximate_item_count: Option<i64>,
}

impl fmt::Display for IndexDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "index {}: {}", self.name, self.status)?;
        if self.backfilling {
            f.write_str(" (backfilling)")?;
        }
        write!(f, ", {}, projects {}", self.key_schema, self.projection)?;
        if !self.projected_attributes.is_empty() {
            write!(f, " ({})", self.projected_attributes.join(", "))?;
        }
        Ok(())
    }
}

/// The table's time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeToLiveDescription {
    /// `ENABLED`, `ENABLING`, `DISABLED` or `DISABLING`; `None` when DynamoDB did not say.
    pub status: Option<String>,
    /// The attribute it reads the time of expiry from.
    pub attribute: Option<String>,
}

impl TimeToLiveDescription {
    /// Whether it is on, or turning on.
    pub fn is_on(&self) -> bool {
        matches!(self.status.as_deref(), Some("ENABLED" | "ENABLING"))
    }
}

impl fmt::Display for TimeToLiveDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.as_deref().unwrap_or("unknown"))?;
        if let Some(attribute) = &self.attribute {
            write!(f, " on {attribute}")?;
        }
        Ok(())
    }
}

/// The table's stream of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamDescription {
    /// Whether the stream is on.
    pub enabled: bool,
    /// What it records of each write: `NEW_AND_OLD_IMAGES`, `NEW_IMAGE`, `OLD_IMAGE`,
    /// `KEYS_ONLY`.
    pub view_type: Option<String>,
    /// The ARN of the latest stream (a table whose stream was turned off keeps it for a day).
    pub arn: Option<String>,
}

impl fmt::Display for StreamDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return f.write_str("off");
        }
        f.write_str(self.view_type.as_deref().unwrap_or("on"))?;
        if let Some(arn) = &self.arn {
            write!(f, ", {arn}")?;
        }
        Ok(())
    }
}

/// One way the table departs from the code's definition; it prints as what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDifference {
    /// The table is keyed otherwise: the code cannot use it (a table's key never changes; make a
    /// new table).
    TableKeySchema {
        /// The code's key.
        expected: KeySchema,
        /// The table's.
        found: KeySchema,
    },
    /// An attribute of a key is not a string, which every key of the code is.
    KeyAttributeType {
        /// The attribute.
        attribute: String,
        /// Its type (`N`, `B`).
        found: String,
    },
    /// An index of the code is missing: the reads that query it fail.
    MissingIndex {
        /// The index.
        name: String,
    },
    /// An index is keyed otherwise than the code queries it.
    IndexKeySchema {
        /// The index.
        name: String,
        /// The code's key.
        expected: KeySchema,
        /// The index's.
        found: KeySchema,
    },
    /// An index projects less than every attribute, which the code reads customers from.
    IndexProjection {
        /// The index.
        name: String,
        /// What it projects.
        found: String,
    },
    /// An index the code does not know: it costs every write and serves no read.
    UnknownIndex {
        /// The index.
        name: String,
    },
    /// The time to live is off: the tombstones of deleted customers never go.
    TimeToLiveOff {
        /// The attribute it should read.
        expected: String,
        /// Its status, if DynamoDB said.
        status: Option<String>,
    },
    /// The time to live reads another attribute than the one tombstones carry.
    TimeToLiveAttribute {
        /// The attribute it should read.
        expected: String,
        /// The one it reads.
        found: Option<String>,
    },
    /// The stream is off: no change event is published.
    StreamOff {
        /// What it should record.
        expected: String,
    },
    /// The stream records other images than the change events need.
    StreamViewType {
        /// What it should record.
        expected: String,
        /// What it records.
        found: Option<String>,
    },
}

impl fmt::Display for TableDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_nothing = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".into());
        match self {
            Self::TableKeySchema { expected, found } => write!(
                f,
                "the table's key is {found}, not {expected} (a key never changes: make a new table)"
            ),
            Self::KeyAttributeType { attribute, found } => write!(
                f,
                "key attribute {attribute} is of type {found}, not S (string)"
            ),
            Self::MissingIndex { name } => write!(f, "index {name} is missing"),
            Self::IndexKeySchema {
                name,
                expected,
                found,
            } => write!(f, "index {name} has {found}, not {expected}"),
            Self::IndexProjection { name, found } => {
                write!(f, "index {name} projects {found}, not ALL")
            }
            Self::UnknownIndex { name } => {
                write!(
                    f,
                    "index {name} is not one of the code's (it serves no read)"
                )
            }
            Self::TimeToLiveOff { expected, status } => write!(
                f,
                "time to live is {}, not enabled on {expected}",
                or_nothing(status)
            ),
            Self::TimeToLiveAttribute { expected, found } => write!(
                f,
                "time to live reads {}, not {expected}",
                or_nothing(found)
            ),
            Self::StreamOff { expected } => write!(f, "the stream is off, not {expected}"),
            Self::StreamViewType { expected, found } => write!(
                f,
                "the stream records {}, not {expected}",
                or_nothing(found)
            ),
        }
    }
}

impl DynamoCustomerRepository {
    /// Describes this repository's table (its status, size, billing, keys, indexes, time to live,
    /// stream and point-in-time recovery) and lists how it departs from
    /// [`TABLE`](crate::TABLE); see [`TableDescription`].
    ///
    /// Three requests at once, within the repository's deadline: `DescribeTable`,
    /// `DescribeTimeToLive` and `DescribeContinuousBackups`. Needs `dynamodb:DescribeTable` and
    /// `dynamodb:DescribeTimeToLive` (and `dynamodb:DescribeContinuousBackups`, without which
    /// point-in-time recovery is reported unknown): an operator's credentials.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when DynamoDB does not answer; `Unexpected` when it refuses
    /// (no such table: `ResourceNotFoundException`; a missing permission).
    pub async fn describe_table(&self) -> Result<TableDescription, RepositoryError> {
        // Boxed: the three SDK futures at once are large, and this one is an operator's call.
        let described = Box::pin(async {
            tokio::try_join!(
                self.described_table(),
                self.described_time_to_live(),
                self.point_in_time_recovery()
            )
        });
        let (table, time_to_live, point_in_time_recovery) =
            self.within("describe table", described).await?;
        let mut description = description(&table, time_to_live, point_in_time_recovery)?;
        description.differences = description.differences_from(&TABLE);
        Ok(description)
    }

    async fn described_table(
        &self,
    ) -> Result<aws_sdk_dynamodb::types::TableDescription, RepositoryError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", &e))?
            .table
            .ok_or_else(|| {
                RepositoryError::unexpected(DynamoFailure::new(
                    "DescribeTable",
                    "answered without a table",
                    None,
                ))
            })
    }

    async fn described_time_to_live(&self) -> Result<TimeToLiveDescription, RepositoryError> {
        let output = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| classify("DescribeTimeToLive", &e))?;
        let described = output.time_to_live_description();
        Ok(TimeToLiveDescription {
            status: described
                .and_then(|d| d.time_to_live_status())
                .map(|s| s.as_str().to_owned()),
            attribute: described
                .and_then(|d| d.attribute_name())
                .map(str::to_owned),
        })
    }

    /// Point-in-time recovery, when DynamoDB says.
    async fn point_in_time_recovery(&self) -> Result<Option<String>, RepositoryError> {
        match self
            .client
            .describe_continuous_backups()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .continuous_backups_description()
                .and_then(|d| d.point_in_time_recovery_description())
                .and_then(|p| p.point_in_time_recovery_status())
                .map(|s| s.as_str().to_owned())),
            Err(e) => match classify("DescribeContinuousBackups", &e) {
                unavailable @ RepositoryError::Unavailable { .. } => Err(unavailable),
                // Refused: not a request DynamoDB Local knows, or not one these credentials may
                // send. The rest of the description does not depend on it.
                _ => Ok(None),
            },
        }
    }
}

/// The description of `table`, without the comparison.
fn description(
    table: &aws_sdk_dynamodb::types::TableDescription,
    time_to_live: TimeToLiveDescription,
    point_in_time_recovery: Option<String>,
) -> Result<TableDescription, RepositoryError> {
    let stream = table.stream_specification();
    let indexes = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let projection = index.projection();
            IndexDescription {
                name: index.index_name().unwrap_or_default().to_owned(),
                status: index
                    .index_status()
                    .map_or("unknown", |s| s.as_str())
                    .to_owned(),
                backfilling: index.backfilling().unwrap_or(false),
                key_schema: KeySchema::of(index.key_schema()),
                projection: projection
                    .and_then(|p| p.projection_type())
                    .map_or("unknown", |p| p.as_str())
                    .to_owned(),
                projected_attributes: projection
                    .map(|p| p.non_key_attributes().to_vec())
                    .unwrap_or_default(),
                approximate_item_count: index.item_count(),
            }
        })
        .collect();
    Ok(TableDescription {
        name: table
            .table_name()
            .ok_or_else(|| {
                RepositoryError::unexpected(DynamoFailure::new(
                    "DescribeTable",
                    "answered without a table name",
                    None,
                ))
            })?
            .to_owned(),
        status: table
            .table_status()
            .map_or("unknown", |s| s.as_str())
            .to_owned(),
        approximate_item_count: table.item_count(),
        approximate_size_bytes: table.table_size_bytes(),
        billing_mode: table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_owned()),
        key_schema: KeySchema::of(table.key_schema()),
        key_attribute_types: table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        indexes,
        time_to_live,
        stream: StreamDescription {
            enabled: stream.is_some_and(StreamSpecification::stream_enabled),
            view_type: stream
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_owned()),
            arn: table.latest_stream_arn().map(str::to_owned),
        },
        point_in_time_recovery,
        differences: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A description of a table exactly as `TABLE` defines it.
    fn as_defined() -> TableDescription {
        TableDescription {
            name: "customers".into(),
            status: "ACTIVE".into(),
            approximate_item_count: Some(3),
            approximate_size_bytes: Some(1200),
            billing_mode: Some("PAY_PER_REQUEST".into()),
            key_schema: KeySchema {
                partition_key: "pk".into(),
                sort_key: None,
            },
            key_attribute_types: TABLE
                .key_attributes()
                .into_iter()
                .map(|a| (a.to_owned(), "S".to_owned()))
                .collect(),
            indexes: TABLE
                .indexes
                .iter()
                .map(|index| IndexDescription {
                    name: index.name.into(),
                    status: "ACTIVE".into(),
                    backfilling: false,
                    key_schema: KeySchema::of_index(index),
                    projection: "ALL".into(),
                    projected_attributes: Vec::new(),
                    approximate_item_count: None,
                })
                .collect(),
            time_to_live: TimeToLiveDescription {
                status: Some("ENABLED".into()),
                attribute: Some("expiresAt".into()),
            },
            stream: StreamDescription {
                enabled: true,
                view_type: Some("NEW_AND_OLD_IMAGES".into()),
                arn: Some("arn:aws:dynamodb:eu-west-1:1:table/customers/stream/x".into()),
            },
            point_in_time_recovery: None,
            differences: Vec::new(),
        }
    }

    #[test]
    fn a_table_as_defined_has_no_difference_and_prints_that_it_matches() {
        let table = as_defined();
        assert!(table.differences_from(&TABLE).is_empty());
        let text = table.to_string();
        assert!(text.starts_with("table customers: ACTIVE, about 3 items, 1200 bytes"));
        assert!(
            text.contains(
                "index byName: ACTIVE, partition key shard, sort key nameKey, projects ALL"
            )
        );
        assert!(text.contains("time to live: ENABLED on expiresAt"));
        assert!(text.contains("point-in-time recovery: unknown"));
        assert!(text.ends_with("matches the code"), "{text}");
    }

    #[test]
    fn every_departure_from_the_definition_is_one_difference() {
        let mut table = as_defined();
        table.key_attribute_types.insert("shard".into(), "N".into());
        table.indexes.retain(|i| i.name != "byFirstName");
        let by_name = table
            .indexes
            .iter_mut()
            .find(|i| i.name == "byName")
            .unwrap();
        by_name.key_schema.sort_key = Some("lastName".into());
        by_name.projection = "KEYS_ONLY".into();
        table.indexes.push(IndexDescription {
            name: "byPhone".into(),
            ..table.indexes[0].clone()
        });
        table.time_to_live.attribute = Some("ttl".into());
        table.stream.view_type = Some("KEYS_ONLY".into());

        let differences = table.differences_from(&TABLE);

        let schema = |sort: &str| KeySchema {
            partition_key: "shard".into(),
            sort_key: Some(sort.into()),
        };
        assert_eq!(
            differences,
            [
                TableDifference::KeyAttributeType {
                    attribute: "shard".into(),
                    found: "N".into()
                },
                TableDifference::IndexKeySchema {
                    name: "byName".into(),
                    expected: schema("nameKey"),
                    found: schema("lastName")
                },
                TableDifference::IndexProjection {
                    name: "byName".into(),
                    found: "KEYS_ONLY".into()
                },
                TableDifference::MissingIndex {
                    name: "byFirstName".into()
                },
                TableDifference::UnknownIndex {
                    name: "byPhone".into()
                },
                TableDifference::TimeToLiveAttribute {
                    expected: "expiresAt".into(),
                    found: Some("ttl".into())
                },
                TableDifference::StreamViewType {
                    expected: "NEW_AND_OLD_IMAGES".into(),
                    found: Some("KEYS_ONLY".into())
                },
            ]
        );
        assert_eq!(
            differences[1].to_string(),
            "index byName has partition key shard, sort key lastName, not partition key shard, \
             sort key nameKey"
        );
    }

    #[test]
    fn a_time_to_live_turning_on_counts_as_on_and_one_turned_off_as_off() {
        let mut table = as_defined();
        table.time_to_live.status = Some("ENABLING".into());
        assert!(table.differences_from(&TABLE).is_empty());
        table.time_to_live = TimeToLiveDescription {
            status: Some("DISABLED".into()),
            attribute: None,
        };
        table.stream = StreamDescription {
            enabled: false,
            view_type: None,
            arn: None,
        };
        let differences = table.differences_from(&TABLE);
        assert_eq!(
            differences
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "time to live is DISABLED, not enabled on expiresAt",
                "the stream is off, not NEW_AND_OLD_IMAGES"
            ]
        );
        table.differences = differences;
        assert!(table.to_string().ends_with(
            "differs from the code:\n- time to live is DISABLED, not enabled on expiresAt\n- the \
             stream is off, not NEW_AND_OLD_IMAGES"
        ));
    }
}
