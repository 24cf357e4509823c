//! Change events from the table's stream: one pure function from a stream record to the
//! [`CustomerEvent`] it tells, if any.
//!
//! The table's stream (`NEW_AND_OLD_IMAGES`) holds every committed write to every item, whatever
//! wrote it. Only customer items and the tombstones deletes leave are customers' changes; email
//! claims and idempotency records are bookkeeping and tell nothing. So:
//!
//! | record | old image | new image | event |
//! | --- | --- | --- | --- |
//! | insert | — | customer | `customer.created` |
//! | modify | tombstone | customer | `customer.created` (an id created again after a delete) |
//! | modify | customer | customer, a later version | `customer.updated`, with the fields that changed |
//! | modify | customer | tombstone | `customer.deleted` |
//! | modify | customer | customer, the same version | none: a maintenance write (the backfill of listing keys) |
//! | remove | tombstone | — | none: the time to live dropping a tombstone |
//! | remove | customer | — | `customer.deleted` (a delete by a tool that bypasses tombstones) |
//! | anything | claim, idempotency record | | none |
//!
//! The event source mapping's filter (`deploy/`) keeps records whose new image is a customer or a
//! tombstone, or whose old image is a customer, so that the function is not even invoked for the
//! rest; this function still judges
//! every record on its own, so that a wider filter can never publish bookkeeping.

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::events::CustomerEvent;
use crm_domain::listing::Tombstone;
use crm_domain::{CustomerId, Timestamp, Version};

use crate::item::{Item, KIND_CUSTOMER, KIND_DELETED, customer_from_item, item_version};

/// The attribute that says what an item is (`customer`, `deleted` for a tombstone, and others for
/// bookkeeping).
pub const KIND_ATTRIBUTE: &str = "kind";

/// The kinds of image that can tell an event: customers and the tombstones deletes leave. The
/// event source mapping's filter keeps the records whose new image is of one of these kinds, and
/// those whose old image is a customer (which adds the removals of customers: Lambda filters
/// DynamoDB records on their images, not on their `eventName`); no other record can tell an event.
pub const EVENT_KINDS: [&str; 2] = [KIND_CUSTOMER, KIND_DELETED];

/// What a stream record says happened to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `INSERT`: the item was written where there was none.
    Insert,
    /// `MODIFY`: the item was replaced or updated.
    Modify,
    /// `REMOVE`: the item was deleted (by a request, or by the time to live).
    Remove,
}

impl RecordKind {
    /// The kind named by a record's `eventName` (`INSERT`, `MODIFY`, `REMOVE`).
    pub fn parse(event_name: &str) -> Option<Self> {
        match event_name {
            "INSERT" => Some(Self::Insert),
            "MODIFY" => Some(Self::Modify),
            "REMOVE" => Some(Self::Remove),
            _ => None,
        }
    }
}

/// One record of the table's stream, as the function needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChange {
    /// What happened to the item.
    pub kind: RecordKind,
    /// The item before the write (absent for an insert).
    pub old_image: Option<Item>,
    /// The item after the write (absent for a remove).
    pub new_image: Option<Item>,
    /// When the stream recorded the write: the time of a delete that left no tombstone.
    pub recorded_at: Timestamp,
}

/// Why a record that should tell an event could not be read. It names no value.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A customer or tombstone image does not decode.
    #[error("a {0} image of the stream does not decode as this crate writes it")]
    Undecodable(&'static str),
}

/// The event `change` tells, `None` when it tells none (see the [module docs](self)).
///
/// # Errors
/// [`StreamError::Undecodable`] when an image that should be a customer or a tombstone is not
/// one this crate writes.
pub fn event_of(change: &StreamChange) -> Result<Option<CustomerEvent>, StreamError> {
    let old = change.old_image.as_ref().map(kind_of);
    let new = change.new_image.as_ref().map(kind_of);
    let event = match (change.kind, old, new) {
        (
            RecordKind::Insert | RecordKind::Modify,
            None | Some(Kind::Tombstone),
            Some(Kind::Customer),
        ) => {
            let customer = customer(change.new_image.as_ref(), "new")?;
            Some(CustomerEvent::created(&customer))
        }
        (RecordKind::Modify, Some(Kind::Customer), Some(Kind::Customer)) => {
            let before = customer(change.old_image.as_ref(), "old")?;
            let after = customer(change.new_image.as_ref(), "new")?;
            (after.version() > before.version()).then(|| CustomerEvent::updated(&before, &after))
        }
        (RecordKind::Modify, Some(Kind::Customer), Some(Kind::Tombstone)) => {
            let tombstone = tombstone(change.new_image.as_ref())?;
            Some(CustomerEvent::deleted(&tombstone))
        }
        (RecordKind::Remove, Some(Kind::Customer), None) => {
            let gone = customer(change.old_image.as_ref(), "old")?;
            Some(CustomerEvent::deleted(&Tombstone {
                id: gone.id().clone(),
                version: gone.version().next(),
                deleted_at: change.recorded_at,
            }))
        }
        _ => None,
    };
    Ok(event)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Customer,
    Tombstone,
    /// Email claims, idempotency records, anything else.
    Bookkeeping,
}

