//! What the command-line tests share: the real `crm` binary, a local server on the memory store
//! (the router in this process, on a loopback port), DynamoDB Local tables, and files.
//!
//! DynamoDB Local is `CRM_TEST_DYNAMODB_ENDPOINT` (default `http://127.0.0.1:8000`, started by
//! `scripts/dynamodb-local.sh start`); when it does not answer, the tests that need it fail,
//! saying how to start it: a suite that skipped itself would prove nothing.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crm_domain::{Customer, CustomerRepository, CustomerService, Listing, PageLimit, SortOrder};
use crm_dynamo::{DynamoCustomerRepository, DynamoSettings};
use crm_http::{AppState, Config, router};
use crm_memory::InMemoryCustomerRepository;

/// The `crm` binary, with a clean environment: no variable of the developer's reaches it.
pub(crate) fn crm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm"));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CRM_") || name.starts_with("AWS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    command
}

/// The outcome of a run of `crm`.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn of(output: &Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails with both streams unless the exit code is `code`.
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} instead of {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `crm` with `args`.
pub(crate) fn run(args: &[&str]) -> Run {
    Run::of(&crm().args(args).output().expect("crm runs"))
}

/// A directory of its own for one test, emptied first.
pub(crate) fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("crm-cli")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Writes `contents` to `dir/name` and returns its path as a string.
pub(crate) fn file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("a test file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// A runtime for the async side of the tests (servers, store checks).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A crm server on a fresh memory store, listening on a loopback port for as long as it lives.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) store: Arc<InMemoryCustomerRepository>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) fn start() -> Self {
        let store = Arc::new(InMemoryCustomerRepository::new());
        let state = AppState::new(
            CustomerService::new(Arc::clone(&store) as Arc<dyn CustomerRepository>),
            &Config::default(),
        );
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let task = runtime().spawn(async move {
            let _ = axum::serve(listener, router(state)).await;
        });
        Self { url, store, task }
    }

    /// Every customer of the store, by id.
    pub(crate) fn customers(&self) -> BTreeMap<String, Customer> {
        all(&*self.store, SortOrder::CreatedAt)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every customer of `repository` in `order`, by id.
pub(crate) fn all(
    repository: &dyn CustomerRepository,
    order: SortOrder,
) -> BTreeMap<String, Customer> {
    walk(repository, order)
        .into_iter()
        .map(|c| (c.id().to_string(), c))
        .collect()
}

/// Every customer of `repository`, in `order`.
pub(crate) fn walk(repository: &dyn CustomerRepository, order: SortOrder) -> Vec<Customer> {
    runtime().block_on(async {
        let mut customers = Vec::new();
        let mut cursor = None;
        loop {
            let page = repository
                .list(&Listing::All(order), PageLimit::MAX, cursor.as_ref())
                .await
                .expect("a page");
            customers.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return customers,
            }
        }
    })
}

/// Where DynamoDB Local answers.
pub(crate) fn endpoint() -> String {
    std::env::var("CRM_TEST_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

/// A new, empty table on DynamoDB Local, and the flags that point `crm` at it.
pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) repository: DynamoCustomerRepository,
}

impl Table {
    /// A name for a table not created yet.
    pub(crate) fn name() -> String {
        format!("crm-cli-test-{}", crm_domain::CustomerId::generate())
    }

    pub(crate) fn create() -> Self {
        let table = Self::uncreated();
        runtime()
            .block_on(table.repository.create_table())
            .unwrap_or_else(|e| panic!("creating the test table failed: {e:?}"));
        table
    }

    /// A repository on a table that does not exist yet.
    pub(crate) fn uncreated() -> Self {
        require_dynamodb_local();
        let name = Self::name();
        let settings = DynamoSettings::new(&name, "us-east-1")
            .expect("a valid table name")
            .with_endpoint(endpoint())
            .with_local_credentials()
            .with_operation_timeout(Duration::from_secs(30));
        let repository = runtime().block_on(DynamoCustomerRepository::connect(&settings));
        Self { name, repository }
    }

    /// An SDK client on DynamoDB Local, to break a table on purpose.
    pub(crate) async fn client(&self) -> aws_sdk_dynamodb::Client {
        let settings = DynamoSettings::new(&self.name, "us-east-1")
            .expect("a valid table name")
            .with_endpoint(endpoint())
            .with_local_credentials()
            .with_operation_timeout(Duration::from_secs(30));
        aws_sdk_dynamodb::Client::from_conf(settings.sdk_config().await)
    }

    /// `--table … --endpoint …`.
    pub(crate) fn flags(&self) -> Vec<String> {
        vec![
            "--table".into(),
            self.name.clone(),
            "--endpoint".into(),
            endpoint(),
        ]
    }

    /// Every customer of the table, by id.
    pub(crate) fn customers(&self) -> BTreeMap<String, Customer> {
        all(&self.repository, SortOrder::CreatedAt)
    }
}

/// Fails the test with instructions when DynamoDB Local is not there.
pub(crate) fn require_dynamodb_local() {
    let url = endpoint();
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let reachable = address
        .parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        reachable,
        "DynamoDB Local is not reachable at {url}. Start it with `scripts/dynamodb-local.sh start` \
         (or set CRM_TEST_DYNAMODB_ENDPOINT); these tests never skip themselves."
    );
}

/// Args of `flags` then `rest`, as `&str`s.
pub(crate) fn args<'a>(flags: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    flags
        .iter()
        .map(String::as_str)
        .chain(rest.iter().copied())
        .collect()
}

/// A generated CSV of `rows` customers in `HubSpot`'s headers: every other one with an email,
/// every 25th with a phone written as people write them (`--phone-region GB`; few, because
/// libphonenumber is slow in a debug build), every fourth with an address whose country is a
/// name. No row has an id. Row `i` (from 0) is named `First{i} Last{i}`.
pub(crate) fn generated_csv(rows: usize) -> String {
    let mut csv = String::with_capacity(rows * 80);
    csv.push_str("First Name,Last Name,Email,Phone Number,Street Address,City,Country/Region\r\n");
    for i in 0..rows {
        let email = if i % 2 == 0 {
            format!("person{i}@example.com")
        } else {
            String::new()
        };
        let phone = if i % 25 == 0 {
            format!("(020) 7{:03} {:04}", i % 1000, i % 10_000)
        } else {
            String::new()
        };
        let (street, city, country) = if i % 4 == 0 {
            (
                format!("\"{i} High Street, Flat 2\""),
                "London",
                "United Kingdom",
            )
        } else {
            (String::new(), "", "")
        };
        let _ = write!(
            csv,
            "First{i},Last{i},{email},{phone},{street},{city},{country}\r\n"
        );
    }
    csv
}

/// The customers' fields that an import and an export carry (not the timestamps or version).
pub(crate) fn fields(customer: &Customer) -> serde_json::Value {
    let mut value = serde_json::to_value(customer).expect("a customer as JSON");
    let object = value.as_object_mut().expect("an object");
    for server in ["createdAt", "updatedAt", "version"] {
        object.remove(server);
    }
    value
}
