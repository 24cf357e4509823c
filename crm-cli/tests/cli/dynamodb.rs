//! The same commands against DynamoDB Local: a fresh table per test, created by `crm table
//! create` or by the repository.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Table, args, crm, fields, file, generated_csv, run, scratch};

#[test]
fn table_create_makes_a_table_the_import_and_export_work_on() {
    let dir = scratch("dynamo_create");
    let table = Table::uncreated();
    let flags = table.flags();
    let created = run(&args(&flags, &["table", "create"])).expect_code(0);
    assert!(created.stdout.contains(&table.name), "{}", created.stdout);
    // A setup script run twice: the table is there and as the code makes it.
    let again = run(&args(&flags, &["table", "create"])).expect_code(0);
    assert!(
        again
            .stdout
            .contains(&format!("table {} exists already", table.name)),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("matches the code"),
        "{}",
        again.stdout
    );
    let csv = file(
        &dir,
        "two.csv",
        "firstName,lastName,email\nAda,Lovelace,ada@example.com\nGrace,Hopper,\n",
    );
    run(&args(&flags, &["import", &csv, "--progress", "off"])).expect_code(0);
    assert_eq!(table.customers().len(), 2);
}

#[test]
fn a_missing_table_is_a_store_failure_in_one_line() {
    let dir = scratch("dynamo_missing");
    let table = Table::uncreated();
    let csv = file(&dir, "one.csv", "firstName,lastName\nAda,Lovelace\n");
    let run = run(&args(
        &table.flags(),
        &["import", &csv, "--progress", "off"],
    ))
    .expect_code(3);
    assert!(run.stderr.starts_with("crm: "), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn an_import_killed_halfway_on_dynamodb_and_run_again_holds_every_row_exactly_once() {
    let dir = scratch("dynamo_killed");
    // Small: DynamoDB Local writes transactions slowly on a busy machine (BENCHMARKS.md).
    let rows = 300;
    let csv = file(&dir, "generated.csv", generated_csv(rows));
    let table = Table::create();
    let flags = table.flags();
    let mut child = crm()
        .args(args(
            &flags,
            &[
                "import",
                &csv,
                "--phone-region",
                "GB",
                "--progress",
                "plain",
            ],
        ))
        .args([
            "--progress-every",
            "0.1",
            "--concurrency",
            "2",
            "--batch-size",
            "10",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once it reports a fifth of the rows done.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let done: usize = line
                .strip_prefix("import: ")
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.replace(',', "").parse().ok())
                .unwrap_or(0);
            if done >= 60 {
                return true;
            }
        }
        false
    });
    let deadline = Instant::now() + Duration::from_mins(2);
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the import did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        reader.join().unwrap(),
        "the import ended before it was killed"
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = table.customers().len();
    assert!(before > 0 && before < rows, "killed halfway: {before}");
    let rerun = run(&args(
        &flags,
        &["import", &csv, "--phone-region", "GB", "--progress", "off"],
    ))
    .expect_code(0);
    assert!(rerun.stdout.contains("rejected 0"), "{}", rerun.stdout);
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for customer in table.customers().values() {
        *stored.entry(customer.first_name().to_string()).or_insert(0) += 1;
    }
    assert_eq!(stored.len(), rows, "every row is there");
    assert!(stored.values().all(|n| *n == 1), "and only once");
}

