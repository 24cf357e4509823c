//! The contract cases of change events: every committed change is one event, of the right type,
//! version and changed fields; a refused write is none; each customer's events come in version
//! order, whatever runs at once.
//!
//! A store's events are read through an [`EventLog`], which each store's tests provide (the memory
//! store's subscription, the DynamoDB table's stream). [`event_contract_tests!`] makes one
//! `#[test]` per case:
//!
//! ```text
//! crm_domain::event_contract_tests!(|| async {
//!     let store = Arc::new(MyRepository::new());
//!     let log = MyLog::following(&store);
//!     (store as Arc<dyn CustomerRepository>, Box::new(log) as Box<dyn EventLog>)
//! });
//! ```
//!
//! [`event_contract_tests!`]: crate::event_contract_tests

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{HOLD, Repo, create, customer, fresh, id, keyed, named, patch, stored, with_email};
use crate::events::{CustomerEvent, CustomerField, EventType};
use crate::idempotency::{KeyState, KeyedWrite};
use crate::listing::Change;
use crate::{PageLimit, RepositoryError, Timestamp, Version};

/// Where the event cases read the change events of the store under test.
#[async_trait]
pub trait EventLog: Send {
    /// Every event the store committed since the previous call (or since the log was made), each
    /// customer's in the order the store committed them.
    ///
    /// It MUST return every event of every write that was answered before the call; it may wait
    /// for them as long as the store needs to make them readable.
    async fn take(&mut self) -> Vec<CustomerEvent>;
}

/// Defines one `#[test]` per event case (every name in [`EVENT_CASES`]) for the store and log
/// made by `$factory`, an expression that evaluates to a closure returning a future of
/// `(Arc<dyn CustomerRepository>, Box<dyn EventLog>)`, the log following that store.
#[macro_export]
macro_rules! event_contract_tests {
    ($factory:expr) => {
        $crate::__event_cases!(tests $factory);
    };
}

