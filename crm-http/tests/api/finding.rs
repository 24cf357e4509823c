//! Finding customers: the orders of `GET /customers`, the name search, the change feed, and
//! `POST /customers/search`, which takes the same filters in a JSON body. Every case runs through
//! both forms where it can: they share one reader, and these tests say so from the outside.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use crm_domain::{Clock, CustomerService, RepositoryError, SortOrder, Timestamp};
use crm_memory::InMemoryCustomerRepository;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    FailingRepository, TestApp, TestResponse, named, spawn_app, spawn_app_with, spawn_service,
};

/// A clock that moves one second on every reading, from 2021-01-01: every write has its own
/// time, so that the orders by time are known in advance.
#[derive(Debug)]
struct Ticking(AtomicI64);

impl Clock for Ticking {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.fetch_add(1000, Ordering::SeqCst)).unwrap()
    }
}

/// The app over an empty in-memory store and a [`Ticking`] clock.
fn ticking_app() -> TestApp {
    let clock = Ticking(AtomicI64::new(1_609_459_200_000));
    let service = CustomerService::new(Arc::new(InMemoryCustomerRepository::new()))
        .with_clock(Arc::new(clock));
    spawn_service(&[], service)
}

/// The customers of the small store, in creation order: names in several scripts, with accents,
/// case and width that the name order and the search fold away.
const PEOPLE: [(&str, &str, &str); 8] = [
    ("k-greek", "Οδυσσέας", "Ελύτης"),
    ("b-zoe", "Zoë", "Ångström"),
    ("x-emile", "Émile", "Zola"),
    ("a-zoe", "ZOË", "Zola"),
    ("m-mary", "Ｍａｒｙ", "Smith"),
    ("c-anna", "Анна", "Ахматова"),
    ("z-ada", "Ada", "lovelace"),
    ("d-bob", "Bob", "Smithe"),
];

/// The ids of [`PEOPLE`] in creation order.
const CREATED: [&str; 8] = [
    "k-greek", "b-zoe", "x-emile", "a-zoe", "m-mary", "c-anna", "z-ada", "d-bob",
];

/// The ids of [`PEOPLE`] by folded last name, then first name: Latin, then Greek, then Cyrillic;
/// `Smith` before `Smithe`; `Ångström` with the a's.
const BY_NAME: [&str; 8] = [
    "b-zoe", "z-ada", "m-mary", "d-bob", "x-emile", "a-zoe", "k-greek", "c-anna",
];

async fn seeded() -> TestApp {
    let app = ticking_app();
    for (id, first, last) in PEOPLE {
        app.create(json!({"id": id, "firstName": first, "lastName": last}))
            .await;
    }
    app
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ids of the items of a page.
fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every item of a walk from no cursor to the last page, `limit` at a time, with the filters
/// `filters` (name and JSON value): once by `GET /customers` and once by
/// `POST /customers/search`, which must agree item for item.
async fn walk(app: &TestApp, filters: &[(&str, Value)], limit: u64) -> Vec<Value> {
    let mut by_query = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<String> = filters
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => format!("{name}={}", encode(text)),
                other => format!("{name}={other}"),
            })
            .collect();
        query.push(format!("limit={limit}"));
        if let Some(cursor) = &cursor {
            query.push(format!("cursor={cursor}"));
        }
        let response = app.get(&format!("/customers?{}", query.join("&"))).await;
        assert_eq!(response.status, StatusCode::OK, "{}", body_text(&response));
        let page = response.json();
        by_query.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut by_body = Vec::new();
    // `null` is no cursor: a client sends back the last nextCursor as it came.
    let mut cursor = Value::Null;
    loop {
        let mut body: serde_json::Map<String, Value> = filters
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        body.insert("limit".to_owned(), json!(limit));
        body.insert("cursor".to_owned(), cursor);
        let response = app.post_json("/customers/search", &body.into()).await;
        assert_eq!(response.status, StatusCode::OK, "{}", body_text(&response));
        let page = response.json();
        by_body.extend(page["items"].as_array().unwrap().iter().cloned());
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(by_query, by_body, "GET and POST /customers/search differ");
    by_query
}

