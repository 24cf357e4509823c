//! The OpenAPI 3.1 document of the whole API, hand-written in `crm-http/openapi.json` and served
//! at `GET /openapi.json`, with a `servers` entry that names the prefix the client used (a stage,
//! a custom domain's base path, the prefix a host application nests the router under), so that
//! tools reading the document call the API where it really is.
//!
//! Tests keep it true: every documented path and method is routed and every route root documented
//! (unit tests here and in `middleware`, and `tests/api/openapi.rs`), and every response the router
//! tests see has a status the document lists for its operation, its required headers, and a body
//! that matches the documented schema, patterns included (`TestApp::send` in
//! `tests/api/helpers.rs`).

use axum::response::IntoResponse;
use http::header;

use crate::extract::Prefix;

/// The document, as written (without `servers`, which `GET /openapi.json` adds per request).
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// `GET /openapi.json`: [`DOCUMENT`] with `"servers": [{"url": "<prefix>"}]` first (`/` when the
/// client used no prefix).
pub(crate) async fn serve(Prefix(prefix): Prefix) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        with_server(&prefix),
    )
}

/// The document with a `servers` member naming `prefix`. Spliced in as text: the document is a
/// JSON object that has no `servers` of its own (a unit test says so), and parsing 60 KB per
/// request to add one member would be waste.
fn with_server(prefix: &str) -> String {
    let url = if prefix.is_empty() { "/" } else { prefix };
    let url = serde_json::Value::from(url);
    let rest = DOCUMENT.trim_start().strip_prefix('{').unwrap_or(DOCUMENT);
    format!("{{\"servers\":[{{\"url\":{url}}}],{rest}")
}

/// The path templates the document describes.
#[cfg(test)]
pub(crate) fn paths() -> Vec<String> {
    let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    document["paths"]
        .as_object()
        .map(|paths| paths.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json_without_servers_of_its_own() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(!paths().is_empty());
        assert!(document.get("servers").is_none());
    }

    #[test]
    fn the_served_document_names_the_prefix_as_its_server() {
        for (prefix, url) in [("", "/"), ("/prod", "/prod"), ("/crm/api", "/crm/api")] {
            let served: serde_json::Value = serde_json::from_str(&with_server(prefix)).unwrap();
            assert_eq!(served["servers"], serde_json::json!([{ "url": url }]));
            let mut without = served.clone();
            without.as_object_mut().unwrap().remove("servers");
            assert_eq!(
                without,
                serde_json::from_str::<serde_json::Value>(DOCUMENT).unwrap()
            );
        }
    }
}
