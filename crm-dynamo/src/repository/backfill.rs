//! The listing-key backfill: gives the items written before the listing indexes existed the
//! attributes those indexes are keyed on.
//!
//! Every write of this version stamps a customer with `shard`, `createdKey`, `updatedKey`,
//! `nameKey` and `firstNameKey`, and a tombstone with `shard` and `updatedKey` (see the
//! [crate docs](crate)). Items written by the previous version have none of them, so the indexes
//! leave them out: a listing would not show those customers, nor the change feed those deletes.
//! The backfill reads the whole table with a paginated, consistent `Scan` (customers and
//! tombstones only; claims and idempotency records are filtered out) and gives each item that
//! lacks a key, or holds a stale one (another shard count, say), the keys computed from its own
//! attributes, with one `UpdateItem` per item.
//!
//! It is an operator's tool, not a service path: it scans, and the function roles of the
//! templates are not granted `dynamodb:Scan`. Run it with credentials that may `Scan` and
//! `UpdateItem` the table (`examples/backfill.rs` does, from the environment).
//!
//! # Safety against concurrent writers
//!
//! The service keeps running while the backfill does. Each `UpdateItem` is conditioned on the item
//! being as read: the same kind and version, and the same values of every attribute a key is made
//! of (`createdAt`, `updatedAt`, `firstName`, `lastName`; for a tombstone its time). The version
//! alone would not do: a customer deleted and created again between the read and the write starts
//! at version 1 again, and a bulk import writes no write token. So the backfill never writes keys
//! that do not belong to the item as it is, and it never changes the version, `updatedAt` or the
//! write token: to clients and to the lost-reply logic of the writes, nothing happened. A write
//! that lands in between wins; the backfill then looks at what DynamoDB hands back from the failed
//! condition and tries again (at most three times), or finds the keys already there.
//!
//! # What it cannot fix
//!
//! An item that does not decode as a customer this crate ever wrote cannot be given keys: it is
//! counted as unreadable and left alone. (Names that clients can no longer send, only invisible
//! characters or a bidirectional override, are not that: stored names are read under the rules
//! they were written by, `PersonName::from_stored`.)
//!
//! Every tombstone this crate ever wrote carries `updatedAt`, the time of its delete. One without
//! it (written by hand, or by a tool) gets its time from its time to live, `expiresAt` less the
//! repository's tombstone retention: the time of the delete if the retention has not changed since.
//! One with neither is counted as unreadable and left alone; it has no place in the change feed.

use std::fmt;
use std::str::FromStr;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use crm_domain::{CustomerId, RepositoryError, Timestamp};

use super::DynamoCustomerRepository;
use super::expression::UpdateExpression;
use crate::error::classify;
use crate::item::{
    CREATED_KEY, EXPIRES_AT, FIRST_NAME_KEY, Item, KIND_CUSTOMER, KIND_DELETED, NAME_KEY, PK,
    customer_from_item, feed_keys, is_valid_pk, key, listing_keys, s,
};

/// How many items one `Scan` of the backfill reads unless told otherwise.
const DEFAULT_PAGE_SIZE: u16 = 100;

/// How many times the backfill writes one item that keeps changing under it before it leaves it
/// to the next run.
const TRIES_PER_ITEM: usize = 3;

/// How a backfill runs: its page size, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    page_size: u16,
    resume_after: Option<BackfillPosition>,
}

impl Default for Backfill {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            resume_after: None,
        }
    }
}

impl Backfill {
    /// A backfill of the whole table, 100 items per `Scan`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same backfill reading `items` items per `Scan` (1–1000; out-of-range values are
    /// clamped). A page is also cut at 1 MB, as every `Scan` is.
    #[must_use]
    pub fn page_size(mut self, items: u16) -> Self {
        self.page_size = items.clamp(1, 1000);
        self
    }

    /// The same backfill starting after `position`, where an earlier run stopped (its last
    /// [`BackfillReport::resume_after`]).
    #[must_use]
    pub fn resume_after(mut self, position: BackfillPosition) -> Self {
        self.resume_after = Some(position);
        self
    }
}

/// Where a backfill stands: the key of the last item it read, to resume after.
///
/// It prints as that key (`CUSTOMER#<id>`, or a key of a claim or an idempotency record, which
/// are digests) and parses back from it. It names at most a customer's id, never a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillPosition(String);

impl fmt::Display for BackfillPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BackfillPosition {
    type Err = InvalidBackfillPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_valid_pk(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidBackfillPosition)
        }
    }
}

/// A text that is not a position a backfill printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a backfill position: expected the key of an item of this table, as a report printed")]
pub struct InvalidBackfillPosition;

