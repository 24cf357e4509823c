//! The claims check: an operator's walk of the table that finds the email claims that went wrong
//! and, when asked, repairs them.
//!
//! A customer with an email owns the claim on it (`EMAIL#<SHA-256 of the lower-cased email>`,
//! `customerId`), written and released in the same transactions as the customer: that is what
//! makes emails unique (see the [crate docs](crate)). The API keeps claims right, but a bug, a
//! manual edit or a partial restore can leave them wrong, in ways no single operation of the API
//! can see:
//!
//! | finding | what the items say | repair |
//! | --- | --- | --- |
//! | [`Missing`](ClaimProblem::Missing) | a customer holds an email that nothing claims: anyone may take it | claim it for the customer |
//! | [`Stale`](ClaimProblem::Stale) | a customer's email is claimed for another customer, which is gone or holds another email | move the claim to the customer |
//! | [`Shared`](ClaimProblem::Shared) | two customers hold one email (uniqueness was broken), and the claim names the other | none: a person decides who keeps it |
//! | [`Orphan`](ClaimProblem::Orphan) | a claim names a customer that is gone or holds another email, and no customer holds the email: it blocks the email for everyone | delete the claim |
//!
//! # The walk
//!
//! Claims are keyed by a digest, so nothing but a `Scan` finds them all: like the listing-key
//! backfill, the check is an operator's tool, run with credentials that may scan (see
//! [Permissions](#permissions)). It reads the table in pages of a consistent `Scan` projected on
//! the five attributes it needs (`pk`, `kind`, `id`, `emailKey`, `customerId`): it never reads a
//! name, an address or a phone, and it keeps no email past the page under way (what it keeps for
//! later are claim keys, which are digests, and ids). Every kind of item is walked and counted
//! (tombstones, idempotency records, the cursor key, kinds it does not know); only customers with
//! an email and claims are checked.
//!
//! Each page's pairs are then read from their other side, with one consistent `BatchGetItem` per
//! 100 keys: the claim of each customer with an email, the customer each claim names. A pair that
//! agrees (the claim names the customer, the customer holds the email the claim is keyed by) is
//! fine. One that does not is read again with `TransactGetItems`, which reads the customer, the
//! claim and the customer the claim names as of one instant, and only what that snapshot shows is
//! reported. The scan and the batch read are moments apart, and the API may write in between (an
//! email change releases one claim and takes another): a finding is never made of two moments. A
//! pair whose customer no longer holds the email it had in the scan was changed by the API, which
//! keeps claims right: it is counted as changed meanwhile, not judged.
//!
//! # Orphans need the whole walk
//!
//! A claim alone cannot tell an orphan from the stale claim of a customer that holds its email:
//! its key is a digest, and no index finds a customer by it. Only the customers can say, and the
//! walk meets each of them once, anywhere in the table. So a claim that names a customer which
//! does not hold its email is a suspect until the walk ends: if a customer of the walk holds that
//! email, its own check has reported the claim (stale or shared) and repaired it if it could;
//! otherwise the claim is read once more, and reported as an orphan.
//!
//! That conclusion holds for a walk of the whole table only. No customer can come to hold the
//! email while the claim exists (a create or an email change claims the email only if it is
//! unclaimed), so a customer that holds it at the end held it all along, and a `Scan` returns
//! every item that exists all along. A walk resumed after a position has not read the customers
//! before it: it reports its orphans but never deletes them ([`ClaimRepair::NeedsWholeWalk`]), and
//! one of them may be the stale claim of a customer before the position.
//!
//! # Repairs, and why their conditions suffice
//!
//! Without [`ClaimsCheck::repair`] the check writes nothing. With it, each repair is one
//! `TransactWriteItems`: one write of the claim, and condition checks on the customers involved,
//! all evaluated at the instant it commits and applied together or not at all. Repairs write
//! claims only: no customer's version, data or write token changes. A repair whose condition fails
//! is not tried again on what the check read: it is reported [`Taken`](ClaimRepair::Taken) or
//! [`ChangedMeanwhile`](ClaimRepair::ChangedMeanwhile), and the next check looks again.
//!
//! The arguments rest on what the API's writes do with claims: they put a claim only if there is
//! none (`attribute_not_exists(pk)`, in the transaction that writes its customer), and delete one
//! only while their own customer holds that email, on the condition that the claim names that
//! customer or is absent. So a claim that names a customer which does not hold its email stays
//! exactly as it is until a repair (or a hand) changes it, and nobody can come to hold its email
//! meanwhile.
//!
//! - **Missing: put the claim**, on the conditions that there is still no claim
//!   (`attribute_not_exists(pk)`) and that the customer still holds the email (`kind = customer`,
//!   `emailKey` as read). A create or an email change that claims the same email for another
//!   customer puts its claim on the same condition, so exactly one of the two commits. When the
//!   other does, the repair fails and reports the email [`Taken`](ClaimRepair::Taken) by that
//!   customer, and does not take it back: the two now share the email, and a person decides. The
//!   condition on the customer makes the claim true at the instant it is written: an email change
//!   or a delete of the customer commits either before it (the repair fails) or after it, and
//!   then releases the claim, which names the customer.
//! - **Stale: move the claim**, a put of the customer's claim on the conditions that the claim
//!   still names the other customer (`customerId` as read), that the customer still holds the
//!   email, and that the other customer still does not (it is absent, a tombstone, without email,
//!   or holds another email). The first makes the repair replace the very claim it judged, which,
//!   as above, the API does not change. The second is the missing claim's. The third means that
//!   the repair never takes an email from a customer that holds it: that would be the shared case.
//! - **Orphan: delete the claim**, on the conditions that it still names the customer it named
//!   (`customerId` as read) and that this customer still does not hold the email (it is absent, a
//!   tombstone, without email, or holds the email it held when read, which is another). The first
//!   settles the race with a create: should the claim go away and a create claim the email for
//!   its new customer in between, the claim now names that customer, and the delete is refused.
//!   The second refuses the one case the first lets through, the customer named coming back with
//!   that very email in between (deleted, then created again with it): its claim is then its own,
//!   and stays. (The second cannot name the email, which the check does not know from a digest;
//!   "as read" is enough, because what it admits never holds this email.)
//! - **Shared: never repaired.** Both customers hold the email; which one keeps it is a decision
//!   (merge the records, change one email). Once made through the API, the claims follow.
//!
//! An email that two customers hold and whose claim is missing (or stale) is reported missing (or
//! stale) for both, since neither customer's check sees the other customer. A repair claims it for
//! the first of the two the walk meets, and then reports the second as sharing it.
//!
//! # Permissions
//!
//! The check needs `dynamodb:Scan`, `dynamodb:BatchGetItem` and `dynamodb:GetItem` (for each item
//! a `TransactGetItems` reads) on the table; with `repair`, also `dynamodb:PutItem`,
//! `dynamodb:DeleteItem` and `dynamodb:ConditionCheckItem` (for the items of its transactions). An
//! operator's credentials: the function roles of the templates may not `Scan`.
//!
//! # Requests
//!
//! Per page, one consistent `Scan` and one `BatchGetItem` per 100 customers with an email and
//! claims (sent again for the keys DynamoDB leaves unprocessed under load): a clean table costs two
//! requests per page. Per pair that does not agree, one `TransactGetItems` (two when the claim
//! names someone else than the batch read); per suspected orphan, one more at the end of the walk;
//! per repair, one `TransactWriteItems`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Get, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactGetItem, TransactWriteItem,
};
use crm_domain::{CustomerId, RepositoryError};