fn body_text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// A search request with `body` as its JSON.
async fn search(app: &TestApp, body: &Value) -> TestResponse {
    app.post_json("/customers/search", body).await
}

// --- Orders --------------------------------------------------------------------------------

#[tokio::test]
async fn the_default_order_is_creation_and_each_sort_orders_the_store() {
    let app = seeded().await;
    let created: Vec<String> = CREATED.iter().map(|id| (*id).to_owned()).collect();
    let mut newest_first = created.clone();
    newest_first.reverse();
    for limit in [3, 100] {
        assert_eq!(ids(&walk(&app, &[], limit).await), created, "no sort");
        for (sort, expected) in [
            ("createdAt", created.clone()),
            ("-createdAt", newest_first.clone()),
            ("name", BY_NAME.iter().map(|id| (*id).to_owned()).collect()),
            ("updatedAt", created.clone()),
        ] {
            assert_eq!(
                ids(&walk(&app, &[("sort", json!(sort))], limit).await),
                expected,
                "sort={sort}, limit={limit}"
            );
        }
    }
}

#[tokio::test]
async fn a_change_moves_a_customer_to_the_end_of_the_updated_at_order_only() {
    let app = seeded().await;
    for id in ["b-zoe", "k-greek"] {
        let response = app
            .patch_json(
                &format!("/customers/{id}"),
                &json!({"phone": "+441234567890"}),
                None,
            )
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    let by_update = ids(&walk(&app, &[("sort", json!("updatedAt"))], 3).await);
    assert_eq!(
        by_update,
        [
            "x-emile", "a-zoe", "m-mary", "c-anna", "z-ada", "d-bob", "b-zoe", "k-greek"
        ]
    );
    assert_eq!(
        ids(&walk(&app, &[], 3).await),
        CREATED,
        "createdAt does not move"
    );
    assert_eq!(
        ids(&walk(&app, &[("sort", json!("name"))], 3).await),
        BY_NAME,
        "nor does the name order"
    );
}

#[tokio::test]
async fn an_unknown_sort_is_a_400_naming_the_supported_ones() {
    let app = seeded().await;
    for sort in [
        "Name",
        "created_at",
        "%2BcreatedAt",
        "createdAt,name",
        "",
        "-name",
    ] {
        let problem = app
            .get(&format!("/customers?sort={sort}"))
            .await
            .problem(400);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&SortOrder::supported()), "{sort}: {detail}");
        assert_eq!(problem["type"], "urn:problem:crm:bad-request");
    }
    for sort in [json!("Name"), json!("-name"), json!("")] {
        let problem = search(&app, &json!({"sort": sort})).await.problem(400);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&SortOrder::supported()), "{sort}: {detail}");
    }
}

// --- Name search ---------------------------------------------------------------------------

#[tokio::test]
async fn a_name_search_folds_case_accents_and_width_in_every_script() {
    let app = seeded().await;
    let cases: [(&str, &[&str]); 12] = [
        // Found by first name (Zoë Ångström), by both (ZOË Zola) and by last name (Émile Zola),
        // each ordered by the name as it matched: "zoe angstrom", "zoe zola", "zola emile".
        ("zo", &["b-zoe", "a-zoe", "x-emile"]),
        ("ZOË", &["b-zoe", "a-zoe"]),
        ("zoe", &["b-zoe", "a-zoe"]),
        ("Emile Z", &["x-emile"]),
        ("zola é", &["x-emile"]),
        ("ångs", &["b-zoe"]),
        ("ｓｍｉｔｈ", &["m-mary", "d-bob"]),
        ("MARY", &["m-mary"]),
        ("ΟΔΥΣ", &["k-greek"]),
        ("ελυτης οδ", &["k-greek"]),
        ("АХМ", &["c-anna"]),
        ("  Lovelace  ", &["z-ada"]),
    ];
    for (text, expected) in cases {
        let found = walk(&app, &[("name", json!(text))], 1).await;
        assert_eq!(ids(&found), expected, "name={text}");
        let sorted = walk(&app, &[("name", json!(text)), ("sort", json!("name"))], 2).await;
        assert_eq!(ids(&sorted), expected, "name={text}&sort=name");
    }
}