/// What a backfill did, so far or in all. Each item read is counted in exactly one of `updated`,
/// `already_current`, `changed_meanwhile` and `unreadable`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackfillReport {
    /// Customers and tombstones read.
    pub scanned: u64,
    /// Those the backfill gave their keys.
    pub updated: u64,
    /// Those that had every key, with the values their attributes give.
    pub already_current: u64,
    /// Those another writer changed between the backfill's read and its write, and left with
    /// their keys (every write of this version sets them) or deleted, or that kept changing: the
    /// backfill wrote nothing to them. A second run looks at them again.
    pub changed_meanwhile: u64,
    /// Those left alone because no key can be computed for them: a customer whose stored fields
    /// do not decode (a name that is only invisible characters, or holds a bidirectional
    /// override, under the current rules), or a tombstone with no time.
    pub unreadable: u64,
    /// Where a run that stops now would resume: after this key. `None` once the scan has reached
    /// the end of the table.
    pub resume_after: Option<BackfillPosition>,
}

impl fmt::Display for BackfillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scanned {}, updated {}, already current {}, changed meanwhile {}, unreadable {}",
            self.scanned,
            self.updated,
            self.already_current,
            self.changed_meanwhile,
            self.unreadable
        )?;
        match &self.resume_after {
            Some(position) => write!(f, "; resume after {position}"),
            None => f.write_str("; reached the end of the table"),
        }
    }
}

/// A backfill that stopped before the end of the table: what it did until then (with the
/// position to resume after), and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("{}", stopped(report))]
pub struct BackfillError {
    /// What the backfill did before it stopped. Resume after
    /// [`report.resume_after`](BackfillReport::resume_after) (from the start when `None`): the
    /// items of the page under way are looked at again, which changes nothing twice.
    pub report: BackfillReport,
    /// Why it stopped: DynamoDB unavailable or refusing (`Unexpected` for a missing permission).
    #[source]
    pub source: RepositoryError,
}

/// What a stopped backfill says: what it did, and where to resume.
fn stopped(report: &BackfillReport) -> String {
    let counts = format!(
        "the listing-key backfill stopped after {} items (updated {}, already current {}, \
         changed meanwhile {}, unreadable {})",
        report.scanned,
        report.updated,
        report.already_current,
        report.changed_meanwhile,
        report.unreadable
    );
    match &report.resume_after {
        Some(position) => format!("{counts}; resume after {position}"),
        None => format!("{counts}; run it again from the start"),
    }
}

/// What the backfill did to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Updated,
    AlreadyCurrent,
    ChangedMeanwhile,
    Unreadable,
}

/// What one item needs.
enum Plan {
    /// Nothing: every key is there, with the right value.
    Current,
    /// Nothing can be computed for it.
    Unreadable,
    /// This update, conditioned on the item being as read.
    Write {
        update: UpdateExpression,
        condition: String,
    },
}

impl DynamoCustomerRepository {
    /// Gives every customer and tombstone written before the listing indexes existed the
    /// attributes the indexes are keyed on; see the [crate docs](crate#upgrading-a-table-of-the-previous-layout).
    ///
    /// Reads the table with a paginated, consistent `Scan` (`backfill`'s page size; from the
    /// start, or after the position it gives), and writes each item that lacks a key, or holds a
    /// stale one, with an `UpdateItem` conditioned on the item being as read. Calls `progress`
    /// after every page with the report so far. Runs until the end of the table, each request
    /// within the repository's deadline.
    ///
    /// Idempotent: a second run writes nothing (`updated` is 0) unless something changed in
    /// between. It never changes a customer's version, `updatedAt` or data.
    ///
    /// Needs `dynamodb:Scan` and `dynamodb:UpdateItem` on the table: an operator's credentials,
    /// not the function role's.
    ///
    /// # Errors
    /// A [`BackfillError`] when DynamoDB fails a request past its retries (unavailable, throttling,
    /// a missing permission): it holds the report so far and the position to resume after.
    pub async fn backfill_listing_keys(
        &self,
        backfill: &Backfill,
        mut progress: impl FnMut(&BackfillReport) + Send,
    ) -> Result<BackfillReport, BackfillError> {
        let mut report = BackfillReport {
            resume_after: backfill.resume_after.clone(),
            ..BackfillReport::default()
        };
        loop {
            let start = report.resume_after.clone();
            let (items, last) = match self
                .within("backfill", self.backfill_page(backfill.page_size, start))
                .await
            {
                Ok(page) => page,
                Err(source) => return Err(BackfillError { report, source }),
            };
            for item in items {
                let outcome = match self.within("backfill", self.backfill_item(item)).await {
                    Ok(outcome) => outcome,
                    Err(source) => return Err(BackfillError { report, source }),
                };
                report.scanned += 1;
                match outcome {
                    Outcome::Updated => report.updated += 1,
                    Outcome::AlreadyCurrent => report.already_current += 1,
                    Outcome::ChangedMeanwhile => report.changed_meanwhile += 1,
                    Outcome::Unreadable => report.unreadable += 1,
                }
            }
            report.resume_after = last;
            progress(&report);
            if report.resume_after.is_none() {
                return Ok(report);
            }
        }
    }