use super::DynamoCustomerRepository;
use super::retry::{Attempt, Attempts, retry_races};
use super::transaction::cancelled_unexpectedly;
use crate::error::{DynamoFailure, ItemOutcome, RETRY_AFTER, classify};
use crate::item::{
    Item, KIND_CUSTOMER, KIND_EMAIL, PK, claim_item, customer_pk, email_pk, is_live, is_valid_pk,
    item_email_key, key, s,
};

/// The name of the check in errors.
const OPERATION: &str = "claims check";

/// How many items one `Scan` of the check reads unless told otherwise.
const DEFAULT_PAGE_SIZE: u16 = 100;

/// The most keys one `BatchGetItem` takes.
const BATCH_KEYS: usize = 100;

/// How many snapshots the check takes of one pair whose claim keeps naming someone else than the
/// last snapshot read, before it leaves the pair to the next check.
const SNAPSHOTS_PER_PAIR: usize = 3;

/// The attribute of a claim that names its customer.
const OWNER: &str = "customerId";

/// All that the check reads of an item.
const PROJECTION: &str = "#pk, #kind, #id, #emailKey, #customerId";

/// A customer that does not hold the email `:email`.
const NOT_HOLDING: &str = "attribute_not_exists(#pk) OR #kind <> :customer \
                           OR attribute_not_exists(#emailKey) OR #emailKey <> :email";

/// A customer that holds the email `:email`.
const HOLDING: &str = "#kind = :customer AND #emailKey = :email";

/// How a claims check runs: whether it repairs, its page size, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsCheck {
    repair: bool,
    page_size: u16,
    resume_after: Option<ClaimsPosition>,
}

impl Default for ClaimsCheck {
    fn default() -> Self {
        Self {
            repair: false,
            page_size: DEFAULT_PAGE_SIZE,
            resume_after: None,
        }
    }
}

impl ClaimsCheck {
    /// A check of the whole table that writes nothing, 100 items per `Scan`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same check, repairing what it finds (`true`) or only reporting it (`false`, the
    /// default). Shared emails are never repaired; see the
    /// [crate docs](crate#checking-the-email-claims) for each repair and its conditions.
    #[must_use]
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// The same check reading `items` items per `Scan` (1–1000; out-of-range values are clamped).
    /// A page is also cut at 1 MB, as every `Scan` is.
    #[must_use]
    pub fn page_size(mut self, items: u16) -> Self {
        self.page_size = items.clamp(1, 1000);
        self
    }

    /// The same check starting after `position`, where an earlier one stopped (its last
    /// [`ClaimsReport::resume_after`]). A resumed check reports orphans but does not delete them:
    /// only a walk of the whole table can tell them from stale claims.
    #[must_use]
    pub fn resume_after(mut self, position: ClaimsPosition) -> Self {
        self.resume_after = Some(position);
        self
    }
}

/// Where a claims check stands: the key of the last item it read, to resume after.
///
/// It prints as that key (`CUSTOMER#<id>`, or a key of a claim or an idempotency record, which
/// are digests) and parses back from it. It names at most a customer's id, never a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsPosition(String);

impl fmt::Display for ClaimsPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClaimsPosition {
    type Err = InvalidClaimsPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_valid_pk(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidClaimsPosition)
        }
    }
}

/// A text that is not a position a claims check printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a claims check position: expected the key of an item of this table, as a report printed"
)]
pub struct InvalidClaimsPosition;

/// What is wrong with a claim; see the [crate docs](crate#checking-the-email-claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimProblem {
    /// The customer holds an email that no claim claims: another customer may take it.
    Missing,
    /// The customer's email is claimed for `named`, which is gone or holds another email.
    Stale {
        /// The customer the claim names.
        named: CustomerId,
    },
    /// The customer and `with` both hold the email; the claim names `with`. Never repaired by
    /// the check: a person decides which customer keeps the email.
    Shared {
        /// The other customer, which the claim names.
        with: CustomerId,
    },
    /// The claim names the customer, which is gone or holds another email, and no customer holds
    /// the email the claim is keyed by: it blocks that email for everyone.
    Orphan,
}

impl fmt::Display for ClaimProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("its email is not claimed (missing claim)"),
            Self::Stale { named } => write!(
                f,
                "its email is claimed for customer {named}, which does not hold it (stale claim)"
            ),
            Self::Shared { with } => write!(
                f,
                "customer {with} holds the same email and its claim (shared email)"
            ),
            Self::Orphan => f.write_str(
                "a claim names it, but it is gone or holds another email (orphan claim)",
            ),
        }
    }
}

/// What the check did about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRepair {
    /// Nothing: the check ran without [`repair`](ClaimsCheck::repair).
    ReportOnly,
    /// Repaired, with one conditional write.
    Repaired,
    /// Nothing, and never by the check: two customers hold the email, and a person decides which
    /// one keeps it.
    NeedsDecision,
    /// Nothing: customer `by` claimed the missing email between the check's read and its write
    /// (the email is now shared by the two; a person decides). The check does not take it back.
    Taken {
        /// The customer that claimed the email.
        by: CustomerId,
    },
    /// Nothing: the items changed between the check's read and its write (an API write); the
    /// next check looks again.
    ChangedMeanwhile,
    /// Nothing: an orphan found by a check that did not walk the whole table (it resumed after a
    /// position) may be the stale claim of a customer it did not read; a check from the start
    /// deletes it.
    NeedsWholeWalk,
}