#[test]
fn taken_ids_and_emails_are_present_when_equal_and_rejected_when_they_differ() {
    let dir = scratch("dynamo_matching");
    let table = Table::create();
    let flags = table.flags();
    let first = file(
        &dir,
        "first.csv",
        "id,firstName,lastName,email\nada-1,Ada,Lovelace,ada@example.com\n,Grace,Hopper,grace@example.com\n",
    );
    run(&args(&flags, &["import", &first, "--progress", "off"])).expect_code(0);
    // Another file (so other derived ids): the same people, then others under their id and email.
    let second = file(
        &dir,
        "second.csv",
        "id,firstName,lastName,email\n\
         ada-1,Ada,Lovelace,ADA@example.com\n\
         ,Grace,Hopper,grace@example.com\n\
         ada-1,Adam,Smith,\n\
         ,Grace,Kelly,grace@example.com\n",
    );
    let rejects = dir.join("rejects.csv");
    let run = run(&args(
        &flags,
        &[
            "import",
            &second,
            "--progress",
            "off",
            "--rejects",
            &rejects.to_string_lossy(),
        ],
    ))
    .expect_code(1);
    assert!(
        run.stdout.contains(
            "created 0, already present 2, rejected 2 (1 of those present matched by email)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("row 4: id: is taken by a customer whose firstName, lastName, email differ"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("row 5: email: belongs to a customer whose lastName differs"),
        "{}",
        run.stdout
    );
    assert_eq!(
        table.customers().len(),
        2,
        "nothing was overwritten or added"
    );
}

#[test]
fn a_dynamodb_export_imports_into_an_empty_table_as_the_same_customers() {
    let dir = scratch("dynamo_round_trip");
    let source = Table::create();
    let csv = file(&dir, "generated.csv", generated_csv(120));
    run(&args(
        &source.flags(),
        &["import", &csv, "--phone-region", "GB", "--progress", "off"],
    ))
    .expect_code(0);
    let exported = dir.join("export.jsonl");
    let exported = exported.to_string_lossy();
    run(&args(
        &source.flags(),
        &[
            "export",
            "-o",
            &exported,
            "--sort",
            "name",
            "--progress",
            "off",
        ],
    ))
    .expect_code(0);
    let target = Table::create();
    run(&args(
        &target.flags(),
        &["import", &exported, "--progress", "off"],
    ))
    .expect_code(0);
    let expected: BTreeMap<_, _> = source
        .customers()
        .iter()
        .map(|(id, c)| (id.clone(), fields(c)))
        .collect();
    let imported: BTreeMap<_, _> = target
        .customers()
        .iter()
        .map(|(id, c)| (id.clone(), fields(c)))
        .collect();
    assert_eq!(expected.len(), 120);
    assert_eq!(imported, expected);
}

#[test]
fn table_describe_says_the_table_matches_the_code_or_how_it_differs() {
    let table = Table::create();
    let run = run(&args(&table.flags(), &["table", "describe"])).expect_code(0);
    assert!(
        run.stdout.contains(&format!("table {}", table.name)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("matches the code"), "{}", run.stdout);
    // A table of the key alone, as a hand might make it.
    let bare = Table::uncreated();
    create_keyed_on(&bare, "pk");
    let run = crate::support::run(&args(&bare.flags(), &["table", "describe"])).expect_code(1);
    assert!(
        run.stdout.contains("differs from the code"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("index byEmail is missing"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("the stream is off"), "{}", run.stdout);
    // `create` over that table makes nothing and says how it differs, as `describe` does.
    let create = crate::support::run(&args(&bare.flags(), &["table", "create"])).expect_code(1);
    assert!(
        create.stdout.contains("exists already"),
        "{}",
        create.stdout
    );
    assert!(
        create.stdout.contains("index byEmail is missing"),
        "{}",
        create.stdout
    );
    let missing = crate::support::run(&args(&Table::uncreated().flags(), &["table", "describe"]))
        .expect_code(3);
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
}

#[test]
fn claims_check_reports_a_missing_claim_and_repair_mends_it() {
    let dir = scratch("dynamo_claims");
    let table = Table::create();
    let flags = table.flags();
    let csv = file(
        &dir,
        "three.csv",
        "id,firstName,lastName,email\nada,Ada,Lovelace,ada@example.com\ngrace,Grace,Hopper,grace@example.com\nalan,Alan,Turing,\n",
    );
    run(&args(&flags, &["import", &csv, "--progress", "off"])).expect_code(0);
    run(&args(&flags, &["claims", "check"])).expect_code(0);
    // Grace's claim goes, as a bug or a hand could make it go.
    crate::support::runtime().block_on(async {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(b"grace@example.com");
        let hex = digest.iter().fold(String::new(), |mut hex, b| {
            let _ = std::fmt::Write::write_fmt(&mut hex, format_args!("{b:02x}"));
            hex
        });
        table
            .client()
            .await
            .delete_item()
            .table_name(&table.name)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("EMAIL#{hex}")),
            )
            .send()
            .await
            .unwrap();
    });
    let found = run(&args(&flags, &["claims", "check"])).expect_code(1);
    assert!(
        found
            .stdout
            .contains("customer grace: its email is not claimed (missing claim)"),
        "{}",
        found.stdout
    );
    assert!(found.stdout.contains("--repair"), "{}", found.stdout);
    assert!(
        !found.stdout.contains("grace@example.com"),
        "no email is printed"
    );
    let repaired = run(&args(&flags, &["claims", "check", "--repair"])).expect_code(0);
    assert!(repaired.stdout.contains("repaired"), "{}", repaired.stdout);
    run(&args(&flags, &["claims", "check"])).expect_code(0);
    let bad = run(&args(
        &flags,
        &["claims", "check", "--resume-after", "nonsense"],
    ))
    .expect_code(2);
    assert!(
        bad.stderr.contains("--resume-after nonsense"),
        "{}",
        bad.stderr
    );
}

#[test]
fn rows_the_store_refuses_for_good_are_not_written_and_no_rerun_is_promised_to_finish_them() {
    let dir = scratch("dynamo_refused");
    // A table keyed on another attribute: every write is a ValidationException, which no
    // retry mends.
    let table = Table::uncreated();
    create_keyed_on(&table, "customerId");
    let csv = file(
        &dir,
        "two.csv",
        "firstName,lastName\nAda,Lovelace\nAlan,Turing\n",
    );
    let run = run(&args(
        &table.flags(),
        &["import", &csv, "--progress", "off"],
    ))
    .expect_code(3);
    assert!(
        run.stdout.contains("not written: 2 rows the store refused"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("unconfirmed"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("mend what the store refused, then run the same command again"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("ValidationException"), "{}", run.stderr);
}

/// Creates `table` as a hand might: its key, a string named `key`, and nothing else.
#[expect(clippy::unwrap_used, reason = "test support: a failure is the test's")]
fn create_keyed_on(table: &Table, key: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    crate::support::runtime().block_on(async {
        table
            .client()
            .await
            .create_table()
            .table_name(&table.name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
}
