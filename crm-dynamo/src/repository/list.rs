//! List: one page of a listing, merged from the shards of its index (see [`merge`](super::merge)).
//!
//! | listing | streams | key range of the first page | after a cursor |
//! | --- | --- | --- | --- |
//! | `createdAt` | `byCreated` × 4 shards | every key | `createdKey > :after` |
//! | `-createdAt` | `byCreated` × 4, read backwards | every key | `createdKey < :after` |
//! | `name` | `byName` × 4 | every key | `nameKey > :after` |
//! | `updatedAt` | `byUpdated` × 4, tombstones dropped | every key | `updatedKey > :after` |
//! | name search | `byName` × 4 and `byFirstName` × 4 | `begins_with(key, :prefix)` | `key BETWEEN :after AND :upper` |
//!
//! The cursor is the key of the last customer returned ([`Listing::cursor`]); one made for another
//! listing, or forged, is `InvalidCursor` before any request. A name search keeps a customer read
//! at key `k` only when `k` is the key the search finds it under ([`NamePrefix::key_of`]): a
//! customer found by both names is read twice and kept once, at the smaller key.
//!
//! [`NamePrefix::key_of`]: crm_domain::listing::NamePrefix::key_of

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::listing::{Listing, SortOrder};
use crm_domain::{Cursor, Customer, Page, PageLimit, RepositoryError};

use super::DynamoCustomerRepository;
use super::merge::{Direction, Range, Source};
use crate::item::{
    CREATED_KEY, FIRST_NAME_KEY, Item, NAME_KEY, UPDATED_KEY, customer_from_item, is_live,
};
use crate::table::{CREATED_INDEX, FIRST_NAME_INDEX, NAME_INDEX, UPDATED_INDEX};

impl DynamoCustomerRepository {
    pub(super) async fn list_unbounded(
        &self,
        listing: &Listing,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        let seal = self.cursor_key().await?;
        let after = cursor
            .map(|cursor| listing.position(seal, cursor))
            .transpose()
            .map_err(|_| RepositoryError::InvalidCursor)?;
        let merged = match listing {
            Listing::All(order) => {
                let (index, sort_key) = match order {
                    SortOrder::CreatedAt | SortOrder::CreatedAtDescending => {
                        (CREATED_INDEX, CREATED_KEY)
                    }
                    SortOrder::Name => (NAME_INDEX, NAME_KEY),
                    SortOrder::UpdatedAt => (UPDATED_INDEX, UPDATED_KEY),
                };
                let range = after.map_or(Range::All, Range::After);
                let direction = if order.descending() {
                    Direction::Descending
                } else {
                    Direction::Ascending
                };
                let sources = Source::every_shard(index, sort_key, &range).collect();
                // `byUpdated` also holds the tombstones of the change feed.
                self.merge_page(sources, direction, limit, |_, item| live_customer(item))
                    .await?
            }
            Listing::Name(prefix) => {
                let range = match after {
                    None => Range::Prefix(prefix.folded().to_owned()),
                    Some(after) => Range::PrefixAfter {
                        after,
                        upper: prefix.upper_bound(),
                    },
                };
                let sources = Source::every_shard(NAME_INDEX, NAME_KEY, &range)
                    .chain(Source::every_shard(
                        FIRST_NAME_INDEX,
                        FIRST_NAME_KEY,
                        &range,
                    ))
                    .collect();
                // A customer is kept under the smaller of its stored keys that the text starts
                // (its own keys, as the indexes hold them, not the names folded again).
                self.merge_page(sources, Direction::Ascending, limit, |key, item| {
                    if found_under(&item, prefix.folded()) == Some(key) {
                        live_customer(item)
                    } else {
                        Ok(None)
                    }
                })
                .await?
            }
        };
        Ok(Page {
            items: merged.items.into_iter().map(|(_, c)| c).collect(),
            next_cursor: merged.next.map(|key| listing.cursor(seal, &key)),
        })
    }
}

/// The key under which a search for `prefix` finds the item: the smaller of its stored `nameKey`
/// and `firstNameKey` among those that start with `prefix`.
fn found_under<'i>(item: &'i Item, prefix: &str) -> Option<&'i str> {
    [NAME_KEY, FIRST_NAME_KEY]
        .into_iter()
        .filter_map(|attribute| match item.get(attribute) {
            Some(AttributeValue::S(key)) if key.starts_with(prefix) => Some(key.as_str()),
            _ => None,
        })
        .min()
}

/// The customer of `item`, `None` for a tombstone.
fn live_customer(item: Item) -> Result<Option<Customer>, RepositoryError> {
    if is_live(&item) {
        customer_from_item(item).map(Some)
    } else {
        Ok(None)
    }
}