impl ClaimRepair {
    /// Whether the finding was repaired.
    pub fn is_repaired(&self) -> bool {
        *self == Self::Repaired
    }
}

impl fmt::Display for ClaimRepair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReportOnly => f.write_str("not repaired (the check ran without repair)"),
            Self::Repaired => f.write_str("repaired"),
            Self::NeedsDecision => {
                f.write_str("left alone: a person decides which customer keeps the email")
            }
            Self::Taken { by } => write!(
                f,
                "not repaired: customer {by} claimed the email meanwhile, and now shares it"
            ),
            Self::ChangedMeanwhile => {
                f.write_str("not repaired: the items changed meanwhile; check again")
            }
            Self::NeedsWholeWalk => f.write_str(
                "not repaired: only a check of the whole table deletes orphans (this one resumed)",
            ),
        }
    }
}

/// One claim gone wrong, named by customer id and claim key, never by email.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimFinding {
    /// The customer the finding is about: the one holding the email (missing, stale, shared), or
    /// the one an orphan claim names.
    pub customer: CustomerId,
    /// What is wrong.
    pub problem: ClaimProblem,
    /// The key of the claim item concerned, present or not: `EMAIL#` and the SHA-256 of the
    /// lower-cased email, never the address.
    pub claim: String,
    /// What the check did about it.
    pub repair: ClaimRepair,
}

impl fmt::Display for ClaimFinding {
    /// One line: the customer, what is wrong, what was done; an orphan also names its claim's key
    /// (several orphans may name one customer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "customer {}: {}", self.customer, self.problem)?;
        if self.problem == ClaimProblem::Orphan {
            write!(f, ", {}", self.claim)?;
        }
        write!(f, "; {}", self.repair)
    }
}

/// What a claims check found and did, so far or in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimsReport {
    /// Items read, of every kind.
    pub scanned: u64,
    /// Customers with an email, each checked against its claim.
    pub customers_checked: u64,
    /// Claims, each checked against the customer it names.
    pub claims_checked: u64,
    /// Findings of each kind: claims missing, stale claims, shared emails, orphan claims.
    pub missing: u64,
    /// See [`missing`](Self::missing).
    pub stale: u64,
    /// See [`missing`](Self::missing).
    pub shared: u64,
    /// See [`missing`](Self::missing).
    pub orphaned: u64,
    /// Findings repaired.
    pub repaired: u64,
    /// Pairs that the API changed between the check's reads (a customer that changed or cleared
    /// its email, a claim released), or that kept changing: not judged. The next check looks
    /// again.
    pub changed_meanwhile: u64,
    /// Customers and claims without what the check needs (a valid `id`, a claim's
    /// `customerId`): left alone, to repair by hand.
    pub unreadable: u64,
    /// Each finding, in the order found: the customers' as the walk meets them, the orphans at
    /// the end of the walk. A progress callback can print those past the ones it has printed.
    pub findings: Vec<ClaimFinding>,
    /// Whether the walk started at the beginning of the table (no
    /// [`resume_after`](ClaimsCheck::resume_after)): only such a walk deletes orphans.
    pub from_start: bool,
    /// Where a check that stops now would resume: after this key. `None` once the walk has reached
    /// the end of the table.
    pub resume_after: Option<ClaimsPosition>,
}

impl ClaimsReport {
    /// Whether the check found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    fn counts(&self) -> String {
        format!(
            "{} items, {} customers with an email, {} claims: missing {}, stale {}, shared {}, \
             orphaned {}; repaired {}, changed meanwhile {}, unreadable {}",
            self.scanned,
            self.customers_checked,
            self.claims_checked,
            self.missing,
            self.stale,
            self.shared,
            self.orphaned,
            self.repaired,
            self.changed_meanwhile,
            self.unreadable
        )
    }
}

impl fmt::Display for ClaimsReport {
    /// The counts and where the walk stands; the findings print one by one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checked {}", self.counts())?;
        match &self.resume_after {
            Some(position) => write!(f, "; resume after {position}"),
            None => f.write_str("; reached the end of the table"),
        }
    }
}

/// A claims check that stopped before its end: what it found and did until then (with the
/// position to resume after), and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("{}", stopped(report))]
pub struct ClaimsError {
    /// What the check did before it stopped. Resume after
    /// [`report.resume_after`](ClaimsReport::resume_after) (from the start when `None`): the items
    /// of the page under way are looked at again, and a repair is never applied twice. The
    /// suspected orphans of a walk that stops are not reported: a check that walks to the end
    /// finds them again.
    pub report: ClaimsReport,
    /// Why it stopped: DynamoDB unavailable or refusing (`Unexpected` for a missing permission).
    #[source]
    pub source: RepositoryError,
}

/// What a stopped check says: what it did, and where to resume.
fn stopped(report: &ClaimsReport) -> String {
    let counts = format!("the claims check stopped after {}", report.counts());
    match &report.resume_after {
        Some(position) => format!("{counts}; resume after {position}"),
        None => format!("{counts}; run it again from the start"),
    }
}

/// The state of one walk: its report, and what it keeps for its end.
struct Walk {
    report: ClaimsReport,
    repair: bool,
    /// Claims that named a customer not holding their email when read: orphans, unless a customer
    /// of the walk holds that email.
    suspects: Vec<Suspect>,
    /// The claims that a customer's check found not naming it, whatever it concluded: stale or
    /// shared claims (reported), missing ones, or claims of a customer that changed meanwhile
    /// (left to the next check). None of them is known to be an orphan.
    claims_of_customers: HashSet<String>,
}

/// A claim that named a customer not holding its email.
struct Suspect {
    claim: String,
    named: CustomerId,
}

impl Walk {
    fn found(&mut self, finding: ClaimFinding) {
        let report = &mut self.report;
        match finding.problem {
            ClaimProblem::Missing => report.missing += 1,
            ClaimProblem::Stale { .. } => report.stale += 1,
            ClaimProblem::Shared { .. } => report.shared += 1,
            ClaimProblem::Orphan => report.orphaned += 1,
        }
        if finding.repair.is_repaired() {
            report.repaired += 1;
        }
        report.findings.push(finding);
    }

    fn stopped(self, source: RepositoryError) -> ClaimsError {
        ClaimsError {
            report: self.report,
            source,
        }
    }
}

/// Items read at one instant, by key: `None` for a key read and found absent; a key not read is
/// not there.
type Snapshot = HashMap<String, Option<Item>>;