#[tokio::test]
async fn a_name_search_without_a_match_is_an_empty_last_page() {
    let app = seeded().await;
    let empty = json!({"items": [], "nextCursor": null});
    for text in ["xyz", "zoe zolaa", "Smithers", "ахматова борис"] {
        assert_eq!(
            app.get(&format!("/customers?name={}", encode(text)))
                .await
                .json(),
            empty,
            "{text}"
        );
        assert_eq!(search(&app, &json!({"name": text})).await.json(), empty);
    }
}

#[tokio::test]
async fn a_search_text_of_100_characters_is_read_and_longer_empty_or_blank_ones_are_422s() {
    let app = seeded().await;
    let longest = "Quillfeather".repeat(9)[..100].to_owned();
    assert_eq!(
        app.get(&format!("/customers?name={longest}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        search(&app, &json!({"name": format!("  {longest}  ")}))
            .await
            .status,
        StatusCode::OK,
        "trimmed first"
    );
    let too_long = format!("{longest}Q");
    for text in [too_long.as_str(), "", "   ", "\u{301}", "a\u{7}b"] {
        let by_query = app.get(&format!("/customers?name={}", encode(text))).await;
        assert_eq!(by_query.invalid_fields(), ["name"], "{text:?}");
        let by_body = search(&app, &json!({"name": text})).await;
        assert_eq!(by_body.invalid_fields(), ["name"], "{text:?}");
        for response in [by_query, by_body] {
            assert!(
                !body_text(&response).contains("Quillfeather"),
                "the text is never repeated"
            );
        }
    }
}

// --- The change feed -----------------------------------------------------------------------

#[tokio::test]
async fn the_change_feed_holds_changes_in_updated_at_order_and_tombstones_of_deletes() {
    let app = ticking_app();
    let a = app.create(named("a")).await;
    let b = app.create(named("b")).await;
    let c = app.create(named("c")).await;
    let a2 = app
        .patch_json("/customers/a", &json!({"firstName": "Ada"}), None)
        .await
        .json();
    assert_eq!(app.delete("/customers/b", None).await.status, 204);

    let since = a["createdAt"].as_str().unwrap();
    let feed = walk(&app, &[("updatedSince", json!(since))], 1).await;
    assert_eq!(ids(&feed), ["c", "a", "b"], "{feed:?}");
    assert_eq!(feed[0], c);
    assert_eq!(feed[1], a2);
    let tombstone = &feed[2];
    assert_eq!(
        tombstone,
        &json!({"id": "b", "deleted": true, "version": 2,
            "updatedAt": tombstone["updatedAt"]}),
        "a tombstone holds no field of the customer"
    );
    assert!(tombstone["updatedAt"].as_str().unwrap() >= b["updatedAt"].as_str().unwrap());
    let with_sort = walk(
        &app,
        &[("updatedSince", json!(since)), ("sort", json!("updatedAt"))],
        2,
    )
    .await;
    assert_eq!(with_sort, feed);

    // From a later time: only what changed at or after it.
    let later = a2["updatedAt"].as_str().unwrap();
    assert_eq!(
        ids(&walk(&app, &[("updatedSince", json!(later))], 5).await),
        ["a", "b"]
    );
    let future = walk(&app, &[("updatedSince", json!("9999-12-31T23:59:59Z"))], 5).await;
    assert!(future.is_empty(), "{future:?}");

    // An offset is converted to UTC; in a URL its + is written %2B.
    let response = app
        .get("/customers?updatedSince=2021-01-01T02:00:00%2B02:00")
        .await
        .json();
    assert_eq!(ids(response["items"].as_array().unwrap()), ["c", "a", "b"]);

    // An id created again starts again at version 1, and replaces its tombstone.
    let again = app.create(named("b")).await;
    assert_eq!(again["version"], 1);
    let feed = walk(&app, &[("updatedSince", json!(since))], 10).await;
    assert_eq!(ids(&feed), ["c", "a", "b"]);
    assert_eq!(feed[2], again);
}

#[tokio::test]
async fn a_time_that_is_not_rfc_3339_is_a_400_naming_the_format() {
    let app = spawn_app();
    for since in [
        "yesterday",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z",
        // An unencoded + is a space in a query string.
        "2026-01-01T00:00:00+02:00",
        "",
    ] {
        let problem = app
            .get(&format!("/customers?updatedSince={since}"))
            .await
            .problem(400);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("RFC 3339"), "{since}: {detail}");
        assert!(detail.contains("%2B"), "{detail}");
    }
    for since in [json!("yesterday"), json!("2026-01-01")] {
        let problem = search(&app, &json!({"updatedSince": since}))
            .await
            .problem(400);
        assert!(problem["detail"].as_str().unwrap().contains("RFC 3339"));
    }
}

// --- Cursors -------------------------------------------------------------------------------

#[tokio::test]
async fn a_cursor_works_only_with_the_sort_and_filters_that_made_it() {
    let app = seeded().await;
    let by_name = app.get("/customers?sort=name&limit=2").await.json();
    let cursor = by_name["nextCursor"].as_str().unwrap().to_owned();
    for uri in [
        format!("/customers?cursor={cursor}"),
        format!("/customers?sort=createdAt&cursor={cursor}"),
        format!("/customers?sort=-createdAt&cursor={cursor}"),
        format!("/customers?sort=updatedAt&cursor={cursor}"),
        format!("/customers?name=zo&cursor={cursor}"),
        format!("/customers?updatedSince=2021-01-01T00:00:00Z&cursor={cursor}"),
    ] {
        let problem = app.get(&uri).await.problem(400);
        assert_eq!(problem["type"], "urn:problem:crm:invalid-cursor", "{uri}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("another listing"), "{detail}");
        assert!(detail.contains("same sort and filters"), "{detail}");
        assert!(!detail.contains(&cursor), "the cursor is never quoted");
    }
    let problem = search(&app, &json!({"sort": "createdAt", "cursor": cursor}))
        .await
        .problem(400);
    assert_eq!(problem["type"], "urn:problem:crm:invalid-cursor");

    // The same listing takes it, whichever form sends it.
    let next = search(&app, &json!({"sort": "name", "limit": 2, "cursor": cursor}))
        .await
        .json();
    assert_eq!(ids(next["items"].as_array().unwrap()), &BY_NAME[2..4]);

    // A search's cursor is bound to its text; the feed's to the feed.
    let zo = app.get("/customers?name=zo&limit=1").await.json();
    let zo_cursor = zo["nextCursor"].as_str().unwrap();
    for uri in [
        format!("/customers?name=zol&cursor={zo_cursor}"),
        format!("/customers?sort=name&cursor={zo_cursor}"),
    ] {
        app.get(&uri).await.problem(400);
    }
    let feed = app
        .get("/customers?updatedSince=2021-01-01T00:00:00Z&limit=1")
        .await
        .json();
    let feed_cursor = feed["nextCursor"].as_str().unwrap();
    app.get(&format!("/customers?sort=updatedAt&cursor={feed_cursor}"))
        .await
        .problem(400);
}

#[tokio::test]
async fn a_cursor_not_shaped_like_one_is_a_400_in_both_forms() {
    let app = seeded().await;
    for cursor in ["not a cursor", "", "abc=", &"a".repeat(1025)] {
        let problem = search(&app, &json!({"cursor": cursor})).await.problem(400);
        assert_eq!(
            problem["type"], "urn:problem:crm:invalid-cursor",
            "{cursor}"
        );
    }
}

// --- Combinations --------------------------------------------------------------------------

#[tokio::test]
async fn combinations_the_api_does_not_serve_are_400s_saying_what_is_supported() {
    let app = seeded().await;
    let since = "2021-01-01T00:00:00Z";
    let cases = [
        (
            json!({"name": "Quill", "email": "ada@example.com"}),
            "email cannot be combined",
        ),
        (
            json!({"email": "ada@example.com", "sort": "createdAt"}),
            "email cannot be combined",
        ),
        (
            json!({"email": "ada@example.com", "limit": 5}),
            "email cannot be combined",
        ),
        (
            json!({"email": "ada@example.com", "cursor": "abc"}),
            "email cannot be combined",
        ),
        (
            json!({"email": "ada@example.com", "updatedSince": since}),
            "email cannot be combined",
        ),
        (
            json!({"name": "Quill", "updatedSince": since}),
            "name and updatedSince cannot be combined",
        ),
        (
            json!({"name": "Quill", "sort": "createdAt"}),
            "sort must be name",
        ),
        (
            json!({"name": "Quill", "sort": "-createdAt"}),
            "sort must be name",
        ),
        (
            json!({"name": "Quill", "sort": "updatedAt"}),
            "sort must be name",
        ),
        (
            json!({"updatedSince": since, "sort": "name"}),
            "sort must be updatedAt",
        ),
        (
            json!({"updatedSince": since, "sort": "createdAt"}),
            "sort must be updatedAt",
        ),
    ];
    for (filters, says) in cases {
        let query: Vec<String> = filters
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => format!("{name}={}", encode(text)),
                other => format!("{name}={other}"),
            })
            .collect();
        let by_query = app
            .get(&format!("/customers?{}", query.join("&")))
            .await
            .problem(400);
        let by_body = search(&app, &filters).await.problem(400);
        assert_eq!(by_query, by_body, "{filters}");
        assert_eq!(by_query["type"], "urn:problem:crm:bad-request");
        let detail = by_query["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{filters}: {detail}");
        assert!(
            !detail.contains("ada@example.com") && !detail.contains("Quill"),
            "no value is repeated: {detail}"
        );
    }
}

