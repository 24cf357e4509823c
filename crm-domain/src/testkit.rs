//! The repository contract suite: every storage behaviour of `crm`, stated once, run against any
//! [`CustomerRepository`].
//!
//! Each behaviour is a public `async fn` taking a fresh repository and panicking when the repository
//! breaks the contract. [`repository_contract_tests!`](crate::repository_contract_tests) turns all of
//! them into `#[test]`s for one repository:
//!
//! ```text
//! // tests/contract.rs of a repository crate
//! crm_domain::repository_contract_tests!(|| async {
//!     std::sync::Arc::new(MyRepository::new()) as std::sync::Arc<dyn crm_domain::CustomerRepository>
//! });
//! ```
//!
//! The factory is called once per test, so every test starts from an empty store (a DynamoDB
//! repository gives each test its own table).

// Test support: a failed expectation is a panic, by design.
#![allow(clippy::expect_used, clippy::missing_panics_doc, clippy::panic)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

mod events;
mod listing;
pub use events::*;
pub use listing::*;

use crate::idempotency::{KeyState, KeyedWrite, RecordedOutcome, WriteKind, Written};
use crate::{
    BulkRejection, Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository, Email,
    Idempotency, IdempotencyKey, Listing, NewCustomer, PageLimit, RepositoryError,
    RequestFingerprint, Timestamp, Version,
};

/// How long the repositories under test MUST keep the tombstones of deleted customers: factories
/// build their repository with this retention, so that the suite can watch a tombstone expire.
pub const TOMBSTONE_RETENTION: Duration = Duration::from_secs(3);

/// Runs a contract case on a multi-threaded runtime, so concurrency cases really run in parallel.
///
/// # Panics
/// When the runtime cannot be built, or when the case fails.
pub fn run<F: Future<Output = ()>>(case: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the contract suite")
        .block_on(case);
}

/// Defines one `#[test]` per contract case (every name in [`CASES`]) for the repository made by
/// `$factory`, an expression that evaluates to a closure returning a future of
/// `Arc<dyn CustomerRepository>`.
#[macro_export]
macro_rules! repository_contract_tests {
    ($factory:expr) => {
        $crate::__contract_cases!(tests $factory);
    };
}

/// The one list of contract cases, expanded either into tests (`tests $factory`) or into their
/// names (`names`), so that the tests run and the cases listed cannot differ.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    (@list tests [$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::run(async {
                    let repository = ($factory)().await;
                    $crate::testkit::$case(repository).await;
                });
            }
        )*
    };
    (@list names [] $($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
    ($mode:ident $($factory:expr)?) => {
        $crate::__contract_cases! { @list $mode [$($factory)?]
            every_order_lists_every_customer_in_its_order,
            the_name_order_ignores_case_accents_and_width_then_goes_by_id,
            a_name_search_matches_the_start_of_either_name_or_of_both,
            a_cursor_belongs_to_the_listing_that_made_it,
            the_change_feed_lists_every_change_since_a_time_in_updated_order,
            a_delete_leaves_a_tombstone_in_the_feed_and_nowhere_else,
            a_tombstone_leaves_the_feed_after_its_retention,
            creating_a_deleted_id_again_replaces_its_tombstone,
            names_that_fold_long_are_listed_and_found,
            every_listing_of_an_empty_store_is_one_empty_page,
            walks_stay_exact_while_other_customers_are_written,
            a_deleted_id_can_be_created_again_as_a_new_customer,
            every_write_answers_what_it_stored_one_version_at_a_time,
            a_keyed_write_records_its_outcome_for_the_same_request_only,
            a_held_key_is_running_until_its_hold_runs_out,
            a_refused_keyed_write_gives_its_key_back,
            a_keyed_patch_that_changes_nothing_records_its_outcome,
            keyed_patches_and_deletes_record_their_outcomes,
            an_import_run_again_writes_nobody_twice,
            creates_and_reads_back_a_customer,
            create_never_overwrites_an_existing_id,
            get_of_an_unknown_id_is_none,
            update_of_an_unknown_id_is_not_found,
            delete_of_an_unknown_id_is_not_found,
            delete_removes_the_customer,
            update_sets_fields_bumps_the_version_and_keeps_the_rest,
            a_patch_of_values_the_customer_has_writes_nothing,
            a_patch_that_would_change_nothing_is_still_refused_when_stale,
            update_with_null_clears_optional_fields,
            update_merges_address_parts,
            update_of_address_parts_without_an_address_needs_line1,
            update_with_a_stale_version_is_rejected,
            delete_with_a_stale_version_is_rejected,
            emails_are_unique_on_create,
            email_uniqueness_ignores_case,
            emails_are_unique_on_update,
            an_email_is_released_when_its_customer_is_deleted,
            an_email_is_released_when_it_changes_or_is_cleared,
            a_customer_may_rewrite_its_own_email,
            find_by_email_ignores_case_and_follows_changes,
            a_full_walk_returns_every_customer_exactly_once,
            a_corrupt_cursor_is_rejected,
            an_empty_store_lists_one_empty_page,
            put_many_writes_all_and_reports_conflicts,
            concurrent_updates_with_one_expected_version_have_one_winner,
            concurrent_creates_with_one_email_have_one_winner,
            concurrent_creates_of_one_id_have_one_winner,
            concurrent_unconditional_updates_lose_no_change,
            a_refused_create_claims_no_email,
            a_refused_delete_keeps_the_email_claimed,
            a_cursor_outlives_the_customer_it_points_at,
            concurrent_email_changes_to_one_address_have_one_winner,
        }
    };
}

/// The name of every contract case, in the order they are defined: the tests
/// [`repository_contract_tests!`](crate::repository_contract_tests) makes.
pub const CASES: &[&str] = crate::__contract_cases!(names);

type Repo = Arc<dyn CustomerRepository>;

fn t0() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00.000Z").expect("a valid time")
}

fn t1() -> Timestamp {
    Timestamp::parse("2026-01-02T00:00:00.000Z").expect("a valid time")
}

/// A customer made the way the service makes one, from a JSON input.
fn customer(value: &Value) -> Customer {
    let input = NewCustomer::from_json(value).expect("a valid customer in the contract suite");
    Customer::create(input, CustomerId::generate(), t0())
}

fn named(id: &str) -> Customer {
    customer(&json!({"id": id, "firstName": "Ada", "lastName": "Lovelace"}))
}

fn with_email(id: &str, email: &str) -> Customer {
    customer(&json!({"id": id, "firstName": "Ada", "lastName": "Lovelace", "email": email}))
}

