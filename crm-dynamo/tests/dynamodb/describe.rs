//! The table description on DynamoDB Local: a table made by `create_table` matches the code; a
//! table made by hand reports exactly how it departs from `TABLE` (an index missing, keyed or
//! projected otherwise, or unknown; the time to live off or on another attribute; the stream off
//! or recording other images), and the description takes the requests the docs give.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use crm_dynamo::{DynamoCustomerRepository, KeySchema, TABLE, TableDifference};

use crate::support;
use crate::support::Requests;

/// An index made by hand: name, partition key, sort key, projection.
type Index = (
    &'static str,
    &'static str,
    Option<&'static str>,
    ProjectionType,
);

/// The indexes of `TABLE`, as made by `create_table`.
fn indexes_of_the_code() -> Vec<Index> {
    TABLE
        .indexes
        .iter()
        .map(|i| (i.name, i.partition_key, i.sort_key, ProjectionType::All))
        .collect()
}

fn element(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

/// Makes a table keyed on `pk` with `indexes`, a stream recording `stream` (off when `None`) and
/// a time to live on `ttl` (off when `None`), as an operator could by hand; returns a repository
/// on it.
async fn table_by_hand(
    indexes: &[Index],
    stream: Option<StreamViewType>,
    ttl: Option<&str>,
) -> DynamoCustomerRepository {
    support::require_dynamodb_local();
    let settings = support::settings();
    let client = Client::from_conf(settings.sdk_config().await);
    let name = settings.table_name();
    let mut attributes: BTreeSet<&str> = BTreeSet::from(["pk"]);
    let mut made = Vec::new();
    for (index, partition_key, sort_key, projection) in indexes {
        attributes.insert(partition_key);
        let mut key_schema = vec![element(partition_key, KeyType::Hash)];
        if let Some(sort_key) = sort_key {
            attributes.insert(sort_key);
            key_schema.push(element(sort_key, KeyType::Range));
        }
        made.push(
            GlobalSecondaryIndex::builder()
                .index_name(*index)
                .set_key_schema(Some(key_schema))
                .projection(
                    Projection::builder()
                        .projection_type(projection.clone())
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    let definitions = attributes
        .into_iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(a)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        })
        .collect();
    let stream = match stream {
        Some(view) => StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(view),
        None => StreamSpecification::builder().stream_enabled(false),
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .key_schema(element("pk", KeyType::Hash))
        .set_global_secondary_indexes((!made.is_empty()).then_some(made))
        .stream_specification(stream.build().unwrap())
        .send()
        .await
        .unwrap();
    if let Some(attribute) = ttl {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    DynamoCustomerRepository::connect(&settings).await
}

#[tokio::test]
async fn a_table_made_by_create_table_matches_the_code() {
    let repository = support::repository_with_stream(support::settings()).await;

    let table = repository.describe_table().await.unwrap();

    assert!(table.matches_code(), "{table}");
    assert_eq!(table.name, repository.table_name());
    assert_eq!(table.status, "ACTIVE");
    assert_eq!(table.billing_mode.as_deref(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        table.key_schema,
        KeySchema {
            partition_key: "pk".into(),
            sort_key: None
        }
    );
    let names: Vec<&str> = table.indexes.iter().map(|i| i.name.as_str()).collect();
    let defined: Vec<&str> = TABLE.indexes.iter().map(|i| i.name).collect();
    assert_eq!(
        names.iter().copied().collect::<BTreeSet<_>>(),
        defined.iter().copied().collect::<BTreeSet<_>>()
    );
    assert!(
        table
            .indexes
            .iter()
            .all(|i| i.status == "ACTIVE" && i.projection == "ALL")
    );
    assert_eq!(table.time_to_live.status.as_deref(), Some("ENABLED"));
    assert_eq!(table.time_to_live.attribute.as_deref(), Some("expiresAt"));
    assert!(table.stream.enabled);
    assert_eq!(
        table.stream.view_type.as_deref(),
        Some("NEW_AND_OLD_IMAGES")
    );
    assert!(table.stream.arn.is_some());
    let text = table.to_string();
    assert!(text.ends_with("matches the code"), "{text}");
    assert!(
        text.contains("time to live: ENABLED on expiresAt"),
        "{text}"
    );
}

#[tokio::test]
async fn a_table_made_by_hand_without_an_index_a_time_to_live_or_a_stream_reports_exactly_those() {
    let mut indexes = indexes_of_the_code();
    indexes.retain(|(name, ..)| *name != "byFirstName");
    let repository = table_by_hand(&indexes, None, None).await;

    let table = repository.describe_table().await.unwrap();

    assert_eq!(
        table.differences,
        [
            TableDifference::MissingIndex {
                name: "byFirstName".into()
            },
            TableDifference::TimeToLiveOff {
                expected: "expiresAt".into(),
                status: Some("DISABLED".into())
            },
            TableDifference::StreamOff {
                expected: "NEW_AND_OLD_IMAGES".into()
            },
        ],
        "{table}"
    );
    assert!(!table.matches_code());
    assert!(
        table.to_string().ends_with(
            "differs from the code:\n- index byFirstName is missing\n- time to live is \
             DISABLED, not enabled on expiresAt\n- the stream is off, not NEW_AND_OLD_IMAGES"
        ),
        "{table}"
    );
}

#[tokio::test]
async fn a_table_made_by_hand_with_other_keys_projections_time_to_live_and_stream_reports_each() {
    let mut indexes = indexes_of_the_code();
    for (name, _, sort_key, projection) in &mut indexes {
        match *name {
            "byName" => *sort_key = Some("lastName"),
            "byCreated" => *projection = ProjectionType::KeysOnly,
            _ => {}
        }
    }
    indexes.push(("byPhone", "phone", None, ProjectionType::All));
    let repository = table_by_hand(&indexes, Some(StreamViewType::KeysOnly), Some("ttl")).await;

    let table = repository.describe_table().await.unwrap();

    let shard = |sort: &str| KeySchema {
        partition_key: "shard".into(),
        sort_key: Some(sort.into()),
    };
    assert_eq!(
        table.differences,
        [
            TableDifference::IndexProjection {
                name: "byCreated".into(),
                found: "KEYS_ONLY".into()
            },
            TableDifference::IndexKeySchema {
                name: "byName".into(),
                expected: shard("nameKey"),
                found: shard("lastName")
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
        ],
        "{table}"
    );
}

/// The three requests of the crate docs, and the IAM actions they need.
#[tokio::test]
async fn a_description_takes_three_requests_and_the_documented_actions() {
    let settings = support::settings();
    let plain = support::repository_with(settings.clone()).await;
    let (repository, requests) = Requests::on(&settings, plain.table_name()).await;

    repository.describe_table().await.unwrap();

    let mut sent = requests.take();
    sent.sort();
    assert_eq!(
        sent,
        [
            "DescribeContinuousBackups",
            "DescribeTable",
            "DescribeTimeToLive"
        ]
    );
    assert_eq!(
        requests.actions(),
        [
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:DescribeTable",
            "dynamodb:DescribeTimeToLive"
        ]
        .map(str::to_owned)
        .into()
    );
}