/// The one list of event cases (see [`__contract_cases!`](crate::__contract_cases)).
#[doc(hidden)]
#[macro_export]
macro_rules! __event_cases {
    (@list tests [$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::run(async {
                    let (repository, log) = ($factory)().await;
                    $crate::testkit::$case(repository, log).await;
                });
            }
        )*
    };
    (@list names [] $($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
    ($mode:ident $($factory:expr)?) => {
        $crate::__event_cases! { @list $mode [$($factory)?]
            every_committed_change_is_one_event_of_its_type,
            a_refused_write_is_no_event,
            an_import_is_one_created_event_per_customer_written,
            a_keyed_write_is_one_event_however_often_it_is_asked,
            each_customers_events_follow_its_versions_under_concurrent_writers,
        }
    };
}

/// The name of every event case, in the order they are defined.
pub const EVENT_CASES: &[&str] = crate::__event_cases!(names);

type Log = Box<dyn EventLog>;

/// What the cases compare of an event: its type, version and changed fields.
type Told = (EventType, u64, Vec<CustomerField>);

fn told(event: &CustomerEvent) -> Told {
    (
        event.kind,
        event.version.get(),
        event.changed_fields.clone(),
    )
}

/// The events of each customer, in the order the log gave them.
fn by_customer(events: &[CustomerEvent]) -> BTreeMap<String, Vec<CustomerEvent>> {
    let mut grouped: BTreeMap<String, Vec<CustomerEvent>> = BTreeMap::new();
    for event in events {
        grouped
            .entry(event.id.to_string())
            .or_default()
            .push(event.clone());
    }
    grouped
}

fn told_by_customer(events: &[CustomerEvent]) -> BTreeMap<String, Vec<Told>> {
    by_customer(events)
        .into_iter()
        .map(|(id, events)| (id, events.iter().map(told).collect()))
        .collect()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("a valid time")
}

/// Every kind of committed write tells one event: creates with and without an email, patches of
/// each field (the fields named, never their values), an email changed and cleared, deletes with
/// and without an email, and an id created again after its delete; a patch that rewrites values
/// with themselves commits nothing and tells nothing. Each event carries the version its change
/// produced and the time of the change.
pub async fn every_committed_change_is_one_event_of_its_type(repo: Repo, mut log: Log) {
    use CustomerField::{Address, Email, FirstName, LastName, Phone};
    use EventType::{Created, Deleted, Updated};

    let plain = named("plain");
    let mailed = customer(&json!({
        "id": "mailed", "firstName": "Grace", "lastName": "Hopper",
        "email": "grace@example.com", "phone": "+15550100", "address": {"line1": "1 Navy Way"}
    }));
    create(&repo, &plain).await;
    create(&repo, &mailed).await;
    let t = |n: u32| at(&format!("2026-03-0{n}T00:00:00.000Z"));
    let update = async |who: &str, body: serde_json::Value, now: Timestamp| {
        repo.update(&id(who), &patch(&body), None, now)
            .await
            .expect("the patch succeeds")
    };
    update("plain", json!({"lastName": "Byron"}), t(1)).await;
    update(
        "plain",
        json!({"firstName": "Ada", "lastName": "Byron"}),
        t(2),
    )
    .await;
    update(
        "mailed",
        json!({"email": "hopper@example.com", "firstName": "Amazing", "phone": null}),
        t(3),
    )
    .await;
    update(
        "mailed",
        json!({"email": null, "address": {"city": "Arlington"}}),
        t(4),
    )
    .await;
    let last = update("mailed", json!({"email": "grace@example.com"}), t(5)).await;
    repo.delete(&id("plain"), None).await.expect("delete");
    repo.delete(&id("mailed"), Some(last.version()))
        .await
        .expect("delete");
    let again = named("plain");
    create(&repo, &again).await;

    let events = log.take().await;
    assert_eq!(
        told_by_customer(&events),
        BTreeMap::from([
            (
                "mailed".to_owned(),
                vec![
                    (Created, 1, vec![]),
                    (Updated, 2, vec![FirstName, Email, Phone]),
                    (Updated, 3, vec![Email, Address]),
                    (Updated, 4, vec![Email]),
                    (Deleted, 5, vec![]),
                ]
            ),
            (
                "plain".to_owned(),
                vec![
                    (Created, 1, vec![]),
                    (Updated, 2, vec![LastName]),
                    (Deleted, 3, vec![]),
                    (Created, 1, vec![]),
                ]
            ),
        ]),
        "the events of each customer: {events:?}"
    );
    assert_times_and_no_values(&repo, &events, &mailed, &again).await;
    let more = log.take().await;
    assert!(more.is_empty(), "nothing is told twice: {more:?}");
}

/// The times and the privacy of [`every_committed_change_is_one_event_of_its_type`]'s events.
async fn assert_times_and_no_values(
    repo: &Repo,
    events: &[CustomerEvent],
    mailed: &crate::Customer,
    again: &crate::Customer,
) {
    let t = |n: u32| at(&format!("2026-03-0{n}T00:00:00.000Z"));
    // Each event is at the time of its change: creations at `createdAt`, patches at the time
    // they were made with, deletes at the time the change feed gives their tombstones.
    let grouped = by_customer(events);
    let times: Vec<Timestamp> = grouped["mailed"].iter().map(|e| e.time).collect();
    assert_eq!(&times[..4], [mailed.created_at(), t(3), t(4), t(5)]);
    let feed = repo
        .changes(t(1), PageLimit::new(100).expect("a limit"), None)
        .await
        .expect("the change feed reads");
    let deleted_at = feed.items.iter().find_map(|change| match change {
        Change::Deleted(tombstone) if tombstone.id == id("mailed") => Some(tombstone.deleted_at),
        _ => None,
    });
    assert_eq!(
        Some(times[4]),
        deleted_at,
        "the delete's time is its tombstone's"
    );
    assert_eq!(grouped["plain"][3].time, again.created_at());
    // No value of any field travels in an event.
    let text = serde_json::to_string(events).expect("events serialize");
    for value in [
        "Grace",
        "Hopper",
        "grace@",
        "hopper@",
        "5550100",
        "Navy",
        "Arlington",
        "Byron",
    ] {
        assert!(!text.contains(value), "{value} in an event: {text}");
    }
}

/// A write the store refuses (an id or email taken, a stale version, an unknown id, a conflict in
/// a bulk import, a keyed write refused) commits nothing and tells nothing. The committed patch
/// that follows them proves the log was read past them.
pub async fn a_refused_write_is_no_event(repo: Repo, mut log: Log) {
    create(&repo, &with_email("first", "first@example.com")).await;
    create(&repo, &named("second")).await;
    assert_eq!(log.take().await.len(), 2);

    let refusals = [
        repo.create(&named("first")).await,
        repo.create(&with_email("third", "FIRST@example.com")).await,
        repo.update(
            &id("second"),
            &patch(&json!({"email": "first@example.com"})),
            None,
            at("2026-03-01T00:00:00Z"),
        )
        .await
        .map(drop),
        repo.update(
            &id("first"),
            &patch(&json!({"lastName": "Stale"})),
            Some(Version::FIRST.next()),
            at("2026-03-01T00:00:00Z"),
        )
        .await
        .map(drop),
        repo.update(
            &id("nobody"),
            &patch(&json!({"lastName": "Ghost"})),
            None,
            at("2026-03-01T00:00:00Z"),
        )
        .await
        .map(drop),
        repo.delete(&id("first"), Some(Version::FIRST.next())).await,
        repo.delete(&id("nobody"), None).await,
    ];
    for refusal in &refusals {
        assert!(refusal.is_err(), "{refusals:?}");
    }
    let report = repo
        .put_many(&[named("second"), with_email("fourth", "first@example.com")])
        .await
        .expect("the import runs");
    assert_eq!((report.created, report.rejected.len()), (0, 2));
    let lease = fresh(&repo, &keyed("refused-1", "fingerprint-a")).await;
    let keyed_refusal = repo
        .write_keyed(&KeyedWrite::Create(named("first")), &lease)
        .await;
    assert!(
        matches!(keyed_refusal, Err(RepositoryError::AlreadyExists)),
        "{keyed_refusal:?}"
    );
    repo.release_key(&lease).await.expect("release");

    repo.update(
        &id("second"),
        &patch(&json!({"lastName": "Marker"})),
        None,
        at("2026-03-02T00:00:00Z"),
    )
    .await
    .expect("the marker patch succeeds");
    let events = log.take().await;
    assert_eq!(
        events
            .iter()
            .map(|e| (e.id.to_string(), told(e)))
            .collect::<Vec<_>>(),
        [(
            "second".to_owned(),
            (EventType::Updated, 2, vec![CustomerField::LastName])
        )],
        "only the marker patch is told"
    );
}

/// A bulk import tells `customer.created` for each customer it wrote, and nothing for those it
/// refused.
pub async fn an_import_is_one_created_event_per_customer_written(repo: Repo, mut log: Log) {
    create(&repo, &with_email("old", "old@example.com")).await;
    let mut batch: Vec<_> = (0..40).map(|n| named(&format!("bulk-{n:02}"))).collect();
    batch.push(named("old"));
    batch.push(with_email("late", "OLD@example.com"));
    batch.push(named("bulk-07"));
    let report = repo.put_many(&batch).await.expect("the import runs");
    assert_eq!((report.created, report.rejected.len()), (40, 3));
    let events = log.take().await;
    let mut created: Vec<String> = events
        .iter()
        .filter(|e| e.id != id("old"))
        .map(|e| {
            assert_eq!(told(e), (EventType::Created, 1, vec![]), "{e:?}");
            e.id.to_string()
        })
        .collect();
    created.sort();
    let expected: Vec<String> = (0..40).map(|n| format!("bulk-{n:02}")).collect();
    assert_eq!(created, expected, "one event per customer written");
    assert_eq!(events.len(), 41, "and one for the first create");
}

/// A keyed write is told once: asking again with the same key and request tells its recorded
/// outcome and writes, and so tells, nothing more.
pub async fn a_keyed_write_is_one_event_however_often_it_is_asked(repo: Repo, mut log: Log) {
    let key = keyed("order-events", "fingerprint-a");
    let lease = fresh(&repo, &key).await;
    repo.write_keyed(&KeyedWrite::Create(named("keyed")), &lease)
        .await
        .expect("the keyed create succeeds");
    for _ in 0..3 {
        let again = repo.begin_keyed(&key, HOLD).await.expect("begin succeeds");
        assert!(matches!(again, KeyState::Done(_)), "{again:?}");
    }
    let events = log.take().await;
    assert_eq!(
        events.iter().map(told).collect::<Vec<_>>(),
        [(EventType::Created, 1, vec![])]
    );
    assert!(stored(&repo, "keyed").await.is_some());
}

/// Writers racing on a few customers, some with expected versions that lose: every patch that
/// succeeded is one event, each customer's events carry the versions 1, 2, 3, … in that order, and
/// the last is the version stored.
pub async fn each_customers_events_follow_its_versions_under_concurrent_writers(
    repo: Repo,
    mut log: Log,
) {
    let names = ["race-a", "race-b", "race-c"];
    for name in names {
        create(&repo, &named(name)).await;
    }
    let tasks: Vec<_> = (0..36)
        .map(|n| {
            let repo = Arc::clone(&repo);
            let who = names[n % names.len()];
            tokio::spawn(async move {
                // Every fourth writer expects version 2, which most will find stale.
                let expected = (n % 4 == 0).then(|| Version::FIRST.next());
                let p = patch(&json!({"firstName": format!("Writer {n}")}));
                let result = repo
                    .update(&id(who), &p, expected, at("2026-03-01T00:00:00Z"))
                    .await;
                (who, result)
            })
        })
        .collect();
    let mut committed: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (who, result) = task.await.expect("the task ran");
        match result {
            Ok(_) => *committed.entry(who.to_owned()).or_default() += 1,
            Err(RepositoryError::VersionConflict { .. }) => {}
            Err(other) => panic!("an unexpected refusal: {other:?}"),
        }
    }
    let grouped = by_customer(&log.take().await);
    for name in names {
        let events = grouped.get(name).map(Vec::as_slice).unwrap_or_default();
        let versions: Vec<u64> = events.iter().map(|e| e.version.get()).collect();
        let patches = committed.get(name).copied().unwrap_or_default();
        let expected: Vec<u64> = (1..=patches + 1).collect();
        assert_eq!(versions, expected, "{name}: one event per change, in order");
        let last = stored(&repo, name).await.expect("still there").version();
        assert_eq!(versions.last().copied(), Some(last.get()), "{name}");
    }
}
