//! Change events: what other systems learn of each committed change to a customer.
//!
//! An event names the customer, the version the change produced, when, and for an update which
//! fields changed; never a field's value. Events travel to other systems, queues and archives that
//! keep them far longer than the customer may exist; a consumer that needs the data reads the
//! customer, and so sees it only while it exists and only with the right to read it.
//!
//! Events are made from a store's own change log, not from request handlers, so that every
//! committed change is told exactly once and a refused write never is: `crm_dynamo::stream` maps
//! the records of the table's DynamoDB stream to them. Delivery further on (a bus, a webhook) may
//! repeat an event, always the same event: consumers deduplicate on `(id, version, time)`.
//!
//! A customer's events come in version order. An id deleted and created again begins a new life
//! at version 1, with a `customer.created` later than its `customer.deleted`: so `(id, version)`
//! alone does not name one change for ever, and a consumer that keeps the last version it applied
//! per id forgets it on `customer.deleted` (or treats `customer.created` as the start of a new
//! life).
//!
//! The JSON form is described by the JSON Schema [`SCHEMA`] (`schema/customer-event.json` in this
//! crate):
//!
//! ```
//! use crm_domain::events::CustomerEvent;
//! # use crm_domain::{Customer, CustomerId, NewCustomer, Timestamp};
//! # let input = NewCustomer::from_json(&serde_json::json!({"id": "c1", "firstName": "Ada", "lastName": "Lovelace"})).unwrap();
//! # let customer = Customer::create(input, CustomerId::generate(), Timestamp::parse("2026-12-01T10:00:00Z").unwrap());
//! let event = CustomerEvent::created(&customer);
//! assert_eq!(
//!     serde_json::to_value(&event).unwrap(),
//!     serde_json::json!({"type": "customer.created", "id": "c1", "version": 1,
//!                        "time": "2026-12-01T10:00:00.000Z"})
//! );
//! ```

use serde::{Deserialize, Serialize};

use crate::customer::Customer;
use crate::fields::{CustomerId, Timestamp, Version};
use crate::listing::Tombstone;

/// The JSON Schema (draft 2020-12) of an event's JSON form.
pub const SCHEMA: &str = include_str!("../schema/customer-event.json");

/// What happened to the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventType {
    /// The customer was created (also: an id created again after a delete).
    #[serde(rename = "customer.created")]
    Created,
    /// The customer was changed.
    #[serde(rename = "customer.updated")]
    Updated,
    /// The customer was deleted.
    #[serde(rename = "customer.deleted")]
    Deleted,
}

impl EventType {
    /// The type as events spell it: `customer.created`, `customer.updated`, `customer.deleted`
    /// (also the `detail-type` of the events on `EventBridge`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "customer.created",
            Self::Updated => "customer.updated",
            Self::Deleted => "customer.deleted",
        }
    }
}

/// A field of a customer that an update can change, named as in the customer's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum CustomerField {
    /// `firstName`.
    FirstName,
    /// `lastName`.
    LastName,
    /// `email`.
    Email,
    /// `phone`.
    Phone,
    /// `address`, any part of it.
    Address,
}

/// One committed change to one customer.
///
/// Reading one back ignores members it does not know, so that a consumer built against this
/// version keeps reading events that a later one extends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The customer's id.
    pub id: CustomerId,
    /// The version the change produced: per customer, events come in version order.
    pub version: Version,
    /// When the change was made.
    pub time: Timestamp,
    /// For an update, the fields whose value changed, in the order of [`CustomerField`]. A patch
    /// that changes no value writes nothing and tells nothing, so this is empty only when a store
    /// rewrote a customer whose names it had kept in a form since normalised (a DynamoDB item
    /// written before names were stored in NFC, which a patch setting both its names, the same
    /// ones, rewrites once in place). Absent from the other types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<CustomerField>,
}

impl CustomerEvent {
    /// The event of `customer`'s creation.
    pub fn created(customer: &Customer) -> Self {
        Self {
            kind: EventType::Created,
            id: customer.id().clone(),
            version: customer.version(),
            time: customer.created_at(),
            changed_fields: Vec::new(),
        }
    }

    /// The event of the change from `before` to `after` (the same customer, one version apart).
    pub fn updated(before: &Customer, after: &Customer) -> Self {
        Self {
            kind: EventType::Updated,
            id: after.id().clone(),
            version: after.version(),
            time: after.updated_at(),
            changed_fields: changed_fields(before, after),
        }
    }

    /// The event of a delete, from what it left.
    pub fn deleted(tombstone: &Tombstone) -> Self {
        Self {
            kind: EventType::Deleted,
            id: tombstone.id.clone(),
            version: tombstone.version,
            time: tombstone.deleted_at,
            changed_fields: Vec::new(),
        }
    }
}