/// What the check makes of a scanned item.
#[derive(Debug, PartialEq, Eq)]
enum Scanned {
    /// A customer with an email: its id and lower-cased email.
    Customer { id: CustomerId, email: String },
    /// A claim: its key and the customer it names.
    Claim { claim: String, named: CustomerId },
    /// A customer or a claim without what the check needs.
    Unreadable,
    /// Anything else: a customer without email, a tombstone, an idempotency record, a setting,
    /// a kind this version does not know.
    Other,
}

fn scanned(item: &Item) -> Scanned {
    match text(item, "kind") {
        Some(KIND_CUSTOMER) => {
            let id = text(item, "id").and_then(|id| CustomerId::parse(id).ok());
            match (id, item_email_key(item)) {
                (Some(id), Some(email)) => Scanned::Customer {
                    id,
                    email: email.to_owned(),
                },
                (Some(_), None) => Scanned::Other,
                (None, _) => Scanned::Unreadable,
            }
        }
        Some(KIND_EMAIL) => match (text(item, PK), claim_owner(item)) {
            (Some(claim), Some(named)) => Scanned::Claim {
                claim: claim.to_owned(),
                named,
            },
            _ => Scanned::Unreadable,
        },
        _ => Scanned::Other,
    }
}

/// What a snapshot says of a customer's claim on its email.
#[derive(Debug, PartialEq, Eq)]
enum CustomerJudgement {
    /// The claim names the customer.
    Fine,
    /// The customer is gone or no longer holds that email: the API changed it, claims with it.
    Changed,
    /// The claim names this customer, whom the snapshot did not read: read again with it.
    ReadWith(CustomerId),
    /// The claim names no customer: its own check counts it.
    Unreadable,
    Problem(ClaimProblem),
}

/// Judges customer `id`'s claim on `email` from `snapshot` (which read the customer and the claim).
fn judge_customer(id: &CustomerId, email: &str, snapshot: &Snapshot) -> CustomerJudgement {
    let customer = read(snapshot, &customer_pk(id));
    if !customer.is_some_and(|c| is_live(c) && item_email_key(c) == Some(email)) {
        return CustomerJudgement::Changed;
    }
    let claim = email_pk(email);
    let Some(claim_item) = read(snapshot, &claim) else {
        return CustomerJudgement::Problem(ClaimProblem::Missing);
    };
    let Some(named) = claim_owner(claim_item) else {
        return CustomerJudgement::Unreadable;
    };
    if named == *id {
        return CustomerJudgement::Fine;
    }
    match snapshot.get(&customer_pk(&named)) {
        None => CustomerJudgement::ReadWith(named),
        Some(other) if holds(other.as_ref(), &claim) => {
            CustomerJudgement::Problem(ClaimProblem::Shared { with: named })
        }
        Some(_) => CustomerJudgement::Problem(ClaimProblem::Stale { named }),
    }
}

/// What a snapshot says of a claim.
#[derive(Debug, PartialEq, Eq)]
enum ClaimJudgement {
    /// The customer it names holds its email.
    Fine,
    /// It is gone: released by its customer.
    Gone,
    /// It names no customer.
    Unreadable,
    /// It names this customer, whom the snapshot did not read.
    ReadWith(CustomerId),
    /// It names this customer, which does not hold its email.
    NotHeld(CustomerId),
}

/// Judges the claim keyed `claim` from `snapshot` (which read it).
fn judge_claim(claim: &str, snapshot: &Snapshot) -> ClaimJudgement {
    let Some(claim_item) = read(snapshot, claim) else {
        return ClaimJudgement::Gone;
    };
    let Some(named) = claim_owner(claim_item) else {
        return ClaimJudgement::Unreadable;
    };
    match snapshot.get(&customer_pk(&named)) {
        None => ClaimJudgement::ReadWith(named),
        Some(customer) if holds(customer.as_ref(), claim) => ClaimJudgement::Fine,
        Some(_) => ClaimJudgement::NotHeld(named),
    }
}

/// The item read under `key`, if it was read and is there.
fn read<'a>(snapshot: &'a Snapshot, key: &str) -> Option<&'a Item> {
    snapshot.get(key).and_then(Option::as_ref)
}

fn text<'a>(item: &'a Item, attribute: &str) -> Option<&'a str> {
    match item.get(attribute) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

/// The customer a claim names, if it names one.
fn claim_owner(claim: &Item) -> Option<CustomerId> {
    text(claim, OWNER).and_then(|id| CustomerId::parse(id).ok())
}

/// Whether `customer` is a customer holding the email that the claim keyed `claim` claims.
fn holds(customer: Option<&Item>, claim: &str) -> bool {
    customer
        .filter(|c| is_live(c))
        .and_then(item_email_key)
        .is_some_and(|email| email_pk(email) == claim)
}

/// The attribute names of an expression whose placeholders are `#` and the attribute's name.
fn names(placeholders: &[&str]) -> HashMap<String, String> {
    placeholders
        .iter()
        .map(|p| ((*p).to_owned(), p.trim_start_matches('#').to_owned()))
        .collect()
}

fn projection_names() -> HashMap<String, String> {
    names(&["#pk", "#kind", "#id", "#emailKey", "#customerId"])
}

fn values<const N: usize>(pairs: [(&str, AttributeValue); N]) -> HashMap<String, AttributeValue> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

