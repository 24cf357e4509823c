//! Malformed and awkward inputs: each is one clear line, or a reject with its row, field and
//! reason; the exit codes scripts rely on. Most run as dry runs (no store) or against a local
//! server.

use std::fmt::Write as _;

use crate::support::{Server, file, run, scratch};

#[test]
fn a_bom_crlf_and_quoted_commas_and_newlines_are_read_as_written() {
    let dir = scratch("bom_crlf");
    let csv = file(
        &dir,
        "hubspot.csv",
        "\u{feff}First Name,Last Name,Email,Street Address,City,Country/Region\r\n\
         Ada,Lovelace,ada@example.com,\"12 St James's Square, Floor 2\",London,United Kingdom\r\n\
         \"Grace\",\"Hopper\",,\"1 Navy Way\nSuite 4\",Arlington,USA\r\n",
    );
    let server = Server::start();
    let run = run(&["--url", &server.url, "import", &csv, "--progress", "off"]).expect_code(0);
    assert!(
        run.stdout
            .contains("created 2, already present 0, rejected 0"),
        "{}",
        run.stdout
    );
    let customers = server.customers();
    let mut by_name: Vec<_> = customers.values().collect();
    by_name.sort_by_key(|c| c.first_name().to_string());
    let ada = by_name[0];
    assert_eq!(
        ada.first_name().as_str(),
        "Ada",
        "the BOM is not part of the first header"
    );
    let address = ada.address().unwrap();
    assert_eq!(address.line1.as_str(), "12 St James's Square, Floor 2");
    assert_eq!(address.country.unwrap().as_str(), "GB");
    let grace = by_name[1].address().unwrap();
    assert_eq!(grace.line1.as_str(), "1 Navy Way");
    assert_eq!(grace.line2.as_ref().unwrap().as_str(), "Suite 4");
    assert_eq!(grace.country.unwrap().as_str(), "US");
}

#[test]
fn a_file_that_is_not_utf8_is_one_line_naming_the_line_and_writes_nothing() {
    let dir = scratch("latin1");
    let csv = file(
        &dir,
        "latin1.csv",
        b"firstName,lastName\nAda,Lovelace\nJos\xe9,Garc\xeda\n",
    );
    let server = Server::start();
    let run = run(&["--url", &server.url, "import", &csv]).expect_code(2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not UTF-8 text (line 3)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("iconv"), "{}", run.stderr);
    assert!(
        server.customers().is_empty(),
        "nothing is written before the file is known good"
    );
}

