//! The change feed: the customers and tombstones of `byUpdated`, merged from its four shards in
//! `updatedKey` order (see [`merge`](super::merge)), from the feed's start (`updatedKey >= :start`)
//! or after the cursor's key (`updatedKey > :after`).
//!
//! A tombstone whose `expiresAt` has passed is dropped: DynamoDB's time to live deletes expired
//! items up to about two days late, and the feed promises the retention, not DynamoDB's delay.

use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::listing::{Change, ChangeFeed, Tombstone};
use crm_domain::{Cursor, CustomerId, Page, PageLimit, RepositoryError, Timestamp, Version};

use super::DynamoCustomerRepository;
use super::merge::{Direction, Range, Source};
use crate::item::{
    EXPIRES_AT, Item, KIND_DELETED, UPDATED_KEY, customer_from_item, is_live, item_version,
};
use crate::table::UPDATED_INDEX;

impl DynamoCustomerRepository {
    pub(super) async fn changes_unbounded(
        &self,
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Change>, RepositoryError> {
        let seal = self.cursor_key().await?;
        let start = ChangeFeed::start(since);
        let range = match cursor {
            None => Range::From(start),
            Some(cursor) => {
                let after = ChangeFeed::position(seal, cursor)
                    .map_err(|_| RepositoryError::InvalidCursor)?;
                // A cursor from a walk that began earlier must not bring back what precedes
                // `since`.
                if after < start {
                    Range::From(start)
                } else {
                    Range::After(after)
                }
            }
        };
        let now = epoch_seconds(SystemTime::now());
        let sources = Source::every_shard(UPDATED_INDEX, UPDATED_KEY, &range).collect();
        let merged = self
            .merge_page(sources, Direction::Ascending, limit, |_, item| {
                change(item, now)
            })
            .await?;
        Ok(Page {
            items: merged.items.into_iter().map(|(_, change)| change).collect(),
            next_cursor: merged.next.map(|key| ChangeFeed::cursor(seal, &key)),
        })
    }
}

/// The change an item of `byUpdated` stands for; `None` for a tombstone that expired at or
/// before `now` (epoch seconds).
fn change(item: Item, now: u64) -> Result<Option<Change>, RepositoryError> {
    if is_live(&item) {
        return customer_from_item(item).map(|c| Some(Change::Customer(c)));
    }
    if !matches!(item.get("kind"), Some(AttributeValue::S(kind)) if kind == KIND_DELETED) {
        return Err(RepositoryError::unexpected(CorruptTombstone("kind")));
    }
    if let Some(expires_at) = expires_at(&item)?
        && expires_at <= now
    {
        return Ok(None);
    }
    tombstone(&item).map(|t| Some(Change::Deleted(t)))
}

fn tombstone(item: &Item) -> Result<Tombstone, RepositoryError> {
    let text = |attribute: &'static str| match item.get(attribute) {
        Some(AttributeValue::S(value)) => Ok(value.as_str()),
        _ => Err(RepositoryError::unexpected(CorruptTombstone(attribute))),
    };
    let id = CustomerId::parse(text("id")?)
        .map_err(|_| RepositoryError::unexpected(CorruptTombstone("id")))?;
    let version: Version =
        item_version(item).ok_or(RepositoryError::unexpected(CorruptTombstone("version")))?;
    let deleted_at = Timestamp::parse(text("updatedAt")?)
        .map_err(|_| RepositoryError::unexpected(CorruptTombstone("updatedAt")))?;
    Ok(Tombstone {
        id,
        version,
        deleted_at,
    })
}

/// When DynamoDB's time to live may remove the item, if it says.
fn expires_at(item: &Item) -> Result<Option<u64>, RepositoryError> {
    match item.get(EXPIRES_AT) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| RepositoryError::unexpected(CorruptTombstone(EXPIRES_AT))),
        Some(_) => Err(RepositoryError::unexpected(CorruptTombstone(EXPIRES_AT))),
    }
}

fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// An item of the change feed that is neither a customer nor a readable tombstone. Names the
/// attribute only.
#[derive(Debug, thiserror::Error)]
#[error("an item of the change feed is not a customer or a tombstone: bad `{0}`")]
struct CorruptTombstone(&'static str);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::s;
    use std::collections::HashMap;

    fn tombstone_item(expires_at: u64) -> Item {
        HashMap::from([
            ("pk".to_owned(), s("CUSTOMER#c1")),
            ("kind".to_owned(), s(KIND_DELETED)),
            ("id".to_owned(), s("c1")),
            ("version".to_owned(), AttributeValue::N("3".to_owned())),
            ("updatedAt".to_owned(), s("2026-12-01T00:00:00.000Z")),
            (
                EXPIRES_AT.to_owned(),
                AttributeValue::N(expires_at.to_string()),
            ),
        ])
    }

    #[test]
    fn a_tombstone_is_a_deleted_change_until_it_expires() {
        let Ok(Some(Change::Deleted(tombstone))) = change(tombstone_item(100), 99) else {
            panic!("a live tombstone is a change");
        };
        assert_eq!(tombstone.id.as_str(), "c1");
        assert_eq!(tombstone.version.get(), 3);
        assert_eq!(tombstone.deleted_at.to_string(), "2026-12-01T00:00:00.000Z");
        assert!(matches!(change(tombstone_item(100), 100), Ok(None)));
        assert!(matches!(change(tombstone_item(100), 101), Ok(None)));
    }

    #[test]
    fn an_item_of_another_kind_is_an_error_that_names_no_value() {
        let mut item = tombstone_item(100);
        item.insert("kind".to_owned(), s("email"));
        let error = change(item, 0).unwrap_err();
        assert!(matches!(error, RepositoryError::Unexpected(_)));
        let mut item = tombstone_item(100);
        item.insert("updatedAt".to_owned(), s("secret-not-a-time"));
        let error = change(item, 0).unwrap_err();
        let chain = format!("{error} {:?}", std::error::Error::source(&error));
        assert!(!chain.contains("secret"), "{chain}");
    }
}