impl DynamoCustomerRepository {
    /// Walks the whole table and checks every email claim against its customer, and every
    /// customer with an email against its claim; repairs what can be repaired when
    /// [`check.repair`](ClaimsCheck::repair) is on. See the
    /// [crate docs](crate#checking-the-email-claims) for the findings, the repairs and why their
    /// conditions make them safe while the service runs.
    ///
    /// Reads the table with a paginated, consistent `Scan` (`check`'s page size; from the start, or
    /// after the position it gives). Calls `progress` after every page with the report so far,
    /// the last time with the final report. Runs until the end of the table, each request within
    /// the repository's deadline. Without `repair` it writes nothing. Safe to run again: a
    /// repaired table reports nothing more (shared emails excepted, until a person decides).
    ///
    /// Needs `dynamodb:Scan`, `dynamodb:BatchGetItem` and `dynamodb:GetItem` on the table (with
    /// `repair`, also `dynamodb:PutItem`, `dynamodb:DeleteItem` and
    /// `dynamodb:ConditionCheckItem`): an operator's credentials, not the function role's.
    ///
    /// ```no_run
    /// # async fn demo(repository: &crm_dynamo::DynamoCustomerRepository) -> Result<(), crm_dynamo::ClaimsError> {
    /// use crm_dynamo::ClaimsCheck;
    ///
    /// let check = ClaimsCheck::new().repair(true);
    /// let report = repository
    ///     .check_claims(&check, |so_far| eprintln!("{so_far}"))
    ///     .await?;
    /// for finding in &report.findings {
    ///     println!("{finding}");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A [`ClaimsError`] when DynamoDB fails a request past its retries (unavailable, throttling,
    /// a missing permission): it holds the report so far and the position to resume after.
    pub async fn check_claims(
        &self,
        check: &ClaimsCheck,
        mut progress: impl FnMut(&ClaimsReport) + Send,
    ) -> Result<ClaimsReport, ClaimsError> {
        let mut walk = Walk {
            report: ClaimsReport {
                from_start: check.resume_after.is_none(),
                resume_after: check.resume_after.clone(),
                ..ClaimsReport::default()
            },
            repair: check.repair,
            suspects: Vec::new(),
            claims_of_customers: HashSet::new(),
        };
        loop {
            let start = walk.report.resume_after.clone();
            let (items, last) = match self
                .within(OPERATION, self.claims_page(check.page_size, start))
                .await
            {
                Ok(page) => page,
                Err(source) => return Err(walk.stopped(source)),
            };
            if let Err(source) = self.check_page(&mut walk, items).await {
                return Err(walk.stopped(source));
            }
            walk.report.resume_after = last;
            if walk.report.resume_after.is_none() {
                if let Err(source) = self.settle_suspects(&mut walk).await {
                    return Err(walk.stopped(source));
                }
                progress(&walk.report);
                return Ok(walk.report);
            }
            progress(&walk.report);
        }
    }