#[test]
fn an_empty_file_a_missing_column_and_a_json_array_are_one_line_each() {
    let dir = scratch("empty");
    for (name, contents, expected) in [
        ("empty.csv", "", "is empty"),
        ("blank.csv", "\u{feff}  \r\n\n", "is empty"),
        (
            "names.csv",
            "Name,Email\nAda Lovelace,ada@example.com\n",
            "no column holds firstName",
        ),
        (
            "array.jsonl",
            "[{\"firstName\": \"Ada\"}]\n",
            "is a JSON array, not JSON Lines",
        ),
    ] {
        let path = file(&dir, name, contents);
        let run = run(&["import", &path, "--dry-run"]).expect_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{name}: {}", run.stderr);
        assert!(run.stderr.starts_with("crm: "), "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }
    let missing = run(&[
        "import",
        &dir.join("nowhere.csv").to_string_lossy(),
        "--dry-run",
    ])
    .expect_code(2);
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
    // A header and no rows is a feed with nothing today: not an error.
    let header_only = file(&dir, "header.csv", "firstName,lastName\r\n");
    let run = run(&["import", &header_only, "--dry-run"]).expect_code(0);
    assert!(
        run.stdout.contains("no rows after its header"),
        "{}",
        run.stdout
    );
}

#[test]
fn rejected_rows_are_reported_by_row_field_and_reason_and_written_to_the_rejects_file() {
    let dir = scratch("rejects");
    let csv = file(
        &dir,
        "people.csv",
        "First Name,Last Name,Phone Number,Street Address,Country/Region,Owner\n\
         Ada,Lovelace,(020) 7123 4567,1 St James's Square,UK,someone\n\
         Bad,Phone,0207 12,2 Unter den Linden,Germany,someone\n\
         No,Country,,3 Nowhere Road,Atlantis,someone\n\
         Two,Koreas,,4 Main Road,Korea,someone\n\
         ,\"Nameless, Jr\",,,,someone\n",
    );
    let rejects = dir.join("rejects.csv");
    let run = run(&[
        "import",
        &csv,
        "--dry-run",
        "--phone-region",
        "GB",
        "--rejects",
        &rejects.to_string_lossy(),
    ])
    .expect_code(1);
    assert!(
        run.stdout.contains("dry run: 1 valid, 4 rejected"),
        "{}",
        run.stdout
    );
    for expected in [
        "row 3: phone: is not a valid phone number in GB",
        "row 4: address.country: is not a country name or code we know",
        "row 5: address.country: could name more than one country (KR or KP)",
        "row 6: firstName: is required",
    ] {
        assert!(run.stdout.contains(expected), "{expected}\n{}", run.stdout);
    }
    // The terminal names rows, fields and reasons; never a value.
    for value in ["0207 12", "Atlantis", "Nameless", "someone", "Nowhere"] {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "{value}"
        );
    }
    assert!(
        run.stderr
            .contains("not imported (no field of a customer): Owner"),
        "{}",
        run.stderr
    );
    let mut reader = csv::Reader::from_path(&rejects).unwrap();
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        headers,
        [
            "First Name",
            "Last Name",
            "Phone Number",
            "Street Address",
            "Country/Region",
            "Owner",
            "_row",
            "_field",
            "_reason"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        &rows[0][2], "0207 12",
        "the row as it was, for the user to fix"
    );
    assert_eq!(&rows[0][6], "3");
    assert_eq!(&rows[0][7], "phone");
    assert_eq!(&rows[3][1], "Nameless, Jr");
    assert_eq!(&rows[3][7], "firstName");
    // Fixed in the rejects file, it imports as it is: the extra columns are ignored.
    let fixed = std::fs::read_to_string(&rejects)
        .unwrap()
        .replace("0207 12", "020 7946 0000")
        .replace("Atlantis", "Ireland")
        .replace(",Korea,", ",KR,")
        .replace(",\"Nameless, Jr\"", "Anon,\"Nameless, Jr\"");
    let fixed = file(&dir, "fixed.csv", fixed);
    let run = crate::support::run(&["import", &fixed, "--dry-run", "--phone-region", "GB"]);
    let run = run.expect_code(0);
    assert!(run.stdout.contains("4 valid, 0 rejected"), "{}", run.stdout);
    let allowed = crate::support::run(&[
        "import",
        &csv,
        "--dry-run",
        "--phone-region",
        "GB",
        "--allow-rejects",
    ]);
    allowed.expect_code(0);
}

#[test]
fn json_lines_are_read_with_the_same_rules_and_rejects_keep_the_line() {
    let dir = scratch("jsonl");
    let jsonl = file(
        &dir,
        "feed.jsonl",
        "{\"firstName\": \"Ada\", \"lastName\": \"Lovelace\", \"phone\": 442071234567, \"address\": {\"line1\": \"1 A St\", \"country\": \"Deutschland\"}, \"source\": \"crm1\"}\n\
         \n\
         {\"firstName\": \"Bob\", \"lastName\": true, \"score\": 1e3}\n\
         not json at all\n\
         [1, 2]\n",
    );
    let rejects = dir.join("rejects.jsonl");
    let run = run(&[
        "import",
        &jsonl,
        "--dry-run",
        "--rejects",
        &rejects.to_string_lossy(),
    ])
    .expect_code(1);
    assert!(
        run.stdout.contains("dry run: 0 valid, 4 rejected"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("row 1: phone: has no country code"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("row 3: lastName: must be a string"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("row 4: $: is not valid JSON"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("row 5: $: is not a JSON object"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("not imported (no field of a customer): score, source"),
        "{}",
        run.stderr
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["firstName"], "Ada");
    assert_eq!(lines[0]["_row"], 1);
    assert_eq!(lines[0]["_field"], "phone");
    assert_eq!(lines[2]["_line"], "not json at all");
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert!(
        text.contains(r#""score":1e3"#),
        "numbers stay as written: {text}"
    );
    // The same line with a region is a customer.
    let run = crate::support::run(&["import", &jsonl, "--dry-run", "--phone-region", "GB"])
        .expect_code(1);
    assert!(
        run.stdout.contains("dry run: 1 valid, 3 rejected"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_dry_run_writes_nothing() {
    let dir = scratch("dry_run");
    let csv = file(
        &dir,
        "ok.csv",
        "firstName,lastName\nAda,Lovelace\nGrace,Hopper\n",
    );
    let server = Server::start();
    let run = run(&["--url", &server.url, "import", &csv, "--dry-run"]).expect_code(0);
    assert!(
        run.stdout
            .contains("dry run: 2 valid, 0 rejected; nothing was written"),
        "{}",
        run.stdout
    );
    assert!(server.customers().is_empty());
}

#[test]
fn exit_codes_scripts_can_rely_on() {
    let dir = scratch("exit_codes");
    let csv = file(&dir, "ok.csv", "firstName,lastName\nAda,Lovelace\n");
    // Usage: clap's own message and 2.
    run(&["import", &csv, "--no-such-flag"]).expect_code(2);
    run(&["import"]).expect_code(2);
    run(&["--url", "http://127.0.0.1:1", "--table", "crm", "export"]).expect_code(2);
    // Configuration: one line naming the variable or flag, and 2.
    let no_store = run(&["import", &csv]).expect_code(2);
    assert!(
        no_store.stderr.contains("no store to work on"),
        "{}",
        no_store.stderr
    );
    let bad_table = run(&["--table", "no spaces", "export"]).expect_code(2);
    assert!(
        bad_table.stderr.contains("CRM_TABLE_NAME=\"no spaces\""),
        "{}",
        bad_table.stderr
    );
    assert!(
        bad_table.stderr.contains("(given with --table)"),
        "{}",
        bad_table.stderr
    );
    let bad_map = run(&["import", &csv, "--dry-run", "--map", "nickname=Nick"]).expect_code(2);
    assert!(
        bad_map.stderr.contains("`nickname` is not a field"),
        "{}",
        bad_map.stderr
    );
    let bad_region = run(&["import", &csv, "--dry-run", "--phone-region", "Mars"]).expect_code(2);
    assert!(
        bad_region.stderr.contains("--phone-region Mars"),
        "{}",
        bad_region.stderr
    );
    let https = run(&["--url", "https://crm.example.com", "export"]).expect_code(2);
    assert!(
        https.stderr.contains("only plain http://"),
        "{}",
        https.stderr
    );
    // The store is down: 3, after the retries, with the rerun hint. (A port of 127.0.0.2, where
    // no other test's server binds, so that it stays closed once dropped.)
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = run(&["--url", &url, "export", "--retry-for", "0.5"]).expect_code(3);
    assert!(down.stderr.contains("cannot reach"), "{}", down.stderr);
    let down = run(&[
        "--url",
        &url,
        "import",
        &csv,
        "--progress",
        "off",
        "--retry-for",
        "0.5",
    ])
    .expect_code(3);
    assert!(
        down.stdout.contains("run the same command again to finish"),
        "{}",
        down.stdout
    );
    assert!(down.stdout.contains("1 row unconfirmed"), "{}", down.stdout);
}

#[test]
fn a_row_of_the_wrong_width_is_a_reject_whose_row_counts_blank_lines_and_nothing_goes_missing() {
    let dir = scratch("ragged");
    // 120 good rows, then a blank line, a row with one value too many and one with one too few,
    // then 80 good rows; batches of 50, so that a batch is still being filled at the bad rows.
    let mut csv = String::from("firstName,lastName,email\n");
    for i in 0..120 {
        let _ = writeln!(csv, "Ada{i},Lovelace,ada{i}@example.com");
    }
    csv.push_str("\nToo,Many,x@example.com,extra\nToo Few\n");
    for i in 0..80 {
        let _ = writeln!(csv, "Bob{i},Smith,bob{i}@example.com");
    }
    let csv = file(&dir, "ragged.csv", csv);
    let rejects = dir.join("rejects.csv");
    let server = Server::start();
    let run = run(&[
        "import",
        &csv,
        "--url",
        &server.url,
        "--batch-size",
        "50",
        "--rejects",
        &rejects.to_string_lossy(),
    ])
    .expect_code(1);
    // Header row 1, rows 2-121, the blank line row 122: the bad rows are 123 and 124.
    for expected in [
        "202 rows read",
        "created 200",
        "rejected 2",
        "row 123: ",
        "row 124: ",
    ] {
        assert!(run.stdout.contains(expected), "{expected}\n{}", run.stdout);
    }
    assert_eq!(server.customers().len(), 200);

    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&rejects)
        .unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0].iter().collect::<Vec<_>>()[..5],
        ["Too", "Many", "x@example.com", "extra", "123"],
        "every value kept, the row number after them"
    );
    assert_eq!(
        rows[1].iter().collect::<Vec<_>>()[..4],
        ["Too Few", "", "", "124"],
        "padded, so that _row stands under its name"
    );
}

#[test]
fn a_value_over_several_lines_is_one_row_and_a_blank_line_is_one_row() {
    let dir = scratch("row_numbers");
    let csv = file(
        &dir,
        "people.csv",
        "firstName,lastName,address.line1\n\
         Ada,Lovelace,\"1 St James's Square\nLondon\"\n\
         \n\
         ,Nobody,\n",
    );
    let run = run(&["import", &csv, "--dry-run"]).expect_code(1);
    assert!(
        run.stdout.contains("row 4: firstName: is required"),
        "header 1, Ada 2 (over two lines), the blank line 3:\n{}",
        run.stdout
    );
}

#[test]
fn an_export_to_a_directory_fails_at_once_and_leaves_no_file() {
    let dir = scratch("export_dir");
    let server = Server::start();
    let target = dir.join("out");
    std::fs::create_dir_all(&target).unwrap();
    let run = run(&[
        "export",
        "--url",
        &server.url,
        "-o",
        &target.to_string_lossy(),
    ])
    .expect_code(2);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("out")], "no partial file");
}

#[test]
fn a_stderr_that_cannot_be_written_changes_no_exit_code() {
    let dir = scratch("stderr_full");
    let csv = file(
        &dir,
        "people.csv",
        "firstName,lastName,Owner\nAda,Lovelace,x\n,Nobody,y\n",
    );
    for (args, code) in [
        (vec!["import", csv.as_str(), "--dry-run"], 1),
        (
            vec!["import", csv.as_str(), "--dry-run", "--allow-rejects"],
            0,
        ),
        (vec!["import", "/nonexistent.csv", "--dry-run"], 2),
    ] {
        let status = crate::support::crm()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create("/dev/full").unwrap())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "{args:?}");
    }
}
