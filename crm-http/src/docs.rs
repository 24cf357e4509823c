//! `GET /docs`: the API docs page, Swagger UI over this server's own `GET /openapi.json`, whose
//! "Try it out" calls this same server. Only with the `docs-viewer` feature (which `crm-server`
//! has and `crm-lambda` leaves out), and only when [`Config::docs`](crate::Config::docs) is on.
//!
//! The viewer is not ours: it is the npm package `swagger-ui-dist`, at the version
//! [`swagger_ui_version!`] names, vendored byte for byte by `scripts/docs-viewer.sh` (which checks
//! the tarball's pinned sha512) into `docs-viewer/swagger-ui/`, with its licence files, and
//! embedded in the binary. Ours are the page and the few lines that start the viewer ([`PAGE`],
//! [`INIT`]), served as files so that the Content-Security-Policy allows no inline script.
//!
//! Every URL in the page is relative (`docs/…`, `openapi.json`), and the document's `servers`
//! names the prefix the client used (see [`openapi`](crate::openapi)): the page and its "Try it
//! out" work under a host application's mount and behind a stage prefix alike.

use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::header::{self, HeaderValue};

/// The version of `swagger-ui-dist` in `docs-viewer/swagger-ui/`; `scripts/docs-viewer.sh` pins the
/// same one (a test compares it with the vendored `package.json`).
macro_rules! swagger_ui_version {
    () => {
        "5.35.0"
    };
}

/// Where the vendored files are served, relative to the page: the version is in the path, so that
/// they can be cached for good.
macro_rules! assets {
    () => {
        concat!("docs/swagger-ui/", swagger_ui_version!())
    };
}

/// The page at `GET /docs`: the viewer's stylesheet and script, and [`INIT`].
const PAGE: &str = concat!(
    r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crm customers API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href=""#,
    assets!(),
    r#"/swagger-ui.css">
</head>
<body>
<noscript>This page needs JavaScript. The OpenAPI document itself is at <a href="openapi.json">openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src=""#,
    assets!(),
    r#"/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"#
);

/// `GET /docs/init.js`: starts Swagger UI on the document next to the page (`openapi.json`, which
/// names this server, under the client's prefix, as its `servers`). No top bar (it would load any
/// URL typed into it), no `?url=` from the query, no call to the online validator.
const INIT: &str = r##""use strict";
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  queryConfigEnabled: false,
  validatorUrl: null,
});
"##;

/// Only this origin's scripts, styles and requests; the stylesheet's icons are `data:` images.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The page and [`INIT`] change with this crate: the browser asks again each time.
const REVALIDATE: &str = "no-cache";

/// A vendored file's URL names its version: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The vendored files served, by name: the viewer, and its licences next to it (the bundle's first
/// line points to `swagger-ui-bundle.js.LICENSE.txt` beside it).
const VENDORED: [(&str, &str, &[u8]); 5] = [
    (
        "swagger-ui-bundle.js",
        JAVASCRIPT,
        include_bytes!("../docs-viewer/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        CSS,
        include_bytes!("../docs-viewer/swagger-ui/swagger-ui.css"),
    ),
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        TEXT,
        include_bytes!("../docs-viewer/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    ),
    (
        "LICENSE",
        TEXT,
        include_bytes!("../docs-viewer/swagger-ui/LICENSE"),
    ),
    (
        "NOTICE",
        TEXT,
        include_bytes!("../docs-viewer/swagger-ui/NOTICE"),
    ),
];

/// The routes of the docs page, for [`router`](crate::router) to merge when the page is on.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut routes = Router::new()
        .route(
            "/docs",
            get(|| async { file("text/html; charset=utf-8", REVALIDATE, PAGE.as_bytes()) }),
        )
        // The page's URLs are relative to `…/docs`; from `…/docs/` they would miss.
        .route("/docs/", get(|| async { Redirect::permanent("../docs") }))
        .route(
            "/docs/init.js",
            get(|| async { file(JAVASCRIPT, REVALIDATE, INIT.as_bytes()) }),
        );
    for (name, content_type, body) in VENDORED {
        routes = routes.route(
            &format!("/{}/{name}", assets!()),
            get(move || async move { file(content_type, IMMUTABLE, body) }),
        );
    }
    routes
}

/// A response of the docs page: `body` with its type, caching and the page's security headers.
fn file(content_type: &'static str, cache_control: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_viewer_is_the_version_named_here() {
        let package: serde_json::Value =
            serde_json::from_str(include_str!("../docs-viewer/swagger-ui/package.json")).unwrap();
        assert_eq!(package["name"], "swagger-ui-dist");
        assert_eq!(package["version"], swagger_ui_version!());
        assert_eq!(package["license"], "Apache-2.0");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert_eq!(PAGE.matches("<script").count(), 2);
        assert_eq!(PAGE.matches("<script src=\"").count(), 2);
        assert!(!PAGE.contains("<style") && !PAGE.contains(" style="));
        assert!(!PAGE.contains("onload=") && !PAGE.contains("javascript:"));
    }
}