fn patch(value: &Value) -> CustomerPatch {
    CustomerPatch::from_json(value).expect("a valid patch in the contract suite")
}

fn id(s: &str) -> CustomerId {
    CustomerId::parse(s).expect("a valid id")
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("a valid email")
}

async fn create(repo: &Repo, c: &Customer) {
    repo.create(c).await.expect("create succeeds");
}

async fn stored(repo: &Repo, s: &str) -> Option<Customer> {
    repo.get(&id(s)).await.expect("get succeeds")
}

/// The customer found by `address`, once the lookup names the owner `expected` (or none).
///
/// Lookup by email may read an index that lags the writes before it (DynamoDB's global secondary
/// indexes are eventually consistent; the port allows it), so the suite gives it two seconds to
/// agree. A repository that never agrees still fails.
async fn found_by_email(repo: &Repo, address: &str, expected: Option<&str>) -> Option<Customer> {
    let want = expected.map(id);
    let mut found = None;
    for _ in 0..40 {
        found = repo
            .find_by_email(&email(address))
            .await
            .expect("find_by_email succeeds");
        if found.as_ref().map(|c| c.id().clone()) == want {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "find_by_email({address}) found {:?}, expected {want:?}",
        found.map(|c| c.id().clone())
    );
}

fn assert_email_taken<T: std::fmt::Debug>(result: &Result<T, RepositoryError>) {
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
}

/// What a delete leaves of a customer is nothing any read shows, and its id is free: a create of
/// the same id is a new customer, at version 1, with the deleted customer's email free for it.
pub async fn a_deleted_id_can_be_created_again_as_a_new_customer(repo: Repo) {
    create(&repo, &with_email("again", "again@example.com")).await;
    repo.update(
        &id("again"),
        &patch(&json!({"lastName": "Byron"})),
        None,
        t1(),
    )
    .await
    .expect("update succeeds");
    repo.delete(&id("again"), Some(Version::FIRST.next()))
        .await
        .expect("delete succeeds");
    let stale = repo
        .update(&id("again"), &patch(&json!({"firstName": "X"})), None, t1())
        .await;
    assert!(matches!(stale, Err(RepositoryError::NotFound)), "{stale:?}");

    let reborn = customer(&json!({
        "id": "again", "firstName": "Grace", "lastName": "Hopper", "email": "again@example.com"
    }));
    create(&repo, &reborn).await;
    assert_eq!(stored(&repo, "again").await, Some(reborn.clone()));
    assert_eq!(reborn.version(), Version::FIRST);
    let page = repo
        .list(&Listing::default(), PageLimit::MAX, None)
        .await
        .expect("list succeeds");
    assert_eq!(page.items, [reborn]);
    let patched = repo
        .update(
            &id("again"),
            &patch(&json!({"firstName": "Amazing Grace"})),
            Some(Version::FIRST),
            t1(),
        )
        .await
        .expect("a patch of the new customer at its version 1");
    assert_eq!(patched.version(), Version::FIRST.next());
    found_by_email(&repo, "again@example.com", Some("again")).await;
}

/// Every successful write answers exactly what it stored, and moves the version by one: no write,
/// however it reached the store, skips a version or answers another state than its own.
pub async fn every_write_answers_what_it_stored_one_version_at_a_time(repo: Repo) {
    create(&repo, &named("steps")).await;
    let patches = [
        (json!({"firstName": "Augusta"}), None),
        (json!({"email": "steps@example.com"}), Some(2)),
        (json!({"phone": "+441234567890"}), None),
        (
            json!({"email": null, "address": {"line1": "1 Main St"}}),
            Some(4),
        ),
    ];
    let mut version = Version::FIRST;
    for (changes, expected) in patches {
        let expected =
            expected.map(|v| Version::try_from(v).expect("a valid version in the contract suite"));
        let answered = repo
            .update(&id("steps"), &patch(&changes), expected, t1())
            .await
            .expect("update succeeds");
        version = version.next();
        assert_eq!(answered.version(), version, "after {changes}");
        assert_eq!(
            stored(&repo, "steps").await,
            Some(answered),
            "after {changes}"
        );
    }
    repo.delete(&id("steps"), Some(version))
        .await
        .expect("delete at the last version succeeds");
    assert_eq!(stored(&repo, "steps").await, None);
}

fn keyed(key: &str, fingerprint: &str) -> Idempotency {
    Idempotency {
        key: IdempotencyKey::parse(key).expect("a valid key"),
        fingerprint: RequestFingerprint::new(fingerprint),
    }
}

const HOLD: Duration = Duration::from_secs(60);

/// Begins `key` and expects it fresh: its lease.
async fn fresh(repo: &Repo, key: &Idempotency) -> crate::idempotency::KeyLease {
    match repo.begin_keyed(key, HOLD).await.expect("begin succeeds") {
        KeyState::Fresh(lease) => lease,
        other => panic!("expected a fresh key, found {other:?}"),
    }
}

/// The first write under a key records its outcome: the same request again is told that outcome,
/// another request with that key is told the key is taken, and nothing is written twice.
pub async fn a_keyed_write_records_its_outcome_for_the_same_request_only(repo: Repo) {
    let key = keyed("order-1", "fingerprint-a");
    let lease = fresh(&repo, &key).await;
    let created = named("keyed");
    let written = repo
        .write_keyed(&KeyedWrite::Create(created.clone()), &lease)
        .await
        .expect("the keyed create succeeds");
    assert_eq!(written, Written::Customer(created.clone()));
    let recorded = RecordedOutcome {
        kind: WriteKind::Create,
        id: id("keyed"),
        version: Some(Version::FIRST),
    };
    for _ in 0..2 {
        assert_eq!(
            repo.begin_keyed(&key, HOLD).await.expect("begin succeeds"),
            KeyState::Done(recorded.clone())
        );
    }
    assert_eq!(
        repo.begin_keyed(&keyed("order-1", "fingerprint-b"), HOLD)
            .await
            .expect("begin succeeds"),
        KeyState::OtherRequest
    );
    // A lease of a done key writes nothing more.
    let again = repo
        .write_keyed(&KeyedWrite::Create(named("other")), &lease)
        .await;
    assert!(
        matches!(again, Err(RepositoryError::Unavailable { .. })),
        "{again:?}"
    );
    assert_eq!(stored(&repo, "other").await, None);
    assert_eq!(stored(&repo, "keyed").await, Some(created));
}

/// A key is held by one request at a time; a hold that runs out lets the same request take the
/// key over, and the first holder then writes nothing.
pub async fn a_held_key_is_running_until_its_hold_runs_out(repo: Repo) {
    let key = keyed("order-2", "fingerprint-a");
    let first = fresh(&repo, &key).await;
    assert_eq!(
        repo.begin_keyed(&key, HOLD).await.expect("begin succeeds"),
        KeyState::Running
    );
    let short = keyed("order-3", "fingerprint-a");
    let stale = match repo
        .begin_keyed(&short, Duration::ZERO)
        .await
        .expect("begin")
    {
        KeyState::Fresh(lease) => lease,
        other => panic!("expected a fresh key, found {other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken_over = fresh(&repo, &short).await;
    let late = repo
        .write_keyed(&KeyedWrite::Create(named("late")), &stale)
        .await;
    assert!(
        matches!(late, Err(RepositoryError::Unavailable { .. })),
        "{late:?}"
    );
    assert_eq!(stored(&repo, "late").await, None);
    repo.write_keyed(&KeyedWrite::Create(named("taker")), &taken_over)
        .await
        .expect("the new holder writes");
    repo.write_keyed(&KeyedWrite::Create(named("first")), &first)
        .await
        .expect("the first key was never lost");
}

/// A keyed write that is refused changes nothing and records nothing: once the key is given
/// back, the same request runs again.
pub async fn a_refused_keyed_write_gives_its_key_back(repo: Repo) {
    create(&repo, &named("taken")).await;
    let key = keyed("order-4", "fingerprint-a");
    let lease = fresh(&repo, &key).await;
    let refused = repo
        .write_keyed(&KeyedWrite::Create(named("taken")), &lease)
        .await;
    assert!(
        matches!(refused, Err(RepositoryError::AlreadyExists)),
        "{refused:?}"
    );
    repo.release_key(&lease).await.expect("release succeeds");
    let lease = fresh(&repo, &key).await;
    repo.delete(&id("taken"), None)
        .await
        .expect("delete succeeds");
    repo.write_keyed(&KeyedWrite::Create(named("taken")), &lease)
        .await
        .expect("the same request, run again, succeeds");
}

/// A patch under a key that changes no value writes no customer, but records its outcome (the
/// customer's version as it is): the same request sent again is answered from the record, not run
/// again on a customer changed in between.
pub async fn a_keyed_patch_that_changes_nothing_records_its_outcome(repo: Repo) {
    create(&repo, &with_email("kn", "kn@example.com")).await;
    // A keyed write reads first in every store: one patch of the email, one of a name.
    for (key, changes) in [
        ("noop-email", json!({"email": "kn@example.com"})),
        ("noop-name", json!({"lastName": "Lovelace"})),
    ] {
        let key = keyed(key, "fingerprint-a");
        let lease = fresh(&repo, &key).await;
        let write = KeyedWrite::Update {
            id: id("kn"),
            patch: patch(&changes),
            expected: Some(Version::FIRST),
            now: t1(),
        };
        let Written::Customer(answered) = repo
            .write_keyed(&write, &lease)
            .await
            .expect("a keyed patch that changes nothing succeeds")
        else {
            panic!("a patch answers the customer");
        };
        assert_eq!(answered.version(), Version::FIRST, "{changes}");
        assert_eq!(stored(&repo, "kn").await, Some(answered), "{changes}");
        assert_eq!(
            repo.begin_keyed(&key, HOLD).await.expect("begin"),
            KeyState::Done(RecordedOutcome {
                kind: WriteKind::Update,
                id: id("kn"),
                version: Some(Version::FIRST),
            }),
            "{changes}"
        );
    }
}

/// Patches and deletes under a key record what they did, and a patch refused for its version
/// records nothing.
pub async fn keyed_patches_and_deletes_record_their_outcomes(repo: Repo) {
    create(&repo, &with_email("kp", "kp@example.com")).await;
    let key = keyed("patch-1", "fingerprint-a");
    let lease = fresh(&repo, &key).await;
    let write = KeyedWrite::Update {
        id: id("kp"),
        patch: patch(&json!({"email": "kp2@example.com"})),
        expected: Some(Version::FIRST),
        now: t1(),
    };
    let Written::Customer(patched) = repo.write_keyed(&write, &lease).await.expect("patch") else {
        panic!("a patch answers the customer");
    };
    assert_eq!(patched.version(), Version::FIRST.next());
    assert_eq!(stored(&repo, "kp").await, Some(patched));
    assert_eq!(
        repo.begin_keyed(&key, HOLD).await.expect("begin"),
        KeyState::Done(RecordedOutcome {
            kind: WriteKind::Update,
            id: id("kp"),
            version: Some(Version::FIRST.next()),
        })
    );

    let key = keyed("delete-1", "fingerprint-a");
    let lease = fresh(&repo, &key).await;
    let stale = KeyedWrite::Delete {
        id: id("kp"),
        expected: Some(Version::FIRST),
    };
    let refused = repo.write_keyed(&stale, &lease).await;
    assert!(
        matches!(refused, Err(RepositoryError::VersionConflict { .. })),
        "{refused:?}"
    );
    let delete = KeyedWrite::Delete {
        id: id("kp"),
        expected: None,
    };
    assert_eq!(
        repo.write_keyed(&delete, &lease).await.expect("delete"),
        Written::Deleted
    );
    assert_eq!(stored(&repo, "kp").await, None);
    assert_eq!(
        repo.begin_keyed(&key, HOLD).await.expect("begin"),
        KeyState::Done(RecordedOutcome {
            kind: WriteKind::Delete,
            id: id("kp"),
            version: None,
        })
    );
    // The email of the deleted customer is free.
    create(&repo, &with_email("kp-next", "kp2@example.com")).await;
}

/// An import through the service gives the customers without an id ids derived from the input
/// and their position: run again, it writes nobody twice, and every customer is accounted for.
pub async fn an_import_run_again_writes_nobody_twice(repo: Repo) {
    let service = crate::CustomerService::new(Arc::clone(&repo));
    let inputs = || {
        vec![
            NewCustomer::from_json(&json!({"firstName": "A", "lastName": "One"})).expect("valid"),
            NewCustomer::from_json(
                &json!({"firstName": "B", "lastName": "Two", "email": "two@example.com"}),
            )
            .expect("valid"),
            NewCustomer::from_json(&json!({"id": "given", "firstName": "C", "lastName": "Three"}))
                .expect("valid"),
        ]
    };
    let source = crate::ImportSource {
        name: "customers.csv sha256:0f1e",
        first_position: 0,
    };
    let first = service.import(source, inputs()).await.expect("import");
    assert_eq!((first.created, first.rejected.len()), (3, 0));
    assert!(!first.interrupted());
    let again = service
        .import(source, inputs())
        .await
        .expect("import again");
    assert_eq!(again.created, 0);
    assert!(
        again
            .rejected
            .iter()
            .all(|(_, reason)| *reason == BulkRejection::AlreadyExists),
        "{again:?}"
    );
    assert_eq!(again.rejected.len(), 3);
    let page = repo
        .list(&Listing::default(), PageLimit::MAX, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 3);
    // The next batch of the same input counts on: other positions, other ids.
    let next = crate::ImportSource {
        name: source.name,
        first_position: 3,
    };
    let more = vec![
        NewCustomer::from_json(&json!({"firstName": "D", "lastName": "Four"})).expect("valid"),
    ];
    assert_eq!(service.import(next, more).await.expect("import").created, 1);
}

/// A customer can be read back exactly as it was written.
pub async fn creates_and_reads_back_a_customer(repo: Repo) {
    let c = customer(&json!({
        "id": "c-1", "firstName": "Ada", "lastName": "Lovelace", "email": "Ada@Example.com",
        "phone": "+441234567890",
        "address": {"line1": "12 St James's Square", "line2": "Flat 1", "city": "London",
                    "region": "Greater London", "postalCode": "SW1Y 4JH", "country": "GB"}
    }));
    create(&repo, &c).await;
    assert_eq!(stored(&repo, "c-1").await, Some(c));
}

/// A create with an id in use fails and leaves the stored customer as it was.
pub async fn create_never_overwrites_an_existing_id(repo: Repo) {
    let first = with_email("same", "first@example.com");
    create(&repo, &first).await;
    let second = customer(&json!({"id": "same", "firstName": "Grace", "lastName": "Hopper"}));
    assert!(matches!(
        repo.create(&second).await,
        Err(RepositoryError::AlreadyExists)
    ));
    assert_eq!(stored(&repo, "same").await, Some(first));
}

/// Reading an id nobody has is `None`, not an error.
pub async fn get_of_an_unknown_id_is_none(repo: Repo) {
    assert_eq!(stored(&repo, "nobody").await, None);
}

/// Patching an id nobody has fails and creates nothing.
pub async fn update_of_an_unknown_id_is_not_found(repo: Repo) {
    let p = patch(&json!({"firstName": "Grace"}));
    for expected in [None, Some(Version::FIRST)] {
        let result = repo.update(&id("nobody"), &p, expected, t1()).await;
        assert!(
            matches!(result, Err(RepositoryError::NotFound)),
            "{result:?}"
        );
    }
    let email_patch = patch(&json!({"email": "ghost@example.com"}));
    let result = repo.update(&id("nobody"), &email_patch, None, t1()).await;
    assert!(
        matches!(result, Err(RepositoryError::NotFound)),
        "{result:?}"
    );
    assert_eq!(stored(&repo, "nobody").await, None);
    // The email of the failed patch was not claimed.
    create(&repo, &with_email("real", "ghost@example.com")).await;
}

/// Deleting an id nobody has fails.
pub async fn delete_of_an_unknown_id_is_not_found(repo: Repo) {
    for expected in [None, Some(Version::FIRST)] {
        let result = repo.delete(&id("nobody"), expected).await;
        assert!(
            matches!(result, Err(RepositoryError::NotFound)),
            "{result:?}"
        );
    }
}

/// A deleted customer is gone from reads and listings, and a second delete is `NotFound`.
pub async fn delete_removes_the_customer(repo: Repo) {
    create(&repo, &with_email("gone", "gone@example.com")).await;
    create(&repo, &named("kept")).await;
    repo.delete(&id("gone"), None)
        .await
        .expect("delete succeeds");
    assert_eq!(stored(&repo, "gone").await, None);
    let page = repo
        .list(&Listing::default(), PageLimit::MAX, None)
        .await
        .expect("list succeeds");
    let ids: Vec<&str> = page.items.iter().map(|c| c.id().as_str()).collect();
    assert_eq!(ids, ["kept"]);
    assert!(matches!(
        repo.delete(&id("gone"), None).await,
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(
        repo.find_by_email(&email("gone@example.com"))
            .await
            .expect("find"),
        None
    );
}

/// A patch changes the fields it names, bumps the version by one, sets `updatedAt`, keeps the rest.
pub async fn update_sets_fields_bumps_the_version_and_keeps_the_rest(repo: Repo) {
    let c = customer(&json!({
        "id": "c", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
        "address": {"line1": "1 Main St", "country": "GB"}
    }));
    create(&repo, &c).await;
    let updated = repo
        .update(
            &id("c"),
            &patch(&json!({"firstName": "Augusta", "phone": "+441234567890"})),
            None,
            t1(),
        )
        .await
        .expect("update succeeds");
    assert_eq!(updated.first_name().as_str(), "Augusta");
    assert_eq!(
        updated.phone().map(crate::Phone::as_str),
        Some("+441234567890")
    );
    assert_eq!(updated.last_name(), c.last_name());
    assert_eq!(updated.email(), c.email());
    assert_eq!(updated.address(), c.address());
    assert_eq!(updated.version(), Version::FIRST.next());
    assert_eq!(updated.created_at(), c.created_at());
    assert_eq!(updated.updated_at(), t1());
    assert_eq!(stored(&repo, "c").await, Some(updated));
}

/// Creates two customers, `same` (every field) and `bare` (names only), and answers patches that
/// change none of their values: one for each way a store reads or writes a patch (in place, after
/// reading a name, with the email's claims, clears of absent fields, and `{}` at the port).
async fn customers_and_unchanging_patches(repo: &Repo) -> Vec<(&'static str, Value)> {
    create(
        repo,
        &customer(&json!({
            "id": "same", "firstName": "Ada", "lastName": "Lovelace", "email": "Ada@example.com",
            "phone": "+441234567890",
            "address": {"line1": "1 Main St", "city": "London", "country": "GB"}
        })),
    )
    .await;
    create(repo, &named("bare")).await;
    vec![
        ("same", json!({"firstName": "Ada"})),
        ("same", json!({"firstName": "Ada", "lastName": "Lovelace"})),
        ("same", json!({"phone": "+441234567890"})),
        ("same", json!({"address": {"city": "London"}})),
        (
            "same",
            json!({"address": {"line1": "1 Main St", "city": "London", "country": "GB"}}),
        ),
        ("same", json!({"email": "Ada@example.com"})),
        (
            "same",
            json!({"email": "Ada@example.com", "lastName": "Lovelace"}),
        ),
        ("bare", json!({"phone": null})),
        ("bare", json!({"address": null})),
        ("bare", json!({"email": null})),
        ("bare", json!({})),
    ]
}

/// A patch that changes no value writes nothing, whichever way the store would have written it:
/// the customer comes back as it is, at its version and `updatedAt`. One value changed among
/// unchanged ones is a change, and so is an email in another case.
pub async fn a_patch_of_values_the_customer_has_writes_nothing(repo: Repo) {
    for (who, changes) in &customers_and_unchanging_patches(&repo).await {
        let before = stored(&repo, who).await.expect("present");
        for expected in [None, Some(Version::FIRST)] {
            let answered = repo
                .update(&id(who), &patch(changes), expected, t1())
                .await
                .expect("a patch that changes nothing succeeds");
            assert_eq!(answered, before, "{changes}, {expected:?}");
            assert_eq!(
                stored(&repo, who).await.as_ref(),
                Some(&before),
                "{changes}: nothing written"
            );
        }
    }
    let one_of_two = repo
        .update(
            &id("same"),
            &patch(&json!({"firstName": "Ada", "lastName": "King"})),
            None,
            t1(),
        )
        .await
        .expect("one value changed");
    assert_eq!(one_of_two.version(), Version::FIRST.next());
    let recased = repo
        .update(
            &id("same"),
            &patch(&json!({"email": "ada@example.com"})),
            None,
            t1(),
        )
        .await
        .expect("the email in another case");
    assert_eq!(recased.version(), one_of_two.version().next());
}

/// At a stale version a patch that would change nothing is refused as any other, whichever way
/// the store reads or writes it; so are parts of an address the customer does not have, without
/// `line1`, even when they only clear.
pub async fn a_patch_that_would_change_nothing_is_still_refused_when_stale(repo: Repo) {
    let unchanging = customers_and_unchanging_patches(&repo).await;
    // Changes that leave every patch above one that changes nothing.
    for (who, changes) in [
        ("same", json!({"address": {"line2": "Flat 2"}})),
        ("bare", json!({"lastName": "Byron"})),
    ] {
        let moved = repo
            .update(&id(who), &patch(&changes), None, t1())
            .await
            .expect("a change");
        assert_eq!(moved.version(), Version::FIRST.next());
    }
    for (who, changes) in &unchanging {
        let stale = repo
            .update(&id(who), &patch(changes), Some(Version::FIRST), t1())
            .await;
        assert!(
            matches!(stale, Err(RepositoryError::VersionConflict { current }) if current == Version::FIRST.next()),
            "{changes}: {stale:?}"
        );
    }
    let no_line1 = repo
        .update(
            &id("bare"),
            &patch(&json!({"address": {"city": null}})),
            None,
            t1(),
        )
        .await;
    assert!(
        matches!(no_line1, Err(RepositoryError::InvalidPatch(_))),
        "{no_line1:?}"
    );
}

/// `null` removes an optional field.
pub async fn update_with_null_clears_optional_fields(repo: Repo) {
    create(
        &repo,
        &customer(&json!({
            "id": "c", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
            "phone": "+441234567890", "address": {"line1": "1 Main St"}
        })),
    )
    .await;
    let updated = repo
        .update(
            &id("c"),
            &patch(&json!({"email": null, "phone": null, "address": null})),
            None,
            t1(),
        )
        .await
        .expect("update succeeds");
    assert_eq!(
        (updated.email(), updated.phone(), updated.address()),
        (None, None, None)
    );
    assert_eq!(stored(&repo, "c").await, Some(updated));
}

/// An address patch merges into the stored address (RFC 7396).
pub async fn update_merges_address_parts(repo: Repo) {
    create(
        &repo,
        &customer(&json!({
            "id": "c", "firstName": "Ada", "lastName": "Lovelace",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"}
        })),
    )
    .await;
    let updated = repo
        .update(
            &id("c"),
            &patch(&json!({"address": {"city": null, "postalCode": "12345", "line2": "Suite 9"}})),
            None,
            t1(),
        )
        .await
        .expect("update succeeds");
    let expected =
        json!({"line1": "1 Main St", "line2": "Suite 9", "postalCode": "12345", "country": "US"});
    assert_eq!(
        serde_json::to_value(updated.address()).expect("json"),
        expected
    );
    assert_eq!(stored(&repo, "c").await, Some(updated));
}

/// Address parts cannot start an address without its first line; with it they can.
pub async fn update_of_address_parts_without_an_address_needs_line1(repo: Repo) {
    let c = named("c");
    create(&repo, &c).await;
    let result = repo
        .update(
            &id("c"),
            &patch(&json!({"address": {"city": "Springfield"}})),
            None,
            t1(),
        )
        .await;
    match result {
        Err(RepositoryError::InvalidPatch(errors)) => assert!(errors.has_field("address.line1")),
        other => panic!("expected InvalidPatch, got {other:?}"),
    }
    assert_eq!(stored(&repo, "c").await, Some(c));
    let updated = repo
        .update(
            &id("c"),
            &patch(&json!({"address": {"line1": "1 Main St", "city": "Springfield"}})),
            None,
            t1(),
        )
        .await
        .expect("update succeeds");
    let expected = json!({"line1": "1 Main St", "city": "Springfield"});
    assert_eq!(
        serde_json::to_value(updated.address()).expect("json"),
        expected
    );
}

/// A patch at a stale version is a `VersionConflict` naming the current version, and writes nothing.
pub async fn update_with_a_stale_version_is_rejected(repo: Repo) {
    let c = named("c");
    create(&repo, &c).await;
    let p = patch(&json!({"lastName": "Byron"}));
    let v1 = Version::FIRST;
    let v2 = v1.next();
    let result = repo.update(&id("c"), &p, Some(v2), t1()).await;
    assert!(
        matches!(result, Err(RepositoryError::VersionConflict { current }) if current == v1),
        "{result:?}"
    );
    assert_eq!(stored(&repo, "c").await, Some(c));
    let updated = repo
        .update(&id("c"), &p, Some(v1), t1())
        .await
        .expect("update at v1");
    assert_eq!(updated.version(), v2);
    let result = repo.update(&id("c"), &p, Some(v1), t1()).await;
    assert!(
        matches!(result, Err(RepositoryError::VersionConflict { current }) if current == v2),
        "{result:?}"
    );
    // A stale email change claims nothing.
    let result = repo
        .update(
            &id("c"),
            &patch(&json!({"email": "c@example.com"})),
            Some(v1),
            t1(),
        )
        .await;
    assert!(
        matches!(result, Err(RepositoryError::VersionConflict { .. })),
        "{result:?}"
    );
    create(&repo, &with_email("other", "c@example.com")).await;
}

/// A delete at a stale version is a `VersionConflict` and keeps the customer.
pub async fn delete_with_a_stale_version_is_rejected(repo: Repo) {
    create(&repo, &named("c")).await;
    let stale = Version::FIRST.next();
    let result = repo.delete(&id("c"), Some(stale)).await;
    assert!(
        matches!(result, Err(RepositoryError::VersionConflict { current }) if current == Version::FIRST),
        "{result:?}"
    );
    assert!(stored(&repo, "c").await.is_some());
    repo.delete(&id("c"), Some(Version::FIRST))
        .await
        .expect("delete at the current version");
    assert_eq!(stored(&repo, "c").await, None);
}

/// Two customers cannot be created with one email; the loser is not stored.
pub async fn emails_are_unique_on_create(repo: Repo) {
    create(&repo, &with_email("a", "shared@example.com")).await;
    let result = repo.create(&with_email("b", "shared@example.com")).await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(stored(&repo, "b").await, None);
}

/// Uniqueness compares emails without regard to case.
pub async fn email_uniqueness_ignores_case(repo: Repo) {
    create(&repo, &with_email("a", "Ada@Example.com")).await;
    let result = repo.create(&with_email("b", "ada@example.COM")).await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
}

/// A patch cannot take another customer's email; the patched customer is left as it was.
pub async fn emails_are_unique_on_update(repo: Repo) {
    create(&repo, &with_email("a", "a@example.com")).await;
    let b = with_email("b", "b@example.com");
    create(&repo, &b).await;
    let result = repo
        .update(
            &id("b"),
            &patch(&json!({"email": "A@EXAMPLE.com"})),
            None,
            t1(),
        )
        .await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(stored(&repo, "b").await, Some(b));
    // b still owns its own email.
    let result = repo.create(&with_email("c", "b@example.com")).await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
}

/// Deleting a customer frees its email for others.
pub async fn an_email_is_released_when_its_customer_is_deleted(repo: Repo) {
    create(&repo, &with_email("a", "reuse@example.com")).await;
    repo.delete(&id("a"), None).await.expect("delete");
    create(&repo, &with_email("b", "Reuse@example.com")).await;
}

/// Changing or clearing an email frees the old one; the new one is owned.
pub async fn an_email_is_released_when_it_changes_or_is_cleared(repo: Repo) {
    create(&repo, &with_email("a", "one@example.com")).await;
    repo.update(
        &id("a"),
        &patch(&json!({"email": "two@example.com"})),
        None,
        t1(),
    )
    .await
    .expect("change email");
    create(&repo, &with_email("b", "one@example.com")).await;
    let result = repo.create(&with_email("c", "two@example.com")).await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
    repo.update(&id("a"), &patch(&json!({"email": null})), None, t1())
        .await
        .expect("clear email");
    create(&repo, &with_email("c", "two@example.com")).await;
    // a cannot take back the email b now owns.
    let result = repo
        .update(
            &id("a"),
            &patch(&json!({"email": "ONE@example.com"})),
            None,
            t1(),
        )
        .await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
    // Nor can a new customer, twice over.
    let result = repo.create(&with_email("d", "one@example.com")).await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
}

/// A customer may set its own email again, in another case.
pub async fn a_customer_may_rewrite_its_own_email(repo: Repo) {
    create(&repo, &with_email("a", "ada@example.com")).await;
    let updated = repo
        .update(
            &id("a"),
            &patch(&json!({"email": "ADA@example.com"})),
            None,
            t1(),
        )
        .await
        .expect("same email, other case");
    assert_eq!(updated.email().map(Email::as_str), Some("ADA@example.com"));
    let again = repo
        .update(
            &id("a"),
            &patch(&json!({"email": "ADA@example.com"})),
            None,
            t1(),
        )
        .await
        .expect("same email again");
    assert_eq!(again, updated, "the same email again changes nothing");
    let result = repo.create(&with_email("b", "ada@example.com")).await;
    assert!(
        matches!(result, Err(RepositoryError::EmailTaken)),
        "{result:?}"
    );
}

/// Lookup by email ignores case and follows changes and deletes.
pub async fn find_by_email_ignores_case_and_follows_changes(repo: Repo) {
    create(&repo, &with_email("a", "Ada@Example.com")).await;
    create(&repo, &with_email("b", "bob@example.com")).await;
    found_by_email(&repo, "ada@EXAMPLE.com", Some("a")).await;
    repo.update(
        &id("a"),
        &patch(&json!({"email": "lovelace@example.com"})),
        None,
        t1(),
    )
    .await
    .expect("change email");
    found_by_email(&repo, "ada@example.com", None).await;
    let found = found_by_email(&repo, "Lovelace@example.com", Some("a")).await;
    assert_eq!(found.map(|c| c.version()), Some(Version::FIRST.next()));
    repo.delete(&id("a"), None).await.expect("delete");
    found_by_email(&repo, "lovelace@example.com", None).await;
    found_by_email(&repo, "nobody@example.com", None).await;
    found_by_email(&repo, "BOB@example.com", Some("b")).await;
}

/// Walking the listing page by page returns every customer exactly once, for page sizes 1, 7, 100.
pub async fn a_full_walk_returns_every_customer_exactly_once(repo: Repo) {
    let all: Vec<Customer> = (0..250)
        .map(|i| {
            if i % 2 == 0 {
                with_email(&format!("walk-{i:03}"), &format!("walk{i}@example.com"))
            } else {
                named(&format!("walk-{i:03}"))
            }
        })
        .collect();
    let report = repo.put_many(&all).await.expect("put_many succeeds");
    assert_eq!((report.created, report.rejected.len()), (250, 0));
    let expected: HashSet<CustomerId> = all.iter().map(|c| c.id().clone()).collect();
    for size in [1, 7, 100] {
        let limit = PageLimit::new(size).expect("a valid limit");
        let mut seen = HashSet::new();
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = repo
                .list(&Listing::default(), limit, cursor.as_ref())
                .await
                .expect("list succeeds");
            pages += 1;
            assert!(
                page.items.len() <= limit.get(),
                "a page holds at most its limit"
            );
            for c in page.items {
                assert!(
                    seen.insert(c.id().clone()),
                    "a customer came twice in a walk"
                );
            }
            match page.next_cursor {
                Some(next) => {
                    cursor = Some(Cursor::parse(next.as_str()).expect("a cursor round-trips"));
                }
                None => break,
            }
            assert!(pages <= 1000, "the walk does not end");
        }
        assert_eq!(seen, expected, "page size {size}");
    }
}

/// A cursor this repository did not issue is `InvalidCursor`, never another error: garbage,
/// a cursor sealed with another key, a cursor of this repository with one character changed.
pub async fn a_corrupt_cursor_is_rejected(repo: Repo) {
    for n in 0..3 {
        create(&repo, &named(&format!("a{n}"))).await;
    }
    let issued = repo
        .list(
            &Listing::default(),
            PageLimit::new(1).expect("a valid limit"),
            None,
        )
        .await
        .expect("list succeeds")
        .next_cursor
        .expect("a page of one of three has a next");
    let mut altered = issued.as_str().as_bytes().to_vec();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("base64 is ASCII");
    let foreign = crate::CursorKey::generate();
    let forged = [
        Cursor::parse("garbage").expect("well-formed base64"),
        Cursor::parse(&"A".repeat(600)).expect("well-formed base64"),
        Cursor::parse(&altered).expect("well-formed base64"),
        foreign.seal("createdAt|2026-01-01T00:00:00.000Z#a0"),
        foreign.seal(""),
    ];
    for cursor in &forged {
        let result = repo
            .list(&Listing::default(), PageLimit::DEFAULT, Some(cursor))
            .await;
        assert!(
            matches!(result, Err(RepositoryError::InvalidCursor)),
            "{cursor}: {result:?}"
        );
    }
}

/// An empty store lists as one empty last page.
pub async fn an_empty_store_lists_one_empty_page(repo: Repo) {
    let page = repo
        .list(&Listing::default(), PageLimit::DEFAULT, None)
        .await
        .expect("list succeeds");
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

/// Bulk import writes what it can and reports each conflict in input order.
pub async fn put_many_writes_all_and_reports_conflicts(repo: Repo) {
    create(&repo, &with_email("old", "old@example.com")).await;
    let batch = vec![
        named("n1"),
        named("old"),
        with_email("n2", "OLD@example.com"),
        with_email("n3", "n3@example.com"),
        with_email("n4", "N3@example.com"),
        named("n1"),
        named("n5"),
    ];
    let report = repo.put_many(&batch).await.expect("put_many succeeds");
    assert_eq!(report.created, 3);
    assert_eq!(
        report.rejected,
        vec![
            (id("old"), BulkRejection::AlreadyExists),
            (id("n2"), BulkRejection::EmailTaken),
            (id("n4"), BulkRejection::EmailTaken),
            (id("n1"), BulkRejection::AlreadyExists),
        ]
    );
    for created in ["n1", "n3", "n5"] {
        assert!(stored(&repo, created).await.is_some(), "{created}");
    }
    for rejected in ["n2", "n4"] {
        assert_eq!(stored(&repo, rejected).await, None, "{rejected}");
    }
    assert_eq!(
        stored(&repo, "old").await.map(|c| c.email().cloned()),
        Some(Some(email("old@example.com")))
    );
    let empty = repo.put_many(&[]).await.expect("an empty import");
    assert_eq!(empty.created, 0);
}

/// 100 patches racing at one expected version: exactly one wins, the others see a conflict.
pub async fn concurrent_updates_with_one_expected_version_have_one_winner(repo: Repo) {
    create(&repo, &with_email("race", "race@example.com")).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                let p = if i % 2 == 0 {
                    patch(&json!({"lastName": format!("Writer {i}")}))
                } else {
                    patch(&json!({"email": format!("race{i}@example.com")}))
                };
                repo.update(&id("race"), &p, Some(Version::FIRST), t1())
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(_) => wins += 1,
            Err(RepositoryError::VersionConflict { .. }) => {}
            Err(other) => panic!("a losing patch must be a VersionConflict, got {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    let after = stored(&repo, "race").await.expect("still there");
    assert_eq!(after.version(), Version::FIRST.next());
    // Only the stored email is claimed: a winning email change released the old address, and no
    // losing patch claimed its address.
    let owned = after.email().expect("an email").as_str().to_owned();
    assert_email_taken(&repo.create(&with_email("probe", &owned)).await);
    for i in (1..100).step_by(2) {
        let address = format!("race{i}@example.com");
        if address != owned {
            create(&repo, &with_email(&format!("free-{i}"), &address)).await;
        }
    }
    if owned != "race@example.com" {
        create(&repo, &with_email("released", "race@example.com")).await;
    }
}

/// 50 creates racing for one email (in varied case): exactly one wins.
pub async fn concurrent_creates_with_one_email_have_one_winner(repo: Repo) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                let address = if i % 2 == 0 {
                    "Hot@Example.com"
                } else {
                    "hot@example.COM"
                };
                repo.create(&with_email(&format!("racer-{i}"), address))
                    .await
                    .map(|()| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(i) => winners.push(i),
            Err(RepositoryError::EmailTaken) => {}
            Err(other) => panic!("a losing create must be EmailTaken, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    found_by_email(
        &repo,
        "hot@example.com",
        Some(&format!("racer-{}", winners[0])),
    )
    .await;
    let page = repo
        .list(&Listing::default(), PageLimit::MAX, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1, "losers leave nothing behind");
}

/// 20 creates racing for one id: exactly one wins.
pub async fn concurrent_creates_of_one_id_have_one_winner(repo: Repo) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                let c = with_email("contested", &format!("contender{i}@example.com"));
                repo.create(&c).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(()) => wins += 1,
            Err(RepositoryError::AlreadyExists) => {}
            Err(other) => panic!("a losing create must be AlreadyExists, got {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    // Only the winner's email is claimed.
    let winner = stored(&repo, "contested").await.expect("the winner");
    let winner_email = winner.email().expect("an email").as_str().to_owned();
    for i in 0..20 {
        let address = format!("contender{i}@example.com");
        if address != winner_email {
            create(&repo, &with_email(&format!("free-{i}"), &address)).await;
        }
    }
}

/// Patches without a precondition, racing: none is lost, each is applied to its own version.
pub async fn concurrent_unconditional_updates_lose_no_change(repo: Repo) {
    create(&repo, &named("busy")).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                let p = patch(&json!({"firstName": format!("Writer {i}")}));
                repo.update(&id("busy"), &p, None, t1()).await
            })
        })
        .collect();
    let mut versions = HashSet::new();
    for task in tasks {
        let updated = task
            .await
            .expect("the task ran")
            .expect("an unconditional patch succeeds");
        assert!(
            versions.insert(updated.version()),
            "two patches produced one version"
        );
    }
    let after = stored(&repo, "busy").await.expect("still there");
    assert_eq!(after.version().get(), 21);
}

/// A create refused for its id claims nothing: its email stays free for others.
pub async fn a_refused_create_claims_no_email(repo: Repo) {
    create(&repo, &named("taken")).await;
    let result = repo.create(&with_email("taken", "new@example.com")).await;
    assert!(
        matches!(result, Err(RepositoryError::AlreadyExists)),
        "{result:?}"
    );
    assert_eq!(
        stored(&repo, "taken")
            .await
            .and_then(|c| c.email().cloned()),
        None
    );
    create(&repo, &with_email("other", "NEW@example.com")).await;
}

/// A delete refused for a stale version leaves the customer and its email claim in place.
pub async fn a_refused_delete_keeps_the_email_claimed(repo: Repo) {
    create(&repo, &with_email("kept", "kept@example.com")).await;
    repo.update(&id("kept"), &patch(&json!({"lastName": "B"})), None, t1())
        .await
        .expect("update");
    let result = repo.delete(&id("kept"), Some(Version::FIRST)).await;
    assert!(
        matches!(result, Err(RepositoryError::VersionConflict { .. })),
        "{result:?}"
    );
    assert!(stored(&repo, "kept").await.is_some());
    assert_email_taken(&repo.create(&with_email("thief", "Kept@example.com")).await);
}

/// A cursor stays a valid position after the customer it was issued at is deleted: the walk goes
/// on with the customers after it.
pub async fn a_cursor_outlives_the_customer_it_points_at(repo: Repo) {
    for i in 0..5 {
        create(&repo, &named(&format!("c{i}"))).await;
    }
    let limit = PageLimit::new(2).expect("a valid limit");
    let first = repo
        .list(&Listing::default(), limit, None)
        .await
        .expect("first page");
    let cursor = first.next_cursor.expect("more pages");
    let last_seen = first.items.last().expect("two customers").id().clone();
    repo.delete(&last_seen, None).await.expect("delete");

    let mut seen: HashSet<CustomerId> = first.items.iter().map(|c| c.id().clone()).collect();
    let mut cursor = Some(cursor);
    while let Some(position) = cursor {
        let page = repo
            .list(&Listing::default(), limit, Some(&position))
            .await
            .expect("a cursor at a deleted customer is still valid");
        for c in page.items {
            assert!(seen.insert(c.id().clone()), "seen twice");
        }
        cursor = page.next_cursor;
    }
    assert_eq!(
        seen.len(),
        5,
        "every customer once, the deleted one included"
    );
}

/// Customers racing to change their emails to one address: exactly one gets it; the others keep
/// their own addresses, still claimed.
pub async fn concurrent_email_changes_to_one_address_have_one_winner(repo: Repo) {
    for i in 0..20 {
        create(
            &repo,
            &with_email(&format!("m{i}"), &format!("m{i}@example.com")),
        )
        .await;
    }
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                let p = patch(&json!({"email": "Wanted@example.com"}));
                repo.update(&id(&format!("m{i}")), &p, None, t1())
                    .await
                    .map(|_| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(i) => winners.push(i),
            Err(RepositoryError::EmailTaken) => {}
            Err(other) => panic!("a losing email change must be EmailTaken, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = winners[0];
    assert_email_taken(&repo.create(&with_email("late", "wanted@EXAMPLE.com")).await);
    for i in 0..20 {
        let own = format!("m{i}@example.com");
        if i == winner {
            create(&repo, &with_email("reuser", &own)).await;
        } else {
            assert_eq!(
                stored(&repo, &format!("m{i}"))
                    .await
                    .and_then(|c| c.email().cloned()),
                Some(email(&own))
            );
            assert_email_taken(&repo.create(&with_email(&format!("t{i}"), &own)).await);
        }
    }
}

/// Writes [`every_repository_error`] from pairs of a variant's pattern and an example of it: the
/// patterns make an exhaustive match, so a variant added to [`RepositoryError`] does not compile
/// until it has its pair, and with it its example.
macro_rules! every_repository_error {
    ($($pattern:pat => $example:expr),+ $(,)?) => {
        /// One error of every [`RepositoryError`] variant, for adapters that map them (an HTTP edge,
        /// a command line) to prove in a test that each variant has its own answer.
        ///
        /// Adding a variant to [`RepositoryError`] fails to compile here until it has an example
        /// in this list.
        pub fn every_repository_error() -> Vec<RepositoryError> {
            // Never called: it only has to compile, and only does while it covers every variant.
            #[expect(dead_code, reason = "compiled for its exhaustive match, never called")]
            fn exhaustive(error: &RepositoryError) {
                match error {
                    $($pattern => {})+
                }
            }
            vec![$($example),+]
        }
    };
}

every_repository_error! {
    RepositoryError::NotFound => RepositoryError::NotFound,
    RepositoryError::AlreadyExists => RepositoryError::AlreadyExists,
    RepositoryError::EmailTaken => RepositoryError::EmailTaken,
    RepositoryError::VersionConflict { .. } => RepositoryError::VersionConflict {
        current: Version::FIRST,
    },
    RepositoryError::InvalidPatch(_) => RepositoryError::InvalidPatch(
        crate::ValidationErrors::single("address.line1", "is required"),
    ),
    RepositoryError::InvalidCursor => RepositoryError::InvalidCursor,
    RepositoryError::KeyInUse => RepositoryError::KeyInUse,
    RepositoryError::KeyReused => RepositoryError::KeyReused,
    RepositoryError::Unavailable { .. } => RepositoryError::unavailable("throttled"),
    RepositoryError::Unexpected(_) => RepositoryError::unexpected("a bug"),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_repository_error_holds_each_variant_once() {
        let errors = every_repository_error();
        let variants: HashSet<_> = errors.iter().map(std::mem::discriminant).collect();
        assert_eq!(variants.len(), errors.len(), "an example repeats a variant");
    }

    #[test]
    fn the_case_list_names_every_contract_case_once() {
        // Every `pub async fn` of this module and its `listing` part is a case, however rustfmt
        // wraps its signature; the listing cases are listed first.
        let source = [
            include_str!("testkit/listing.rs"),
            include_str!("testkit.rs"),
        ];
        let defined: Vec<&str> = source
            .iter()
            .flat_map(|file| file.lines())
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        assert_eq!(
            CASES,
            defined.as_slice(),
            "the case list and the `pub async fn`s differ"
        );
        let unique: HashSet<&&str> = CASES.iter().collect();
        assert_eq!(unique.len(), CASES.len(), "a case is listed twice");
    }

    #[test]
    fn the_event_case_list_names_every_event_case_once() {
        let defined: Vec<&str> = include_str!("testkit/events.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        assert_eq!(EVENT_CASES, defined.as_slice());
    }
}