#[tokio::test]
async fn an_email_alone_finds_the_one_customer_in_both_forms() {
    let app = spawn_app();
    let ada = app.create(crate::helpers::ada()).await;
    app.create(named("other")).await;
    let found = json!({"items": [ada], "nextCursor": null});
    assert_eq!(
        app.get("/customers?email=ADA%40example.COM").await.json(),
        found
    );
    assert_eq!(
        search(&app, &json!({"email": "ADA@example.COM"}))
            .await
            .json(),
        found
    );
    assert_eq!(
        search(&app, &json!({"email": "nobody@example.com"}))
            .await
            .json(),
        json!({"items": [], "nextCursor": null})
    );
    let response = search(&app, &json!({"email": "not-an-email"})).await;
    assert_eq!(response.invalid_fields(), ["email"]);
    assert!(!body_text(&response).contains("not-an-email"));
}

#[tokio::test]
async fn a_repeated_or_unknown_query_parameter_is_a_400_naming_the_supported_ones() {
    let app = seeded().await;
    for query in [
        "sort=name&sort=name",
        "name=a&name=b",
        "updatedSince=2021-01-01T00:00:00Z&updatedSince=2021-01-01T00:00:00Z",
    ] {
        let problem = app.get(&format!("/customers?{query}")).await.problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("more than once"),
            "{query}"
        );
    }
    let problem = app.get("/customers?q=zo").await.problem(400);
    assert_eq!(
        problem["detail"],
        "unknown query parameter `q`; GET /customers takes name, email, updatedSince, sort, limit and cursor"
    );
}

