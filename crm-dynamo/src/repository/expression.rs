//! Update expressions under construction, for the writes that change an item in place (a patch,
//! the tombstone of a delete).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{AddressPatch, CustomerId, Patch, Timestamp};

use crate::item::{ADDRESS_ATTRIBUTES, feed_keys, s};

/// An update expression under construction: attribute names go through `#name` placeholders
/// (several customer attributes are DynamoDB reserved words) and values through `:name`.
///
/// The fields a client sets go through [`change`](Self::change) and
/// [`change_remove`](Self::change_remove), which also note when each would change the stored
/// value: [`changes_something`](Self::changes_something) joins them into the condition that
/// keeps a patch of values the customer already has from writing.
#[derive(Default)]
pub(super) struct UpdateExpression {
    sets: Vec<String>,
    removes: Vec<String>,
    /// The conditions under which the write changes the value of a field a client sets, any one
    /// of them enough.
    changes: Vec<String>,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl UpdateExpression {
    pub(super) fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    pub(super) fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        self.values.insert(format!(":{attribute}"), value);
        self.sets.push(format!("{name} = :{attribute}"));
    }

    pub(super) fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        self.removes.push(name);
    }

    /// Sets a field a client sets, which changes it unless it holds `value` already.
    pub(super) fn change(&mut self, attribute: &str, value: AttributeValue) {
        self.set(attribute, value);
        self.changes
            .push(format!("attribute_not_exists(#{attribute})"));
        self.changes.push(format!("#{attribute} <> :{attribute}"));
    }

    /// Removes a field a client sets, which changes it only when it is there.
    pub(super) fn change_remove(&mut self, attribute: &str) {
        self.remove(attribute);
        self.changes.push(format!("attribute_exists(#{attribute})"));
    }

    /// A field a client sets, as a merge patch says: kept, removed or set.
    pub(super) fn patch<T>(
        &mut self,
        attribute: &str,
        patch: &Patch<T>,
        value: impl Fn(&T) -> AttributeValue,
    ) {
        match patch {
            Patch::Keep => {}
            Patch::Clear => self.change_remove(attribute),
            Patch::Set(v) => self.change(attribute, value(v)),
        }
    }

    /// The condition that the fields set through [`change`](Self::change) and
    /// [`change_remove`](Self::change_remove) would change at least one stored value; `None`
    /// when none was.
    pub(super) fn changes_something(&self) -> Option<String> {
        // DynamoDB refuses parentheses it finds redundant: around a lone term, or nested.
        match self.changes.as_slice() {
            [] => None,
            [only] => Some(only.clone()),
            many => Some(format!("({})", many.join(" OR "))),
        }
    }

    /// Bumps the version of customer `id` and sets `updatedAt` to `now`, with what follows from
    /// them: its `updatedKey` (the key of `byUpdated`, which must move whenever `updatedAt` does)
    /// and its `shard` (the same value on every write; set here too so that an item written before
    /// the listing indexes enters `byUpdated` at its first change).
    pub(super) fn add_version_bump(&mut self, id: &CustomerId, now: Timestamp) {
        let version = self.name("version");
        self.values
            .insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        self.sets.push(format!("{version} = {version} + :one"));
        self.set("updatedAt", s(&now.to_string()));
        for (attribute, value) in feed_keys(id, now) {
            self.set(attribute, s(&value));
        }
    }

    /// Adds an address merge; true when the customer must already have an address (no `line1`).
    pub(super) fn address(&mut self, patch: &AddressPatch) -> bool {
        let [line1, line2, city, region, postal_code, country] = ADDRESS_ATTRIBUTES;
        if let Some(text) = &patch.line1 {
            self.change(line1, s(text.as_str()));
        }
        self.patch(line2, &patch.line2, |t| s(t.as_str()));
        self.patch(city, &patch.city, |t| s(t.as_str()));
        self.patch(region, &patch.region, |t| s(t.as_str()));
        self.patch(postal_code, &patch.postal_code, |t| s(t.as_str()));
        self.patch(country, &patch.country, |c| s(c.as_str()));
        patch.line1.is_none()
    }

    /// Whether the expression would change nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.removes.is_empty()
    }

    pub(super) fn expression(&self) -> String {
        let mut clauses = Vec::new();
        if !self.sets.is_empty() {
            clauses.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            clauses.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        clauses.join(" ")
    }
}