    /// One consistent `Scan` of at most `limit` items after `start`, filtered to customers and
    /// tombstones: the items, and where the scan stopped if not at the end of the table.
    async fn backfill_page(
        &self,
        limit: u16,
        start: Option<BackfillPosition>,
    ) -> Result<(Vec<Item>, Option<BackfillPosition>), RepositoryError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::from(limit))
            // Consistent, so that a second run right after the first sees its writes and finds
            // nothing to do.
            .consistent_read(true)
            .filter_expression("#kind IN (:customer, :deleted)")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":customer", s(KIND_CUSTOMER))
            .expression_attribute_values(":deleted", s(KIND_DELETED))
            .set_exclusive_start_key(start.map(|position| key(position.0)))
            .send()
            .await
            .map_err(|e| classify("Scan", &e))?;
        let last = output.last_evaluated_key.and_then(|k| match k.get(PK) {
            Some(AttributeValue::S(pk)) => Some(BackfillPosition(pk.clone())),
            _ => None,
        });
        Ok((output.items.unwrap_or_default(), last))
    }

    /// Brings one item's keys up to date, looking again at what a concurrent writer left.
    async fn backfill_item(&self, mut item: Item) -> Result<Outcome, RepositoryError> {
        let mut changed = false;
        for _ in 0..TRIES_PER_ITEM {
            let (update, condition) = match self.plan(&item) {
                Plan::Current if changed => return Ok(Outcome::ChangedMeanwhile),
                Plan::Current => return Ok(Outcome::AlreadyCurrent),
                Plan::Unreadable => return Ok(Outcome::Unreadable),
                Plan::Write { update, condition } => (update, condition),
            };
            let Some(pk) = item.get(PK).cloned() else {
                return Ok(Outcome::Unreadable);
            };
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, pk)
                .update_expression(update.expression())
                .condition_expression(condition)
                .set_expression_attribute_names(Some(update.names))
                .set_expression_attribute_values(Some(update.values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Outcome::Updated),
                Err(SdkError::ServiceError(failure))
                    if failure.err().is_conditional_check_failed_exception() =>
                {
                    let now = match failure.into_err() {
                        UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                        _ => None,
                    };
                    // Deleted for good (a tombstone's time to live ran out): nothing to index.
                    let Some(now) = now else {
                        return Ok(Outcome::ChangedMeanwhile);
                    };
                    changed = true;
                    item = now;
                }
                Err(e) => return Err(classify("UpdateItem", &e)),
            }
        }
        Ok(Outcome::ChangedMeanwhile)
    }

    /// What `item` needs, computed from its own attributes.
    fn plan(&self, item: &Item) -> Plan {
        match item.get("kind") {
            Some(AttributeValue::S(kind)) if kind == KIND_CUSTOMER => plan_customer(item),
            Some(AttributeValue::S(kind)) if kind == KIND_DELETED => self.plan_tombstone(item),
            // Claims and idempotency records are filtered out of the scan; anything else is not
            // this crate's to touch.
            _ => Plan::Unreadable,
        }
    }

    fn plan_tombstone(&self, item: &Item) -> Plan {
        let id = match item.get("id") {
            Some(AttributeValue::S(id)) => CustomerId::parse(id).ok(),
            _ => None,
        };
        let Some(id) = id else {
            return Plan::Unreadable;
        };
        let mut update = UpdateExpression::default();
        let mut condition = Vec::new();
        let deleted_at = match item.get("updatedAt") {
            Some(AttributeValue::S(at)) => {
                let Ok(at) = Timestamp::parse(at) else {
                    return Plan::Unreadable;
                };
                condition.push(unchanged(&mut update, item, "updatedAt"));
                at
            }
            None => {
                // No time of its own: the time its time to live was counted from.
                let Some(at) = self.deleted_at_from_expiry(item) else {
                    return Plan::Unreadable;
                };
                update.set("updatedAt", s(&at.to_string()));
                condition.push(unchanged(&mut update, item, EXPIRES_AT));
                condition.push(format!(
                    "attribute_not_exists({})",
                    update.name("updatedAt")
                ));
                at
            }
            Some(_) => return Plan::Unreadable,
        };
        for (attribute, value) in feed_keys(&id, deleted_at) {
            set_if_other(&mut update, item, attribute, value);
        }
        // Keys made of customer data have no place on a tombstone.
        for attribute in [CREATED_KEY, NAME_KEY, FIRST_NAME_KEY] {
            if item.contains_key(attribute) {
                update.remove(attribute);
            }
        }
        finish(update, condition, item, KIND_DELETED)
    }

    /// When a tombstone without `updatedAt` was made: its expiry less the retention.
    fn deleted_at_from_expiry(&self, item: &Item) -> Option<Timestamp> {
        let Some(AttributeValue::N(seconds)) = item.get(EXPIRES_AT) else {
            return None;
        };
        let expires_at = seconds.parse::<i64>().ok()?.checked_mul(1000)?;
        let retention = i64::try_from(self.tombstone_retention.as_millis()).ok()?;
        Timestamp::from_unix_millis(expires_at.checked_sub(retention)?).ok()
    }
}

