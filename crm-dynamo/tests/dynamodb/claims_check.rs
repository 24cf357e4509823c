//! The claims check on DynamoDB Local: claims broken by tampering with raw items (as
//! `claims.rs` does) are found by customer id and kind, repaired when asked, and the API then
//! behaves (the email is unique again, a delete releases it); shared emails are left alone; a
//! check without repair writes nothing; reports never hold an email; repairs racing the API's
//! creates never take a live customer's claim. Also the requests it sends and the IAM actions
//! they need.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{
    Customer, CustomerId, CustomerRepository, Listing, NewCustomer, PageLimit, RepositoryError,
    SortOrder, Timestamp,
};
use crm_dynamo::items::Item;
use crm_dynamo::{
    ClaimFinding, ClaimProblem, ClaimRepair, ClaimsCheck, ClaimsReport, DynamoCustomerRepository,
};
use serde_json::json;

use crate::support::{self, Requests};

/// A repository on a fresh table, and a plain client on the same table to tamper with it.
struct Table {
    repository: DynamoCustomerRepository,
    client: Client,
    name: String,
}

async fn table() -> Table {
    let settings = support::settings();
    let repository = support::repository_with(settings.clone()).await;
    Table {
        repository,
        client: Client::from_conf(settings.sdk_config().await),
        name: settings.table_name().to_owned(),
    }
}

fn id(text: &str) -> CustomerId {
    CustomerId::parse(text).unwrap()
}

fn customer(who: &str, email: Option<&str>) -> Customer {
    let mut input = json!({"firstName": "Ada", "lastName": "Lovelace"});
    if let Some(email) = email {
        input["email"] = json!(email);
    }
    Customer::create(
        NewCustomer::from_json(&input).unwrap(),
        id(who),
        Timestamp::now(),
    )
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

/// The key of the claim on `email`, as the crate docs define it.
fn claim_key(email: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!(
        "EMAIL#{:x}",
        Sha256::digest(email.to_ascii_lowercase().as_bytes())
    )
}

fn claim(email: &str, owner: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(&claim_key(email))),
        ("kind".to_owned(), s("email")),
        ("customerId".to_owned(), s(owner)),
    ])
}

impl Table {
    async fn create(&self, who: &str, email: Option<&str>) {
        self.repository
            .create(&customer(who, email))
            .await
            .unwrap_or_else(|e| panic!("creating {who}: {e:?}"));
    }

    async fn put(&self, item: Item) {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    async fn remove(&self, pk: &str) {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .send()
            .await
            .unwrap();
    }

    async fn item(&self, pk: &str) -> Option<Item> {
        self.client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// Whom the claim on `email` names, if there is one.
    async fn owner(&self, email: &str) -> Option<String> {
        self.item(&claim_key(email))
            .await
            .map(|claim| claim["customerId"].as_s().unwrap().clone())
    }

    /// Makes the claim on `email` name `owner`.
    async fn give_claim(&self, email: &str, owner: &str) {
        self.put(claim(email, owner)).await;
    }

    /// Gives customer `who` the email `email` behind the API's back: its claims stay as they are.
    async fn set_email_by_hand(&self, who: &str, email: &str) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(&format!("CUSTOMER#{who}")))
            .update_expression("SET email = :email, emailKey = :key")
            .expression_attribute_values(":email", s(email))
            .expression_attribute_values(":key", s(&email.to_ascii_lowercase()))
            .send()
            .await
            .unwrap();
    }

    /// Every item of the table, in key order.
    async fn everything(&self) -> Vec<(String, Item)> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                items.push((item["pk"].as_s().unwrap().clone(), item.clone()));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items
    }

    /// Runs a check, returning its report after checking it against every progress report and
    /// against the emails of the test: none of them is in any text of it.
    async fn check(&self, check: &ClaimsCheck) -> ClaimsReport {
        let mut progress = Vec::new();
        let report = self
            .repository
            .check_claims(check, |so_far| progress.push(so_far.clone()))
            .await
            .unwrap();
        assert_eq!(
            progress.last(),
            Some(&report),
            "the last progress is the report"
        );
        assert!(
            progress
                .windows(2)
                .all(|w| w[0].scanned <= w[1].scanned && w[1].findings.starts_with(&w[0].findings)),
            "progress only grows: {progress:?}"
        );
        assert_holds_no_email(&report);
        report
    }

    async fn repair(&self) -> ClaimsReport {
        self.check(&ClaimsCheck::new().repair(true).page_size(3))
            .await
    }

    async fn report_only(&self) -> ClaimsReport {
        self.check(&ClaimsCheck::new().page_size(3)).await
    }
}