/// The fields whose value differs between `before` and `after`, in the order of
/// [`CustomerField`].
pub fn changed_fields(before: &Customer, after: &Customer) -> Vec<CustomerField> {
    [
        (
            CustomerField::FirstName,
            before.first_name() != after.first_name(),
        ),
        (
            CustomerField::LastName,
            before.last_name() != after.last_name(),
        ),
        (CustomerField::Email, before.email() != after.email()),
        (CustomerField::Phone, before.phone() != after.phone()),
        (CustomerField::Address, before.address() != after.address()),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CustomerPatch, NewCustomer};

    fn ada() -> Customer {
        let input = NewCustomer::from_json(&serde_json::json!({
            "id": "c1", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
            "address": {"line1": "1 Main St"}
        }))
        .unwrap();
        Customer::create(
            input,
            CustomerId::generate(),
            Timestamp::parse("2026-12-01T10:00:00Z").unwrap(),
        )
    }

    #[test]
    fn an_update_names_the_fields_it_changed_and_no_value() {
        let before = ada();
        let patch = CustomerPatch::from_json(&serde_json::json!({
            "lastName": "Byron", "email": null, "address": {"city": "London"}, "firstName": "Ada"
        }))
        .unwrap();
        let now = Timestamp::parse("2026-12-01T11:00:00Z").unwrap();
        let after = before.patched(&patch, now).unwrap();
        let event = CustomerEvent::updated(&before, &after);
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "customer.updated", "id": "c1", "version": 2,
                "time": "2026-12-01T11:00:00.000Z",
                "changedFields": ["lastName", "email", "address"]})
        );
        let text = serde_json::to_string(&event).unwrap();
        for value in ["Byron", "London", "ada@example.com", "Ada"] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }

    #[test]
    fn a_delete_is_told_from_its_tombstone() {
        let tombstone = Tombstone {
            id: CustomerId::parse("c1").unwrap(),
            version: Version::FIRST.next(),
            deleted_at: Timestamp::parse("2026-12-01T12:00:00Z").unwrap(),
        };
        let event = CustomerEvent::deleted(&tombstone);
        assert_eq!(event.kind.as_str(), "customer.deleted");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "customer.deleted", "id": "c1", "version": 2,
                "time": "2026-12-01T12:00:00.000Z"})
        );
    }

    #[test]
    fn every_kind_of_event_matches_the_published_schema() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let before = ada();
        let now = Timestamp::parse("2026-12-01T11:00:00Z").unwrap();
        let same = CustomerPatch::from_json(&serde_json::json!({"firstName": "Ada"})).unwrap();
        let renamed =
            CustomerPatch::from_json(&serde_json::json!({"firstName": "Augusta"})).unwrap();
        let tombstone = Tombstone {
            id: before.id().clone(),
            version: Version::FIRST.next(),
            deleted_at: now,
        };
        for event in [
            CustomerEvent::created(&before),
            CustomerEvent::updated(&before, &before.patched(&renamed, now).unwrap()),
            CustomerEvent::updated(&before, &before.patched(&same, now).unwrap()),
            CustomerEvent::deleted(&tombstone),
        ] {
            let value = serde_json::to_value(&event).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{value}: {errors:?}");
        }
        // The schema refuses what an event must not be.
        for bad in [
            serde_json::json!({"type": "customer.created", "id": "c1", "version": 1,
                "time": "2026-12-01T10:00:00.000Z", "firstName": "Ada"}),
            serde_json::json!({"type": "customer.created", "id": "c1", "version": 1,
                "time": "2026-12-01T10:00:00.000Z", "changedFields": ["firstName"]}),
            serde_json::json!({"type": "customer.updated", "id": "c1", "version": 0,
                "time": "2026-12-01T10:00:00.000Z"}),
            serde_json::json!({"type": "customer.updated", "id": "c1", "version": 2,
                "time": "2026-12-01T10:00:00.000Z", "changedFields": ["password"]}),
            serde_json::json!({"type": "customer.moved", "id": "c1", "version": 2,
                "time": "2026-12-01T10:00:00.000Z"}),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn events_read_back_as_they_were_written() {
        let event = CustomerEvent::created(&ada());
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<CustomerEvent>(&text).unwrap(), event);
        let extended = r#"{"type":"customer.created","id":"c1","version":1,"time":"2026-12-01T10:00:00.000Z","source":"later"}"#;
        assert_eq!(
            serde_json::from_str::<CustomerEvent>(extended).unwrap(),
            event,
            "a member a later version adds is ignored"
        );
    }
}