    /// One consistent `Scan` of at most `limit` items after `start`, projected on what the check
    /// reads: the items, and where the scan stopped if not at the end of the table.
    async fn claims_page(
        &self,
        limit: u16,
        start: Option<ClaimsPosition>,
    ) -> Result<(Vec<Item>, Option<ClaimsPosition>), RepositoryError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::from(limit))
            // Consistent, so that a check right after a repair sees it.
            .consistent_read(true)
            .projection_expression(PROJECTION)
            .set_expression_attribute_names(Some(projection_names()))
            .set_exclusive_start_key(start.map(|position| key(position.0)))
            .send()
            .await
            .map_err(|e| classify("Scan", &e))?;
        let last = output
            .last_evaluated_key
            .as_ref()
            .and_then(|k| text(k, PK))
            .map(|pk| ClaimsPosition(pk.to_owned()));
        Ok((output.items.unwrap_or_default(), last))
    }

    /// Checks the customers with an email and the claims of one page: reads the other side of
    /// every pair at once, and looks closer at the pairs that do not agree.
    async fn check_page(&self, walk: &mut Walk, items: Vec<Item>) -> Result<(), RepositoryError> {
        let mut customers = Vec::new();
        let mut claims = Vec::new();
        for item in &items {
            walk.report.scanned += 1;
            match scanned(item) {
                Scanned::Customer { id, email } => customers.push((id, email)),
                Scanned::Claim { claim, named } => claims.push((claim, named)),
                Scanned::Unreadable => walk.report.unreadable += 1,
                Scanned::Other => {}
            }
        }
        drop(items);
        let mut keys: Vec<String> = customers
            .iter()
            .map(|(_, email)| email_pk(email))
            .chain(claims.iter().map(|(_, named)| customer_pk(named)))
            .collect();
        // BatchGetItem refuses a key twice (a customer's claim may name a customer of the page).
        keys.sort_unstable();
        keys.dedup();
        let other_side = self.read_many(keys).await?;
        for (id, email) in customers {
            walk.report.customers_checked += 1;
            let claim = email_pk(&email);
            let named = other_side.get(&claim).and_then(claim_owner);
            if named.as_ref() == Some(&id) {
                continue;
            }
            walk.claims_of_customers.insert(claim);
            self.within(OPERATION, self.check_customer(walk, &id, &email, named))
                .await?;
        }
        for (claim, named) in claims {
            walk.report.claims_checked += 1;
            if holds(other_side.get(&customer_pk(&named)), &claim) {
                continue;
            }
            self.within(OPERATION, self.check_claim(walk, claim, named))
                .await?;
        }
        Ok(())
    }

    /// Looks closer at customer `id`, whose claim on `email` did not name it in the batch read
    /// (it named `named`, or was absent): judges it on a snapshot, reports and repairs.
    async fn check_customer(
        &self,
        walk: &mut Walk,
        id: &CustomerId,
        email: &str,
        mut named: Option<CustomerId>,
    ) -> Result<(), RepositoryError> {
        let claim = email_pk(email);
        for _ in 0..SNAPSHOTS_PER_PAIR {
            let mut keys = vec![customer_pk(id), claim.clone()];
            keys.extend(named.as_ref().filter(|n| *n != id).map(customer_pk));
            let snapshot = self.snapshot(keys).await?;
            let problem = match judge_customer(id, email, &snapshot) {
                CustomerJudgement::Fine | CustomerJudgement::Unreadable => return Ok(()),
                CustomerJudgement::Changed => {
                    walk.report.changed_meanwhile += 1;
                    return Ok(());
                }
                CustomerJudgement::ReadWith(other) => {
                    named = Some(other);
                    continue;
                }
                CustomerJudgement::Problem(problem) => problem,
            };
            let repair = match &problem {
                ClaimProblem::Shared { .. } => ClaimRepair::NeedsDecision,
                _ if !walk.repair => ClaimRepair::ReportOnly,
                _ => self.repair_claim_of(id, email, &problem).await?,
            };
            walk.found(ClaimFinding {
                customer: id.clone(),
                problem,
                claim,
                repair,
            });
            return Ok(());
        }
        walk.report.changed_meanwhile += 1;
        Ok(())
    }

    /// Claims `email` for customer `id`: in place of nothing (missing) or of the claim of the
    /// customer that does not hold it (stale). One transaction; see the module docs for its
    /// conditions.
    async fn repair_claim_of(
        &self,
        id: &CustomerId,
        email: &str,
        problem: &ClaimProblem,
    ) -> Result<ClaimRepair, RepositoryError> {
        let (condition, placeholders, claim_values) = match problem {
            ClaimProblem::Missing => ("attribute_not_exists(#pk)", ["#pk"], HashMap::new()),
            ClaimProblem::Stale { named } => (
                "#customerId = :named",
                ["#customerId"],
                values([(":named", s(named.as_str()))]),
            ),
            ClaimProblem::Shared { .. } | ClaimProblem::Orphan => {
                return Err(cancelled_unexpectedly(OPERATION));
            }
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim_item(email, id)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(&placeholders)))
            .set_expression_attribute_values((!claim_values.is_empty()).then_some(claim_values))
            // Who took the email, when a create claimed it first.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        let email_values = || values([(":customer", s(KIND_CUSTOMER)), (":email", s(email))]);
        let mut actions = vec![
            TransactWriteItem::builder().put(put).build(),
            self.condition_check(
                customer_pk(id),
                HOLDING,
                &["#kind", "#emailKey"],
                email_values(),
            )?,
        ];
        if let ClaimProblem::Stale { named } = problem {
            actions.push(self.condition_check(
                customer_pk(named),
                NOT_HOLDING,
                &["#pk", "#kind", "#emailKey"],
                email_values(),
            )?);
        }
        let Some(reasons) = self.commit_repair(actions).await? else {
            return Ok(ClaimRepair::Repaired);
        };
        let taken_by = match reasons.first() {
            Some((ItemOutcome::ConditionFailed, Some(claim))) => claim_owner(claim),
            _ => None,
        };
        Ok(match taken_by {
            Some(by) if *problem == ClaimProblem::Missing && by != *id => ClaimRepair::Taken { by },
            _ => ClaimRepair::ChangedMeanwhile,
        })
    }

    /// Looks closer at the claim keyed `claim`, whose customer `named` did not hold its email in
    /// the batch read: judges it on a snapshot, and keeps it for the end of the walk when it is
    /// a suspected orphan.
    async fn check_claim(
        &self,
        walk: &mut Walk,
        claim: String,
        mut named: CustomerId,
    ) -> Result<(), RepositoryError> {
        for _ in 0..SNAPSHOTS_PER_PAIR {
            let snapshot = self
                .snapshot(vec![claim.clone(), customer_pk(&named)])
                .await?;
            match judge_claim(&claim, &snapshot) {
                ClaimJudgement::Fine => return Ok(()),
                ClaimJudgement::Gone => {
                    walk.report.changed_meanwhile += 1;
                    return Ok(());
                }
                ClaimJudgement::Unreadable => {
                    walk.report.unreadable += 1;
                    return Ok(());
                }
                // Moved meanwhile, by a repair of this walk (a stale claim) or by hand.
                ClaimJudgement::ReadWith(other) => named = other,
                ClaimJudgement::NotHeld(named) => {
                    walk.suspects.push(Suspect { claim, named });
                    return Ok(());
                }
            }
        }
        walk.report.changed_meanwhile += 1;
        Ok(())
    }

    /// Reports the suspected orphans that no customer of the walk explained, once read again,
    /// and deletes them when asked to and the walk covered the whole table.
    async fn settle_suspects(&self, walk: &mut Walk) -> Result<(), RepositoryError> {
        for suspect in std::mem::take(&mut walk.suspects) {
            // A customer of the walk holds that email: its check reported the claim, or saw it
            // change and left it to the next check. Not an orphan, or not known to be one.
            if walk.claims_of_customers.contains(&suspect.claim) {
                continue;
            }
            self.within(OPERATION, self.settle(walk, suspect)).await?;
        }
        Ok(())
    }

    async fn settle(
        &self,
        walk: &mut Walk,
        Suspect { claim, named }: Suspect,
    ) -> Result<(), RepositoryError> {
        let named_key = customer_pk(&named);
        let snapshot = self
            .snapshot(vec![claim.clone(), named_key.clone()])
            .await?;
        match judge_claim(&claim, &snapshot) {
            ClaimJudgement::NotHeld(owner) if owner == named => {}
            ClaimJudgement::Unreadable => {
                walk.report.unreadable += 1;
                return Ok(());
            }
            ClaimJudgement::Fine => return Ok(()),
            // Released, or moved since it was first read: whatever it is now, the walk cannot
            // vouch that no customer holds its email.
            ClaimJudgement::Gone | ClaimJudgement::ReadWith(_) | ClaimJudgement::NotHeld(_) => {
                walk.report.changed_meanwhile += 1;
                return Ok(());
            }
        }
        let repair = if !walk.repair {
            ClaimRepair::ReportOnly
        } else if !walk.report.from_start {
            ClaimRepair::NeedsWholeWalk
        } else {
            self.delete_orphan(&claim, &named, read(&snapshot, &named_key))
                .await?
        };
        walk.found(ClaimFinding {
            customer: named,
            problem: ClaimProblem::Orphan,
            claim,
            repair,
        });
        Ok(())
    }

    /// Deletes the orphan claim keyed `claim`, which names `named`, as `named` was read (`seen`).
    /// One transaction; see the module docs for its conditions.
    async fn delete_orphan(
        &self,
        claim: &str,
        named: &CustomerId,
        seen: Option<&Item>,
    ) -> Result<ClaimRepair, RepositoryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(claim.to_owned())))
            .condition_expression("#customerId = :named")
            .set_expression_attribute_names(Some(names(&["#customerId"])))
            .set_expression_attribute_values(Some(values([(":named", s(named.as_str()))])))
            .build()
            .map_err(RepositoryError::unexpected)?;
        // Still not holding this email: as read, or in any state that holds no email. The email
        // itself is unknown here (the claim's key is its digest); the one it held when read
        // (if any) is known to be another.
        let mut condition = String::from(
            "attribute_not_exists(#pk) OR #kind <> :customer OR attribute_not_exists(#emailKey)",
        );
        let mut named_values = values([(":customer", s(KIND_CUSTOMER))]);
        if let Some(other_email) = seen.filter(|c| is_live(c)).and_then(item_email_key) {
            condition.push_str(" OR #emailKey = :seen");
            named_values.insert(":seen".to_owned(), s(other_email));
        }
        let actions = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.condition_check(
                customer_pk(named),
                &condition,
                &["#pk", "#kind", "#emailKey"],
                named_values,
            )?,
        ];
        Ok(match self.commit_repair(actions).await? {
            None => ClaimRepair::Repaired,
            Some(_) => ClaimRepair::ChangedMeanwhile,
        })
    }

    fn condition_check(
        &self,
        pk: String,
        condition: &str,
        placeholders: &[&str],
        values: HashMap<String, AttributeValue>,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(placeholders)))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Sends a repair: `Ok(None)` when it committed, the cancellation reasons when a condition
    /// failed. Another writer on the items (a transaction conflict) only makes it try again.
    async fn commit_repair(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<(ItemOutcome, Option<Item>)>>, RepositoryError> {
        let actions = &actions;
        retry_races(OPERATION, move || async move {
            // A fresh client request token per attempt (the SDK's): the SDK's own resends of one
            // attempt after a lost reply are applied at most once.
            match self.transact(actions.clone()).await? {
                None => Ok(Attempt::Done(None)),
                Some(reasons) if failed(&reasons, ItemOutcome::ConditionFailed) => {
                    Ok(Attempt::Done(Some(reasons)))
                }
                Some(reasons) if failed(&reasons, ItemOutcome::Retry) => Ok(Attempt::Retry),
                Some(_) => Err(cancelled_unexpectedly(OPERATION)),
            }
        })
        .await
    }

    /// The items under `keys`, read as of one instant (`TransactGetItems`, at most 100 distinct
    /// keys), projected on what the check reads.
    async fn snapshot(&self, keys: Vec<String>) -> Result<Snapshot, RepositoryError> {
        let mut gets = Vec::with_capacity(keys.len());
        for pk in &keys {
            let get = Get::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone())))
                .projection_expression(PROJECTION)
                .set_expression_attribute_names(Some(projection_names()))
                .build()
                .map_err(RepositoryError::unexpected)?;
            gets.push(TransactGetItem::builder().get(get).build());
        }
        let (gets, keys) = (&gets, &keys);
        retry_races(OPERATION, move || async move {
            let result = self
                .client
                .transact_get_items()
                .set_transact_items(Some(gets.clone()))
                .send()
                .await;
            match result {
                Ok(output) => {
                    let responses = output.responses.unwrap_or_default();
                    if responses.len() != keys.len() {
                        return Err(cancelled_unexpectedly(OPERATION));
                    }
                    let items = responses.into_iter().map(|response| response.item);
                    Ok(Attempt::Done(keys.iter().cloned().zip(items).collect()))
                }
                // A write under way on one of the items: read again once it is done.
                Err(SdkError::ServiceError(failure))
                    if matches!(
                        failure.err(),
                        TransactGetItemsError::TransactionCanceledException(e)
                            if e.cancellation_reasons().iter().any(|r| {
                                ItemOutcome::from_code(r.code()) == ItemOutcome::Retry
                            })
                    ) =>
                {
                    Ok(Attempt::Retry)
                }
                Err(e) => Err(classify("TransactGetItems", &e)),
            }
        })
        .await
    }

    /// The items under `keys`, read consistently with `BatchGetItem` (100 keys per request),
    /// projected on what the check reads: by key, those that are there. Each batch is bounded by
    /// the deadline on its own.
    async fn read_many(&self, keys: Vec<String>) -> Result<HashMap<String, Item>, RepositoryError> {
        let mut found = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut batch = BatchRead {
                repository: self,
                pending: chunk.iter().map(|pk| key(pk.clone())).collect(),
                found: &mut found,
            };
            self.within(OPERATION, retry_races(OPERATION, &mut batch))
                .await?;
        }
        Ok(found)
    }
}

