//! The API docs page, `GET /docs`: Swagger UI over the server's own OpenAPI document, with the
//! `docs-viewer` feature and `CRM_DOCS` on (in a real browser: `scripts/docs-viewer-test.sh`).
//! Its routes are not API operations, so these tests drive the router directly rather than
//! through the API tests' harness, which checks every response against openapi.json.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use crm_domain::CustomerService;
use crm_http::{AppState, Config, router};
use crm_memory::InMemoryCustomerRepository;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

fn state(vars: &[(&str, &str)]) -> AppState {
    let config = Config::from_vars(vars.iter().copied()).expect("valid test configuration");
    AppState::new(
        CustomerService::new(Arc::new(InMemoryCustomerRepository::new())),
        &config,
    )
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

async fn send(app: &Router, method: Method, uri: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Method::GET, uri).await
}

/// A 404 like any unknown path's.
fn assert_no_such_route(answer: &Answer, uri: &str) {
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    assert_eq!(answer.header("content-type"), "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(answer.text()).unwrap();
    assert_eq!(problem["type"], "urn:problem:crm:no-such-route", "{uri}");
}

#[cfg(feature = "docs-viewer")]
mod on {
    use super::*;

    /// The URLs the page loads (`src` and `href` attributes), as written: all relative.
    fn page_urls(page: &str) -> Vec<String> {
        let mut urls = Vec::new();
        for opener in [" src=\"", " href=\""] {
            for (start, _) in page.match_indices(opener) {
                let rest = &page[start + opener.len()..];
                urls.push(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
        urls
    }

    /// The security headers of every response of the page.
    fn assert_locked_down(answer: &Answer, uri: &str) {
        let policy = answer.header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{uri}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{uri}: {policy}");
        assert_eq!(answer.header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(answer.header("referrer-policy"), "no-referrer", "{uri}");
    }

    /// Loads the page at `<prefix>/docs` and every file it names, as a browser resolves them.
    async fn load_page(app: &Router, prefix: &str) -> Vec<String> {
        let uri = format!("{prefix}/docs");
        let page = get(app, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(page.header("cache-control"), "no-cache");
        assert_locked_down(&page, &uri);
        let urls = page_urls(page.text());
        let mut kinds = Vec::new();
        for url in &urls {
            if url.starts_with("data:") {
                continue;
            }
            assert!(!url.starts_with('/') && !url.contains(':'), "{url}");
            let resolved = format!("{prefix}/{url}");
            let file = get(app, &resolved).await;
            assert_eq!(file.status, StatusCode::OK, "{resolved}");
            assert!(!file.body.is_empty(), "{resolved}");
            let content_type = file.header("content-type").to_owned();
            let expected = match url.rsplit('.').next().unwrap() {
                "css" => "text/css; charset=utf-8",
                "js" => "text/javascript; charset=utf-8",
                "json" => "application/json",
                other => panic!("{url}: a file of type {other}"),
            };
            assert_eq!(content_type, expected, "{resolved}");
            if url.starts_with("docs/") {
                assert_locked_down(&file, &resolved);
                let versioned = url.starts_with("docs/swagger-ui/");
                assert_eq!(
                    file.header("cache-control"),
                    if versioned {
                        "public, max-age=31536000, immutable"
                    } else {
                        "no-cache"
                    },
                    "{resolved}"
                );
            }
            kinds.push(content_type);
        }
        kinds
    }

    #[tokio::test]
    async fn the_page_loads_the_viewer_and_the_document_from_its_own_server() {
        let app = router(state(&[]));
        let kinds = load_page(&app, "").await;
        // The stylesheet, the bundle, the start-up script and the fallback link to the document.
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        let page = get(&app, "/docs").await;
        assert!(page.text().contains("docs/init.js"));
        let init = get(&app, "/docs/init.js").await;
        assert!(init.text().contains("SwaggerUIBundle("), "{}", init.text());
        assert!(
            init.text()
                .contains("new URL(\"openapi.json\", document.baseURI)"),
            "{}",
            init.text()
        );
        let head = send(&app, Method::HEAD, "/docs").await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        let post = send(&app, Method::POST, "/docs").await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn the_viewer_s_licences_are_served_next_to_it() {
        let app = router(state(&[]));
        let version = vendored_version();
        let bundle = get(
            &app,
            &format!("/docs/swagger-ui/{version}/swagger-ui-bundle.js"),
        )
        .await;
        // The bundle's first line names its licence file, relative to itself.
        assert!(
            bundle.text().starts_with(
                "/*! For license information please see swagger-ui-bundle.js.LICENSE.txt */"
            ),
            "{}",
            &bundle.text()[..100]
        );
        for (name, needle) in [
            ("swagger-ui-bundle.js.LICENSE.txt", "MIT"),
            ("LICENSE", "Apache License"),
            ("NOTICE", "SmartBear"),
        ] {
            let uri = format!("/docs/swagger-ui/{version}/{name}");
            let licence = get(&app, &uri).await;
            assert_eq!(licence.status, StatusCode::OK, "{uri}");
            assert_eq!(licence.header("content-type"), "text/plain; charset=utf-8");
            assert!(licence.text().contains(needle), "{uri}");
        }
    }

    fn vendored_version() -> String {
        let package: serde_json::Value =
            serde_json::from_str(include_str!("../docs-viewer/swagger-ui/package.json")).unwrap();
        package["version"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_vendoring_script_pins_the_vendored_version() {
        let script = include_str!("../../scripts/docs-viewer.sh");
        let pinned = format!("\nVERSION={}\n", vendored_version());
        assert!(script.contains(&pinned), "scripts/docs-viewer.sh: {pinned}");
    }

    #[tokio::test]
    async fn under_a_stage_prefix_the_page_and_its_document_keep_the_prefix() {
        let app = router(state(&[]));
        load_page(&app, "/prod").await;
        let document = get(&app, "/prod/openapi.json").await;
        let document: serde_json::Value = serde_json::from_slice(&document.body).unwrap();
        assert_eq!(document["servers"], serde_json::json!([{ "url": "/prod" }]));
    }

    #[tokio::test]
    async fn nested_in_a_host_application_the_page_works_under_its_mount() {
        let customers = router(state(&[]).without_stage_prefixes());
        let app = Router::new().nest("/crm", customers);
        load_page(&app, "/crm").await;
        let document = get(&app, "/crm/openapi.json").await;
        let document: serde_json::Value = serde_json::from_slice(&document.body).unwrap();
        assert_eq!(document["servers"], serde_json::json!([{ "url": "/crm" }]));
        assert_no_such_route(&get(&app, "/crm/prod/docs").await, "/crm/prod/docs");
    }

    #[tokio::test]
    async fn a_trailing_slash_is_sent_back_to_the_page() {
        let app = router(state(&[]));
        let answer = get(&app, "/docs/").await;
        assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT);
        // Relative, so that it keeps any prefix: /crm/docs/ → /crm/docs.
        assert_eq!(answer.header("location"), "../docs");
    }

    #[tokio::test]
    async fn with_crm_docs_false_the_page_is_an_unknown_path() {
        let app = router(state(&[("CRM_DOCS", "false")]));
        let version = vendored_version();
        for uri in [
            "/docs".to_owned(),
            "/docs/init.js".to_owned(),
            format!("/docs/swagger-ui/{version}/swagger-ui-bundle.js"),
            "/prod/docs".to_owned(),
        ] {
            assert_no_such_route(&get(&app, &uri).await, &uri);
        }
        // The API itself is unchanged.
        assert_eq!(get(&app, "/health").await.status, StatusCode::OK);
    }
}

#[cfg(not(feature = "docs-viewer"))]
#[tokio::test]
async fn without_the_feature_there_is_no_page_and_crm_docs_true_is_refused() {
    let app = router(state(&[]));
    assert_no_such_route(&get(&app, "/docs").await, "/docs");
    let error = Config::from_vars([("CRM_DOCS", "true")]).unwrap_err();
    assert_eq!(error.variable(), "CRM_DOCS");
}
