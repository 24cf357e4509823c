//! The OpenAPI 3.1 document of the whole API, hand-written in `crm-lambda/openapi.json` and served
//! at `GET /openapi.json`.
//!
//! Tests keep it true: every documented path and method is routed and every route root documented
//! (unit tests here and in `middleware`, and `tests/api/openapi.rs`), and every response the router
//! tests see has a status the document lists for its operation, its required headers, and a body
//! that matches the documented schema, patterns included (`TestApp::send` in
//! `tests/api/helpers.rs`).

use axum::response::IntoResponse;
use http::header;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub(crate) async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
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
    fn the_document_is_openapi_3_1_json() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(!paths().is_empty());
    }
}