fn kind_of(item: &Item) -> Kind {
    match item.get(KIND_ATTRIBUTE) {
        Some(AttributeValue::S(kind)) if kind == KIND_CUSTOMER => Kind::Customer,
        Some(AttributeValue::S(kind)) if kind == KIND_DELETED => Kind::Tombstone,
        _ => Kind::Bookkeeping,
    }
}

fn customer(
    image: Option<&Item>,
    which: &'static str,
) -> Result<crm_domain::Customer, StreamError> {
    image
        .cloned()
        .ok_or(StreamError::Undecodable(which))
        .and_then(|item| customer_from_item(item).map_err(|_| StreamError::Undecodable(which)))
}

fn tombstone(image: Option<&Item>) -> Result<Tombstone, StreamError> {
    let undecodable = || StreamError::Undecodable("tombstone");
    let item = image.ok_or_else(undecodable)?;
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    let id = text("id")
        .and_then(|s| CustomerId::parse(s).ok())
        .ok_or_else(undecodable)?;
    let version: Version = item_version(item).ok_or_else(undecodable)?;
    let deleted_at = text("updatedAt")
        .and_then(|s| Timestamp::parse(s).ok())
        .ok_or_else(undecodable)?;
    Ok(Tombstone {
        id,
        version,
        deleted_at,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crm_domain::events::{CustomerField, EventType};
    use crm_domain::{Customer, CustomerPatch, NewCustomer};

    use super::*;
    use crate::item::{claim_item, customer_item};

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn ada() -> Customer {
        let input = NewCustomer::from_json(&serde_json::json!({
            "id": "c1", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"
        }))
        .unwrap();
        Customer::create(input, CustomerId::generate(), at("2026-12-01T10:00:00Z"))
    }

    fn tombstone_item(version: u64, deleted_at: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), s("CUSTOMER#c1")),
            ("kind".to_owned(), s(KIND_DELETED)),
            ("id".to_owned(), s("c1")),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
            ("updatedAt".to_owned(), s(deleted_at)),
        ])
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    fn change(kind: RecordKind, old: Option<Item>, new: Option<Item>) -> StreamChange {
        StreamChange {
            kind,
            old_image: old,
            new_image: new,
            recorded_at: at("2026-12-01T12:00:00Z"),
        }
    }

    #[test]
    fn a_created_customer_is_customer_created() {
        let item = customer_item(&ada()).unwrap();
        let event = event_of(&change(RecordKind::Insert, None, Some(item)))
            .unwrap()
            .unwrap();
        assert_eq!(event, CustomerEvent::created(&ada()));
    }

    #[test]
    fn a_patch_is_customer_updated_with_the_fields_it_changed() {
        let before = ada();
        let patch = CustomerPatch::from_json(&serde_json::json!({"lastName": "Byron"})).unwrap();
        let after = before.patched(&patch, at("2026-12-01T11:00:00Z")).unwrap();
        let event = event_of(&change(
            RecordKind::Modify,
            Some(customer_item(&before).unwrap()),
            Some(customer_item(&after).unwrap()),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(event.kind, EventType::Updated);
        assert_eq!(event.version.get(), 2);
        assert_eq!(event.changed_fields, [CustomerField::LastName]);
    }

    #[test]
    fn a_write_that_keeps_the_version_tells_nothing() {
        let item = customer_item(&ada()).unwrap();
        let same = change(RecordKind::Modify, Some(item.clone()), Some(item));
        assert_eq!(event_of(&same).unwrap(), None);
    }

    #[test]
    fn a_tombstone_is_customer_deleted_and_its_expiry_tells_nothing() {
        let deleted = change(
            RecordKind::Modify,
            Some(customer_item(&ada()).unwrap()),
            Some(tombstone_item(2, "2026-12-01T11:30:00.000Z")),
        );
        let event = event_of(&deleted).unwrap().unwrap();
        assert_eq!(event.kind, EventType::Deleted);
        assert_eq!(event.version.get(), 2);
        assert_eq!(event.time, at("2026-12-01T11:30:00Z"));
        let expired = change(
            RecordKind::Remove,
            Some(tombstone_item(2, "2026-12-01T11:30:00.000Z")),
            None,
        );
        assert_eq!(event_of(&expired).unwrap(), None);
        let recreated = change(
            RecordKind::Modify,
            Some(tombstone_item(2, "2026-12-01T11:30:00.000Z")),
            Some(customer_item(&ada()).unwrap()),
        );
        assert_eq!(
            event_of(&recreated).unwrap().map(|e| e.kind),
            Some(EventType::Created)
        );
    }

    #[test]
    fn claims_tell_nothing() {
        let claim = claim_item("ada@example.com", &CustomerId::parse("c1").unwrap());
        for kind in [RecordKind::Insert, RecordKind::Modify, RecordKind::Remove] {
            let record = change(kind, Some(claim.clone()), Some(claim.clone()));
            assert_eq!(event_of(&record).unwrap(), None);
        }
    }

    #[test]
    fn an_undecodable_customer_image_is_an_error_that_names_no_value() {
        let mut item = customer_item(&ada()).unwrap();
        item.insert("email".to_owned(), s("secret-not-an-email"));
        let err = event_of(&change(RecordKind::Insert, None, Some(item))).unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