// --- POST /customers/search ----------------------------------------------------------------

#[tokio::test]
async fn an_unknown_or_repeated_member_is_a_400_naming_the_supported_ones() {
    let app = seeded().await;
    for body in [json!({"Name": "zo"}), json!({"q": "zo", "name": "zo"})] {
        let problem = search(&app, &body).await.problem(400);
        let detail = problem["detail"].as_str().unwrap();
        assert_eq!(problem["type"], "urn:problem:crm:bad-request");
        assert!(
            detail.contains("takes name, email, updatedSince, sort, limit and cursor"),
            "{detail}"
        );
    }
    let response = app
        .request(
            Method::POST,
            "/customers/search",
            &[("content-type", "application/json")],
            r#"{"name": "zo", "name": "em"}"#,
        )
        .await;
    let problem = response.problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("more than once")
    );
}

#[tokio::test]
async fn members_of_the_wrong_json_type_are_400s() {
    let app = seeded().await;
    for body in [
        json!({"limit": "5"}),
        json!({"limit": true}),
        json!({"name": 5}),
        json!({"email": ["ada@example.com"]}),
        json!({"updatedSince": 1_609_459_200}),
        json!({"sort": {"by": "name"}}),
        json!({"cursor": 1}),
        json!([{"name": "zo"}]),
        json!("zo"),
        json!(null),
    ] {
        let problem = search(&app, &body).await.problem(400);
        assert_eq!(problem["type"], "urn:problem:crm:bad-request", "{body}");
    }
    for limit in [json!(0), json!(101), json!(1.5), json!(-1)] {
        let problem = search(&app, &json!({"limit": limit})).await.problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("1 to 100"),
            "{limit}"
        );
    }
}