/// No text of the report (its counts, its findings, its debug form) holds an email or a part of
/// one: the tests' emails are all at `example.com`, with local parts that are not ids.
fn assert_holds_no_email(report: &ClaimsReport) {
    let mut texts = vec![report.to_string(), format!("{report:?}")];
    texts.extend(report.findings.iter().map(ToString::to_string));
    for text in texts {
        assert!(
            !text.contains('@') && !text.contains("example") && !text.contains("mail-"),
            "{text}"
        );
    }
}

/// The findings of a report as (customer, problem, repair), sorted by customer.
fn findings(report: &ClaimsReport) -> Vec<(String, ClaimProblem, ClaimRepair)> {
    let mut found: Vec<_> = report
        .findings
        .iter()
        .map(|f: &ClaimFinding| (f.customer.to_string(), f.problem.clone(), f.repair.clone()))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Writes through every path that leaves an item of its own kind: customers with and without
/// email, an email change, a delete (tombstone), a keyed create (idempotency record), a listing
/// (the cursor key).
async fn every_kind_of_item(table: &Table) {
    use crm_domain::idempotency::{KeyState, KeyedWrite};
    use crm_domain::{CustomerPatch, Idempotency, IdempotencyKey, RequestFingerprint};

    let repository = &table.repository;
    table.create("ada", Some("mail-ada@example.com")).await;
    table.create("grace", Some("mail-grace@example.com")).await;
    table.create("plain", None).await;
    table.create("gone", Some("mail-gone@example.com")).await;
    repository.delete(&id("gone"), None).await.unwrap();
    repository
        .update(
            &id("grace"),
            &CustomerPatch::from_json(&json!({"email": "mail-hopper@example.com"})).unwrap(),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let idempotency = Idempotency {
        key: IdempotencyKey::parse("create-keyed").unwrap(),
        fingerprint: RequestFingerprint::new("f"),
    };
    let KeyState::Fresh(lease) = repository
        .begin_keyed(&idempotency, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("a fresh key")
    };
    repository
        .write_keyed(
            &KeyedWrite::Create(customer("keyed", Some("mail-keyed@example.com"))),
            &lease,
        )
        .await
        .unwrap();
    repository
        .list(&Listing::All(SortOrder::Name), PageLimit::DEFAULT, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_clean_table_of_every_kind_of_item_reports_nothing_and_a_repair_writes_nothing() {
    let table = table().await;
    every_kind_of_item(&table).await;
    let before = table.everything().await;
    let kinds: BTreeSet<&str> = before
        .iter()
        .map(|(_, item)| item["kind"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["customer", "deleted", "email", "idempotency", "setting"])
    );

    let report = table.repair().await;

    assert!(report.is_clean(), "{report} {:?}", report.findings);
    assert_eq!(report.scanned, before.len() as u64, "{report}");
    assert_eq!(
        (report.customers_checked, report.claims_checked),
        (3, 3),
        "ada, grace and keyed, and their claims: {report}"
    );
    assert_eq!(
        (
            report.repaired,
            report.changed_meanwhile,
            report.unreadable,
            report.resume_after.clone()
        ),
        (0, 0, 0, None)
    );
    assert!(report.from_start);
    assert_eq!(
        report.to_string(),
        format!(
            "checked {} items, 3 customers with an email, 3 claims: missing 0, stale 0, \
             shared 0, orphaned 0; repaired 0, changed meanwhile 0, unreadable 0; reached the \
             end of the table",
            before.len()
        )
    );
    assert_eq!(table.everything().await, before, "nothing written");
}

#[tokio::test]
async fn a_missing_claim_is_reported_then_repaired_and_the_email_is_unique_again() {
    let table = table().await;
    table.create("ada", Some("mail-ada@example.com")).await;
    table.create("grace", Some("mail-grace@example.com")).await;
    table.remove(&claim_key("mail-ada@example.com")).await;

    let found = table.report_only().await;
    assert_eq!(
        findings(&found),
        [("ada".into(), ClaimProblem::Missing, ClaimRepair::ReportOnly)]
    );
    assert_eq!(found.findings[0].claim, claim_key("mail-ada@example.com"));
    assert_eq!(table.owner("mail-ada@example.com").await, None);

    let repaired = table.repair().await;
    assert_eq!(
        findings(&repaired),
        [("ada".into(), ClaimProblem::Missing, ClaimRepair::Repaired)]
    );
    assert_eq!((repaired.missing, repaired.repaired), (1, 1));
    assert_eq!(
        table.owner("mail-ada@example.com").await.as_deref(),
        Some("ada")
    );
    assert_eq!(
        table.item(&claim_key("mail-ada@example.com")).await,
        Some(claim("mail-ada@example.com", "ada")),
        "a claim as the API writes it"
    );
    assert!(
        table.repair().await.is_clean(),
        "a second run finds nothing"
    );

    // The API behaves: the email is taken, and a delete releases it.
    assert!(matches!(
        table
            .repository
            .create(&customer("other", Some("MAIL-ADA@example.com")))
            .await,
        Err(RepositoryError::EmailTaken)
    ));
    table.repository.delete(&id("ada"), None).await.unwrap();
    assert_eq!(table.owner("mail-ada@example.com").await, None);
    table.create("other", Some("mail-ada@example.com")).await;
}

#[tokio::test]
async fn a_stale_claim_is_moved_to_the_customer_that_holds_the_email() {
    let table = table().await;
    // Ada's claim names a customer that never existed; Bob's names Carol, who holds another email
    // (and its claim); Dan's names Erin, deleted.
    table.create("ada", Some("mail-ada@example.com")).await;
    table.give_claim("mail-ada@example.com", "ghost").await;
    table.create("bob", Some("mail-bob@example.com")).await;
    table.create("carol", Some("mail-carol@example.com")).await;
    table.give_claim("mail-bob@example.com", "carol").await;
    table.create("dan", Some("mail-dan@example.com")).await;
    table.create("erin", None).await;
    table.repository.delete(&id("erin"), None).await.unwrap();
    table.give_claim("mail-dan@example.com", "erin").await;

    let found = table.report_only().await;
    let stale =
        |named: &str, repair: ClaimRepair| (ClaimProblem::Stale { named: id(named) }, repair);
    let expect = |repair: ClaimRepair| {
        [("ada", "ghost"), ("bob", "carol"), ("dan", "erin")].map(|(who, named)| {
            let (problem, repair) = stale(named, repair.clone());
            (who.to_owned(), problem, repair)
        })
    };
    assert_eq!(
        findings(&found),
        expect(ClaimRepair::ReportOnly),
        "stale claims, not orphans"
    );
    assert_eq!((found.stale, found.orphaned), (3, 0));

    let repaired = table.repair().await;
    assert_eq!(findings(&repaired), expect(ClaimRepair::Repaired));
    for who in ["ada", "bob", "dan", "carol"] {
        let email = format!("mail-{who}@example.com");
        assert_eq!(table.owner(&email).await.as_deref(), Some(who), "{who}");
    }
    assert!(table.repair().await.is_clean());

    table.repository.delete(&id("bob"), None).await.unwrap();
    assert_eq!(table.owner("mail-bob@example.com").await, None, "released");
    table.create("frank", Some("mail-bob@example.com")).await;
    assert!(matches!(
        table
            .repository
            .create(&customer("gina", Some("mail-dan@example.com")))
            .await,
        Err(RepositoryError::EmailTaken)
    ));
}

#[tokio::test]
async fn a_shared_email_is_reported_and_left_alone() {
    let table = table().await;
    table.create("ada", Some("mail-ada@example.com")).await;
    table.create("bob", Some("mail-bob@example.com")).await;
    // Bob takes Ada's email behind the API's back, and his own claim goes.
    table.set_email_by_hand("bob", "mail-ada@example.com").await;
    table.remove(&claim_key("mail-bob@example.com")).await;
    let before = table.everything().await;

    let report = table.repair().await;

    assert_eq!(
        findings(&report),
        [(
            "bob".into(),
            ClaimProblem::Shared { with: id("ada") },
            ClaimRepair::NeedsDecision
        )]
    );
    assert_eq!((report.shared, report.repaired), (1, 0));
    assert_eq!(
        report.findings[0].to_string(),
        "customer bob: customer ada holds the same email and its claim (shared email); left \
         alone: a person decides which customer keeps the email"
    );
    assert_eq!(table.everything().await, before, "nothing written");
}

#[tokio::test]
async fn an_orphan_claim_is_deleted_and_frees_its_email() {
    let table = table().await;
    // A claim of a customer that never existed; one of a customer whose item became a tombstone
    // by hand; one of a customer that holds another email now (whose own claim is then missing).
    table.give_claim("mail-nobody@example.com", "ghost").await;
    table.create("eve", Some("mail-eve@example.com")).await;
    table
        .put(HashMap::from([
            ("pk".to_owned(), s("CUSTOMER#eve")),
            ("kind".to_owned(), s("deleted")),
            ("id".to_owned(), s("eve")),
            ("version".to_owned(), AttributeValue::N("2".to_owned())),
        ]))
        .await;
    table.create("dora", Some("mail-dora@example.com")).await;
    table
        .set_email_by_hand("dora", "mail-dora2@example.com")
        .await;
    for taken in ["mail-nobody@example.com", "mail-eve@example.com"] {
        assert!(matches!(
            table.repository.create(&customer("new", Some(taken))).await,
            Err(RepositoryError::EmailTaken)
        ));
    }

    let found = table.report_only().await;
    let orphan = |who: &str, repair: ClaimRepair| (who.to_owned(), ClaimProblem::Orphan, repair);
    assert_eq!(
        findings(&found),
        [
            (
                "dora".to_owned(),
                ClaimProblem::Missing,
                ClaimRepair::ReportOnly
            ),
            orphan("dora", ClaimRepair::ReportOnly),
            orphan("eve", ClaimRepair::ReportOnly),
            orphan("ghost", ClaimRepair::ReportOnly),
        ]
    );
    let keys: BTreeSet<&str> = found.findings.iter().map(|f| f.claim.as_str()).collect();
    let expected: BTreeSet<String> = [
        "mail-dora2@example.com",
        "mail-dora@example.com",
        "mail-eve@example.com",
        "mail-nobody@example.com",
    ]
    .map(claim_key)
    .into();
    assert_eq!(keys, expected.iter().map(String::as_str).collect());

    let repaired = table.repair().await;
    assert_eq!(
        (repaired.orphaned, repaired.missing, repaired.repaired),
        (3, 1, 4)
    );
    for freed in [
        "mail-nobody@example.com",
        "mail-eve@example.com",
        "mail-dora@example.com",
    ] {
        assert_eq!(table.owner(freed).await, None, "{freed}");
    }
    assert_eq!(
        table.owner("mail-dora2@example.com").await.as_deref(),
        Some("dora")
    );
    assert!(table.repair().await.is_clean());
    table.create("new1", Some("mail-nobody@example.com")).await;
    table.create("new2", Some("mail-eve@example.com")).await;
    table.create("new3", Some("mail-dora@example.com")).await;
}

#[tokio::test]
async fn a_check_without_repair_writes_nothing() {
    let table = table().await;
    table.create("ada", Some("mail-ada@example.com")).await;
    table.remove(&claim_key("mail-ada@example.com")).await;
    table.create("bob", Some("mail-bob@example.com")).await;
    table.give_claim("mail-bob@example.com", "ghost").await;
    table.give_claim("mail-nobody@example.com", "ghost").await;
    table.create("carol", Some("mail-carol@example.com")).await;
    table
        .set_email_by_hand("carol", "mail-bob@example.com")
        .await;
    let before = table.everything().await;

    let report = table.report_only().await;

    assert_eq!(
        (
            report.missing,
            report.stale,
            report.shared,
            report.orphaned,
            report.repaired
        ),
        // Ada's claim is missing. Bob and Carol both hold Bob's email, whose claim names a ghost:
        // stale for both (a repair gives it to the first it meets, and then finds the other
        // sharing it). Carol's old claim and the ghost's other one are orphans.
        (1, 2, 0, 2, 0),
        "{:?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.repair == ClaimRepair::ReportOnly)
    );
    assert_eq!(table.everything().await, before, "nothing written");
}

/// A claim naming Bob, who does not hold its email, is stale for Carol, who does: not an orphan.
/// Once repaired, Bob's claim is Carol's, and Bob and Carol no longer share anything.
#[tokio::test]
async fn a_claim_is_an_orphan_only_when_no_customer_of_the_walk_holds_its_email() {
    let table = table().await;
    table.create("bob", Some("mail-bob@example.com")).await;
    table.create("carol", Some("mail-carol@example.com")).await;
    table
        .set_email_by_hand("bob", "mail-bob2@example.com")
        .await;
    table
        .set_email_by_hand("carol", "mail-bob@example.com")
        .await;
    for page_size in [1, 2, 1000] {
        let report = table.check(&ClaimsCheck::new().page_size(page_size)).await;
        assert_eq!(
            findings(&report),
            [
                (
                    "bob".to_owned(),
                    ClaimProblem::Missing,
                    ClaimRepair::ReportOnly
                ),
                (
                    "carol".to_owned(),
                    ClaimProblem::Stale { named: id("bob") },
                    ClaimRepair::ReportOnly
                ),
                // Carol's old claim names her, and she holds another email.
                (
                    "carol".to_owned(),
                    ClaimProblem::Orphan,
                    ClaimRepair::ReportOnly
                ),
            ],
            "pages of {page_size}"
        );
    }
    let repaired = table.repair().await;
    assert_eq!(repaired.repaired, 3, "{:?}", repaired.findings);
    for (email, owner) in [
        ("mail-bob@example.com", Some("carol")),
        ("mail-bob2@example.com", Some("bob")),
        ("mail-carol@example.com", None),
    ] {
        assert_eq!(table.owner(email).await.as_deref(), owner, "{email}");
    }
}

#[tokio::test]
async fn a_resumed_check_reports_orphans_but_does_not_delete_them() {
    let table = table().await;
    let orphans: Vec<String> = (0..6).map(|i| format!("mail-o{i}@example.com")).collect();
    for email in &orphans {
        table.give_claim(email, "ghost").await;
    }
    let mut progress = Vec::new();
    table
        .repository
        .check_claims(&ClaimsCheck::new().page_size(1), |so_far| {
            progress.push(so_far.clone());
        })
        .await
        .unwrap();
    let position = progress[0].resume_after.clone().expect("after one item");
    let position = position.to_string().parse().unwrap();

    let resumed = table
        .check(
            &ClaimsCheck::new()
                .repair(true)
                .page_size(2)
                .resume_after(position),
        )
        .await;

    assert!(!resumed.from_start);
    assert_eq!(resumed.scanned, 5, "the items after the first");
    assert_eq!(resumed.orphaned, 5);
    assert!(
        resumed
            .findings
            .iter()
            .all(|f| f.problem == ClaimProblem::Orphan && f.repair == ClaimRepair::NeedsWholeWalk),
        "{:?}",
        resumed.findings
    );
    for email in &orphans {
        assert_eq!(table.owner(email).await.as_deref(), Some("ghost"));
    }
    let whole = table.repair().await;
    assert_eq!((whole.orphaned, whole.repaired), (6, 6));
}

/// Customers whose claims went missing, repaired while creates of other customers with the same
/// emails run: each email ends with exactly the claim of whichever customer won it, a create that
/// lost is refused as taken, and the check never claims an email a create won.
#[tokio::test]
async fn a_repair_racing_creates_of_the_same_emails_never_leaves_two_owners() {
    let table = table().await;
    let count = 24;
    let email = |i: usize| format!("mail-race{i}@example.com");
    for i in 0..count {
        table.create(&format!("a{i}"), Some(&email(i))).await;
        table.remove(&claim_key(&email(i))).await;
    }

    let repair = ClaimsCheck::new().repair(true).page_size(4);
    let check = table.repository.check_claims(&repair, |_| {});
    let rivals = async {
        let mut created = Vec::new();
        for i in 0..count {
            let result = table
                .repository
                .create(&customer(&format!("c{i}"), Some(&email(i))))
                .await;
            match result {
                Ok(()) => created.push(true),
                Err(RepositoryError::EmailTaken) => created.push(false),
                Err(e) => panic!("create c{i}: {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        created
    };
    let (report, created) = tokio::join!(check, rivals);
    let report = report.unwrap();
    assert_holds_no_email(&report);

    for (i, created) in created.into_iter().enumerate() {
        let owner = table.owner(&email(i)).await;
        let finding = report
            .findings
            .iter()
            .find(|f| f.customer.as_str() == format!("a{i}"));
        if created {
            assert_eq!(
                owner,
                Some(format!("c{i}")),
                "a create's claim stays its own"
            );
            let finding = finding.map(|f| (&f.problem, &f.repair));
            assert!(
                matches!(
                    finding,
                    Some((ClaimProblem::Shared { with }, ClaimRepair::NeedsDecision))
                        if *with == id(&format!("c{i}"))
                ) || matches!(
                    finding,
                    Some((ClaimProblem::Missing, ClaimRepair::Taken { by }))
                        if *by == id(&format!("c{i}"))
                ),
                "a{i}: {finding:?}"
            );
        } else {
            assert_eq!(owner, Some(format!("a{i}")), "the repair won the email");
            assert!(
                finding.is_some_and(
                    |f| f.problem == ClaimProblem::Missing && f.repair == ClaimRepair::Repaired
                ),
                "a{i}: {finding:?}"
            );
        }
    }
    // What is left is the shared emails the creates made, each reported once, and nothing else.
    let after = table.report_only().await;
    assert_eq!(
        (
            after.missing,
            after.stale,
            after.orphaned,
            after.changed_meanwhile
        ),
        (0, 0, 0, 0),
        "{:?}",
        after.findings
    );
}

/// Orphan claims deleted while creates of their emails keep trying: a create goes through only
/// once its email is free, and the delete never takes the claim a create made.
#[tokio::test]
async fn deleting_orphans_while_creates_claim_their_emails_never_deletes_a_live_claim() {
    let table = table().await;
    let count = 12;
    let email = |i: usize| format!("mail-orphan{i}@example.com");
    for i in 0..count {
        table.give_claim(&email(i), "ghost").await;
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let check = async {
        let report = table
            .repository
            .check_claims(&ClaimsCheck::new().repair(true).page_size(2), |_| {})
            .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        report
    };
    let rivals = async {
        let mut created = vec![false; count];
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            for (i, made) in created.iter_mut().enumerate().filter(|(_, made)| !**made) {
                match table
                    .repository
                    .create(&customer(&format!("c{i}"), Some(&email(i))))
                    .await
                {
                    Ok(()) => *made = true,
                    Err(RepositoryError::EmailTaken) => {}
                    Err(e) => panic!("create c{i}: {e:?}"),
                }
            }
            if finished {
                return created;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (report, created) = tokio::join!(check, rivals);
    let report = report.unwrap();

    assert_eq!(created, vec![true; count], "every email was freed");
    for i in 0..count {
        assert_eq!(
            table.owner(&email(i)).await,
            Some(format!("c{i}")),
            "the create's claim stays"
        );
    }
    assert_eq!(report.orphaned, count as u64);
    assert!(report.findings.iter().all(|f| f.repair.is_repaired()));
    assert!(table.repair().await.is_clean());
}

/// The requests of the crate docs: a clean page is a `Scan` and a `BatchGetItem`; a pair that does
/// not agree adds a `TransactGetItems`, a suspected orphan another at the end of the walk, a
/// repair a `TransactWriteItems`; and the IAM actions they need are the ones the docs list.
#[tokio::test]
async fn a_check_sends_the_documented_requests_and_needs_the_documented_actions() {
    let settings = support::settings();
    let plain = support::repository_with(settings.clone()).await;
    let (repository, requests) = Requests::on(&settings, plain.table_name()).await;
    let table = Table {
        repository,
        client: Client::from_conf(settings.sdk_config().await),
        name: settings.table_name().to_owned(),
    };
    for i in 0..4 {
        table
            .create(&format!("c{i}"), Some(&format!("mail-c{i}@example.com")))
            .await;
    }
    requests.clear();

    // 8 items (4 customers, 4 claims) in pages of 4: two full pages, then an empty one.
    table.check(&ClaimsCheck::new().page_size(4)).await;
    assert_eq!(
        requests.take(),
        ["Scan", "BatchGetItem", "Scan", "BatchGetItem", "Scan"],
        "a clean walk: a Scan and a BatchGetItem per page"
    );

    // One claim missing, one orphan: the whole table in one page.
    table.remove(&claim_key("mail-c0@example.com")).await;
    table.give_claim("mail-nobody@example.com", "ghost").await;
    let one_page = ClaimsCheck::new().page_size(100);
    table.check(&one_page).await;
    let mut sent = requests.take();
    sent.sort();
    assert_eq!(
        sent,
        [
            "BatchGetItem",
            "Scan",
            "TransactGetItems",
            "TransactGetItems",
            "TransactGetItems"
        ],
        "a snapshot for the missing claim, two for the orphan"
    );
    table.check(&one_page.clone().repair(true)).await;
    let mut sent = requests.take();
    sent.sort();
    assert_eq!(
        sent,
        [
            "BatchGetItem",
            "Scan",
            "TransactGetItems",
            "TransactGetItems",
            "TransactGetItems",
            "TransactWriteItems",
            "TransactWriteItems"
        ],
        "and a transaction per repair"
    );

    let documented: BTreeSet<String> = [
        "dynamodb:Scan",
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(requests.actions(), documented);
}