fn plan_customer(item: &Item) -> Plan {
    let Ok(customer) = customer_from_item(item.clone()) else {
        return Plan::Unreadable;
    };
    let mut update = UpdateExpression::default();
    for (attribute, value) in listing_keys(&customer) {
        set_if_other(&mut update, item, attribute, value);
    }
    // Every attribute a key is made of (the id is the item's key).
    let condition = ["createdAt", "updatedAt", "firstName", "lastName"]
        .into_iter()
        .map(|attribute| unchanged(&mut update, item, attribute))
        .collect();
    finish(update, condition, item, KIND_CUSTOMER)
}

/// Sets `attribute` to `value` unless the item holds exactly that.
fn set_if_other(update: &mut UpdateExpression, item: &Item, attribute: &str, value: String) {
    if !matches!(item.get(attribute), Some(AttributeValue::S(stored)) if *stored == value) {
        update.set(attribute, AttributeValue::S(value));
    }
}

/// The condition that `attribute` still holds what `item` holds (or is still absent).
fn unchanged(update: &mut UpdateExpression, item: &Item, attribute: &str) -> String {
    let name = update.name(attribute);
    match item.get(attribute) {
        Some(value) => {
            let placeholder = format!(":seen{}", update.values.len());
            update.values.insert(placeholder.clone(), value.clone());
            format!("{name} = {placeholder}")
        }
        None => format!("attribute_not_exists({name})"),
    }
}

/// The plan of `update`: nothing when it is empty, else the write conditioned on `condition`, on
/// the item's kind and on its version.
fn finish(
    mut update: UpdateExpression,
    mut condition: Vec<String>,
    item: &Item,
    kind: &str,
) -> Plan {
    if update.is_empty() {
        return Plan::Current;
    }
    condition.push(unchanged(&mut update, item, "version"));
    let kind_name = update.name("kind");
    update.values.insert(":kind".to_owned(), s(kind));
    condition.push(format!("{kind_name} = :kind"));
    Plan::Write {
        update,
        condition: condition.join(" AND "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_is_a_key_of_this_table_and_prints_as_it_parses() {
        let position: BackfillPosition = "CUSTOMER#c1".parse().unwrap();
        assert_eq!(position.to_string(), "CUSTOMER#c1");
        for bad in ["", "c1", "CUSTOMER#", "EMAIL#ada@example.com"] {
            assert!(bad.parse::<BackfillPosition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_size_stays_within_what_a_scan_takes() {
        assert_eq!(Backfill::new().page_size(0).page_size, 1);
        assert_eq!(Backfill::new().page_size(5000).page_size, 1000);
        assert_eq!(Backfill::new().page_size, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn a_report_prints_counts_and_where_to_resume() {
        let mut report = BackfillReport {
            scanned: 3,
            updated: 2,
            already_current: 1,
            ..BackfillReport::default()
        };
        assert_eq!(
            report.to_string(),
            "scanned 3, updated 2, already current 1, changed meanwhile 0, unreadable 0; \
             reached the end of the table"
        );
        report.resume_after = Some(BackfillPosition("CUSTOMER#c9".to_owned()));
        assert!(report.to_string().ends_with("resume after CUSTOMER#c9"));
    }

    #[test]
    fn a_stopped_backfill_says_where_to_resume_and_names_no_field() {
        let error = |resume_after| BackfillError {
            report: BackfillReport {
                scanned: 7,
                resume_after,
                ..BackfillReport::default()
            },
            source: RepositoryError::unavailable("throttled"),
        };
        assert_eq!(
            error(None).to_string(),
            "the listing-key backfill stopped after 7 items (updated 0, already current 0, \
             changed meanwhile 0, unreadable 0); run it again from the start"
        );
        let position = BackfillPosition("CUSTOMER#c9".to_owned());
        assert!(
            error(Some(position))
                .to_string()
                .ends_with("; resume after CUSTOMER#c9")
        );
    }
}