#[tokio::test]
async fn null_members_are_left_out() {
    let app = seeded().await;
    let page = search(
        &app,
        &json!({"name": null, "email": null, "updatedSince": null, "sort": null,
            "limit": null, "cursor": null}),
    )
    .await
    .json();
    assert_eq!(ids(page["items"].as_array().unwrap()), CREATED);
    assert_eq!(page["nextCursor"], Value::Null);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_and_one_that_is_not_declared_json_a_415() {
    let app = seeded().await;
    for body in ["{\"name\": ", "", "name=zo", "{'name': 'zo'}"] {
        let problem = app
            .request(
                Method::POST,
                "/customers/search",
                &[("content-type", "application/json")],
                body,
            )
            .await
            .problem(400);
        assert_eq!(problem["type"], "urn:problem:crm:malformed-json", "{body}");
    }
    for headers in [
        [("content-type", "text/plain")].as_slice(),
        &[("content-type", "application/x-www-form-urlencoded")],
        &[("content-type", "application/json; charset=latin1")],
        &[],
    ] {
        let response = app
            .request(
                Method::POST,
                "/customers/search",
                headers,
                r#"{"name": "zo"}"#,
            )
            .await;
        let problem = response.problem(415);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
    }
    let response = app
        .request(
            Method::POST,
            "/customers/search",
            &[("content-type", "Application/JSON; charset=UTF-8")],
            r#"{"name": "zo"}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn a_search_body_over_16_kib_is_a_413() {
    let app = spawn_app();
    let body = format!(r#"{{"name": "{}"}}"#, "a".repeat(16 * 1024));
    let response = app
        .request(
            Method::POST,
            "/customers/search",
            &[("content-type", "application/json")],
            body,
        )
        .await;
    response.problem(413);
}

#[tokio::test]
async fn a_search_is_a_read_that_ignores_idempotency_keys() {
    let app = seeded().await;
    for _ in 0..2 {
        let response = app
            .request(
                Method::POST,
                "/customers/search",
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", "search-1"),
                ],
                r#"{"name": "zo"}"#,
            )
            .await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(!response.headers.contains_key("idempotent-replayed"));
        assert_eq!(response.json()["items"].as_array().unwrap().len(), 3);
    }
    let again = search(&app, &json!({"name": "zoe"})).await;
    assert_eq!(again.json()["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_search_under_a_stage_prefix_is_the_search() {
    let app = seeded().await;
    let page = app
        .post_json("/prod/customers/search", &json!({"name": "smith"}))
        .await
        .json();
    assert_eq!(ids(page["items"].as_array().unwrap()), ["m-mary", "d-bob"]);
}

// --- /customers/search is also the customer `search` ---------------------------------------

#[tokio::test]
async fn the_customer_whose_id_is_search_keeps_its_get_patch_and_delete() {
    let app = spawn_app();
    let problem = app.get("/customers/search").await.problem(404);
    assert_eq!(problem["type"], "urn:problem:crm:customer-not-found");
    let response = app.post_json("/customers", &named("search")).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.header("location"), "/customers/search");

    let read = app.get("/customers/search").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["id"], "search");
    assert_eq!(read.header("etag"), "\"1\"");

    let changed = app
        .patch_json(
            "/customers/search",
            &json!({"firstName": "Ada"}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.json()["firstName"], "Ada");
    assert_eq!(changed.header("etag"), "\"2\"");

    // POST on the same path is the search, which finds it.
    let found = search(&app, &json!({"name": "ada"})).await.json();
    assert_eq!(ids(found["items"].as_array().unwrap()), ["search"]);

    assert_eq!(
        app.delete("/customers/search", Some("\"1\"")).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        app.delete("/customers/search", Some("\"2\"")).await.status,
        StatusCode::NO_CONTENT
    );
    app.get("/customers/search").await.problem(404);
}

#[tokio::test]
async fn another_method_on_the_search_path_is_a_405_listing_the_customer_s_and_the_search() {
    let app = spawn_app();
    for method in [Method::PUT, Method::OPTIONS] {
        let response = app
            .request(method.clone(), "/customers/search", &[], Body::empty())
            .await;
        response.problem(405);
        let mut allow: Vec<String> = response
            .header("allow")
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        allow.sort();
        assert_eq!(allow, ["DELETE", "GET", "PATCH", "POST"], "{method}");
    }
    // POST is the search on this path only.
    app.request(Method::POST, "/customers/searches", &[], Body::empty())
        .await
        .problem(405);
}

// --- The other listings keep the creation order --------------------------------------------

#[tokio::test]
async fn the_compatibility_listings_are_in_creation_order() {
    let app = ticking_app();
    for id in ["c", "a", "b"] {
        app.create(named(id)).await;
    }
    let legacy = app.get("/Customers").await.json();
    assert_eq!(ids(legacy.as_array().unwrap()), ["c", "a", "b"]);
    let mut seen = Vec::new();
    let mut payload = json!({"Limit": 2});
    loop {
        let response = app
            .envelope(json!({"operation": "list", "payload": payload.clone()}))
            .await
            .json();
        seen.extend(ids(response["Items"].as_array().unwrap()));
        match response.get("LastEvaluatedKey") {
            Some(key) => payload = json!({"Limit": 2, "ExclusiveStartKey": key}),
            None => break,
        }
    }
    assert_eq!(seen, ["c", "a", "b"]);
}

// --- Store failures ------------------------------------------------------------------------

#[tokio::test]
async fn a_store_outage_is_a_503_on_every_form() {
    fn throttled() -> RepositoryError {
        RepositoryError::unavailable("throttled")
    }
    let app = spawn_app_with(&[], Arc::new(FailingRepository(throttled)));
    let responses = [
        app.get("/customers?sort=name").await,
        app.get("/customers?name=zo").await,
        app.get("/customers?updatedSince=2021-01-01T00:00:00Z")
            .await,
        search(&app, &json!({"sort": "-createdAt"})).await,
        search(&app, &json!({"updatedSince": "2021-01-01T00:00:00Z"})).await,
        search(&app, &json!({"email": "ada@example.com"})).await,
    ];
    for response in responses {
        response.problem(503);
        assert_eq!(response.header("retry-after"), "1");
    }
}