/// Whether any action of a cancelled transaction came to `outcome`.
fn failed(reasons: &[(ItemOutcome, Option<Item>)], outcome: ItemOutcome) -> bool {
    reasons.iter().any(|(o, _)| *o == outcome)
}

/// One `BatchGetItem` under way: each attempt asks for the keys DynamoDB left unprocessed last
/// time (it does under load, answering the rest).
struct BatchRead<'a> {
    repository: &'a DynamoCustomerRepository,
    pending: Vec<Item>,
    found: &'a mut HashMap<String, Item>,
}

impl Attempts<()> for &mut BatchRead<'_> {
    async fn attempt(&mut self) -> Result<Attempt<()>, RepositoryError> {
        let table = &self.repository.table;
        let request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut self.pending)))
            .consistent_read(true)
            .projection_expression(PROJECTION)
            .set_expression_attribute_names(Some(projection_names()))
            .build()
            .map_err(RepositoryError::unexpected)?;
        let output = self
            .repository
            .client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| classify("BatchGetItem", &e))?;
        let items = output
            .responses
            .and_then(|mut responses| responses.remove(table))
            .unwrap_or_default();
        for item in items {
            if let Some(pk) = text(&item, PK) {
                self.found.insert(pk.to_owned(), item);
            }
        }
        self.pending = output
            .unprocessed_keys
            .and_then(|mut unprocessed| unprocessed.remove(table))
            .map(|keys| keys.keys)
            .unwrap_or_default();
        if self.pending.is_empty() {
            Ok(Attempt::Done(()))
        } else {
            // Throttled: back off and ask again for the rest; past the attempts, unavailable.
            Ok(Attempt::Unavailable(RepositoryError::Unavailable {
                retry_after: Some(RETRY_AFTER),
                source: Box::new(DynamoFailure::new(
                    "BatchGetItem",
                    "keys left unprocessed",
                    None,
                )),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> CustomerId {
        CustomerId::parse(text).unwrap()
    }

    fn customer(who: &str, email: Option<&str>) -> Item {
        let mut item = HashMap::from([
            (PK.to_owned(), s(&customer_pk(&id(who)))),
            ("kind".to_owned(), s(KIND_CUSTOMER)),
            ("id".to_owned(), s(who)),
        ]);
        if let Some(email) = email {
            item.insert("emailKey".to_owned(), s(email));
        }
        item
    }

    fn tombstone(who: &str) -> Item {
        let mut item = customer(who, None);
        item.insert("kind".to_owned(), s("deleted"));
        item
    }

    fn snapshot(items: &[(String, Option<Item>)]) -> Snapshot {
        items.iter().cloned().collect()
    }

    const ADA: &str = "ada@example.com";

    #[test]
    fn every_kind_of_item_is_sorted_and_only_customers_with_email_and_claims_are_checked() {
        assert_eq!(
            scanned(&customer("ada", Some(ADA))),
            Scanned::Customer {
                id: id("ada"),
                email: ADA.to_owned()
            }
        );
        assert_eq!(
            scanned(&claim_item(ADA, &id("ada"))),
            Scanned::Claim {
                claim: email_pk(ADA),
                named: id("ada")
            }
        );
        assert_eq!(scanned(&customer("ada", None)), Scanned::Other);
        assert_eq!(scanned(&tombstone("ada")), Scanned::Other);
        let setting = HashMap::from([
            (PK.to_owned(), s("SETTINGS#cursor-key")),
            ("kind".to_owned(), s("setting")),
        ]);
        assert_eq!(scanned(&setting), Scanned::Other);
        assert_eq!(scanned(&HashMap::new()), Scanned::Other);
        let mut nameless = claim_item(ADA, &id("ada"));
        nameless.remove(OWNER);
        assert_eq!(scanned(&nameless), Scanned::Unreadable);
        let mut idless = customer("ada", Some(ADA));
        idless.insert("id".to_owned(), s("not an id"));
        assert_eq!(scanned(&idless), Scanned::Unreadable);
    }

    #[test]
    fn a_customer_is_judged_on_its_claim_and_on_whom_the_claim_names() {
        let ada = id("ada");
        let claim = email_pk(ADA);
        let me = (customer_pk(&ada), Some(customer("ada", Some(ADA))));
        let judge = |items: &[(String, Option<Item>)]| judge_customer(&ada, ADA, &snapshot(items));

        assert_eq!(
            judge(&[me.clone(), (claim.clone(), Some(claim_item(ADA, &ada)))]),
            CustomerJudgement::Fine
        );
        assert_eq!(
            judge(&[me.clone(), (claim.clone(), None)]),
            CustomerJudgement::Problem(ClaimProblem::Missing)
        );
        let of_grace = (claim.clone(), Some(claim_item(ADA, &id("grace"))));
        assert_eq!(
            judge(&[me.clone(), of_grace.clone()]),
            CustomerJudgement::ReadWith(id("grace"))
        );
        for grace in [
            None,
            Some(tombstone("grace")),
            Some(customer("grace", None)),
            Some(customer("grace", Some("grace@example.com"))),
        ] {
            assert_eq!(
                judge(&[
                    me.clone(),
                    of_grace.clone(),
                    (customer_pk(&id("grace")), grace)
                ]),
                CustomerJudgement::Problem(ClaimProblem::Stale { named: id("grace") })
            );
        }
        assert_eq!(
            judge(&[
                me.clone(),
                of_grace,
                (
                    customer_pk(&id("grace")),
                    Some(customer("grace", Some(ADA)))
                )
            ]),
            CustomerJudgement::Problem(ClaimProblem::Shared { with: id("grace") })
        );
        // The customer changed its email, or went, since the scan: not judged.
        for now in [
            None,
            Some(tombstone("ada")),
            Some(customer("ada", Some("x@example.com"))),
        ] {
            assert_eq!(
                judge(&[(customer_pk(&ada), now), (claim.clone(), None)]),
                CustomerJudgement::Changed
            );
        }
    }

    #[test]
    fn a_claim_is_judged_on_whether_its_customer_holds_its_email() {
        let claim = email_pk(ADA);
        let of_ada = (claim.clone(), Some(claim_item(ADA, &id("ada"))));
        let ada = |item: Option<Item>| (customer_pk(&id("ada")), item);
        let judge = |items: &[(String, Option<Item>)]| judge_claim(&claim, &snapshot(items));

        assert_eq!(
            judge(&[of_ada.clone(), ada(Some(customer("ada", Some(ADA))))]),
            ClaimJudgement::Fine
        );
        for gone in [
            None,
            Some(tombstone("ada")),
            Some(customer("ada", Some("x@example.com"))),
        ] {
            assert_eq!(
                judge(&[of_ada.clone(), ada(gone)]),
                ClaimJudgement::NotHeld(id("ada"))
            );
        }
        assert_eq!(judge(&[of_ada]), ClaimJudgement::ReadWith(id("ada")));
        assert_eq!(judge(&[(claim.clone(), None)]), ClaimJudgement::Gone);
    }

    #[test]
    fn a_position_is_a_key_of_this_table_and_prints_as_it_parses() {
        let position: ClaimsPosition = "CUSTOMER#c1".parse().unwrap();
        assert_eq!(position.to_string(), "CUSTOMER#c1");
        let claim: ClaimsPosition = email_pk(ADA).parse().unwrap();
        assert_eq!(claim.to_string(), email_pk(ADA));
        for bad in ["", "c1", "CUSTOMER#", "EMAIL#ada@example.com"] {
            assert!(bad.parse::<ClaimsPosition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_size_stays_within_what_a_scan_takes_and_a_check_repairs_only_when_asked() {
        assert_eq!(ClaimsCheck::new().page_size(0).page_size, 1);
        assert_eq!(ClaimsCheck::new().page_size(5000).page_size, 1000);
        assert_eq!(ClaimsCheck::new().page_size, DEFAULT_PAGE_SIZE);
        assert!(!ClaimsCheck::new().repair);
        assert!(ClaimsCheck::new().repair(true).repair);
    }

    #[test]
    fn findings_and_reports_print_ids_and_digests_never_an_email() {
        let claim = email_pk(ADA);
        let findings = [
            (ClaimProblem::Missing, ClaimRepair::Repaired),
            (
                ClaimProblem::Stale { named: id("c2") },
                ClaimRepair::ReportOnly,
            ),
            (
                ClaimProblem::Shared { with: id("c3") },
                ClaimRepair::NeedsDecision,
            ),
            (ClaimProblem::Missing, ClaimRepair::Taken { by: id("c4") }),
            (ClaimProblem::Orphan, ClaimRepair::NeedsWholeWalk),
            (ClaimProblem::Orphan, ClaimRepair::ChangedMeanwhile),
        ]
        .map(|(problem, repair)| ClaimFinding {
            customer: id("c1"),
            problem,
            claim: claim.clone(),
            repair,
        });
        assert_eq!(
            findings[0].to_string(),
            "customer c1: its email is not claimed (missing claim); repaired"
        );
        assert_eq!(
            findings[2].to_string(),
            "customer c1: customer c3 holds the same email and its claim (shared email); left \
             alone: a person decides which customer keeps the email"
        );
        assert!(
            findings[4].to_string().contains(&claim),
            "an orphan names its claim"
        );
        let report = ClaimsReport {
            scanned: 9,
            findings: findings.to_vec(),
            resume_after: Some(ClaimsPosition(claim.clone())),
            ..ClaimsReport::default()
        };
        let error = ClaimsError {
            report: report.clone(),
            source: RepositoryError::unavailable("throttled"),
        };
        let text = format!("{report} {report:?} {error} {error:?}");
        for finding in &findings {
            let text = format!("{text} {finding}");
            assert!(
                !text.contains("ada@") && !text.contains("example"),
                "{text}"
            );
        }
        assert!(
            report
                .to_string()
                .ends_with(&format!("resume after {claim}"))
        );
        assert!(
            error
                .to_string()
                .starts_with("the claims check stopped after 9 items")
        );
    }
}
