//! The layers around the routes: request log line and metrics, CORS, panic catcher, deadline, stage prefix.
//!
//! Routing happens inside these layers, so the log line cannot read axum's `MatchedPath` from the
//! request it sees. Instead it hands the router a slot, which [`RecordRouteLayer`] (a layer on the
//! routes themselves) fills with the route template; even a request that panics or runs out of time
//! is logged with its template.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{OriginalUri, Request};
use axum::response::Response;
use http::Method;
use http::header::{self, HeaderName};
use http::uri::{PathAndQuery, Uri};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsOrigins;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{DOCS_ROOT, ROUTE_ROOTS};

mod services;

pub(crate) use services::RecordRouteLayer;
use services::{GuardLayer, RequestLogLayer};

/// The largest request body accepted, in bytes (16 KiB), on every route but `POST /customers/batch`
/// ([`BATCH_BODY_LIMIT`]); larger bodies are answered 413 before any parsing, whether or not they
/// announce a `Content-Length`.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The largest body of `POST /customers/batch`, in bytes (1 MiB): up to 100 customers, each of
/// which may come close to [`BODY_LIMIT`] on its own. Refused as [`BODY_LIMIT`] is.
pub const BATCH_BODY_LIMIT: usize = 1024 * 1024;

/// The target of the request span and the request log line (this module's path, which the
/// log lines have always named, whichever file writes them).
pub(crate) const TARGET: &str = "crm_http::middleware";

/// The response header that carries the request id.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id header of API Gateway and of proxies in front of it.
const AMZN_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// The X-Ray trace header (API Gateway's REST API and ALB set it).
const AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The W3C trace context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What precedes the routed path in the URL the client used (`/prod`, a custom domain's base path,
/// or nothing), for `Location` headers.
#[derive(Clone, Debug, Default)]
pub(crate) struct StagePrefix(pub(crate) String);

/// Gives `routes` their state and puts the layers around them; see [`crate::router`] for their
/// order and purpose. The layers are one service (`services`), which [`crate::router`] and
/// [`crate::api`] each box once.
pub(crate) fn wrap(
    routes: Router<AppState>,
    state: AppState,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let strip = state.stage_prefixes();
    let docs = state.docs();
    let cors = cors_layer(state.cors_origins());
    let guard = GuardLayer {
        deadline: state.request_deadline(),
    };
    let routes = routes.with_state(state);
    let staged =
        tower::util::MapRequest::new(routes, move |request| strip_stage(request, strip, docs));
    ServiceBuilder::new()
        .layer(RequestLogLayer)
        .option_layer(cors)
        .layer(guard)
        .service(staged)
}

/// The request headers a browser may send across origins: the API's own (`Content-Type`,
/// `If-Match`, `Idempotency-Key`, `x-request-id`) and those an API Gateway deployment asks for (a Cognito or Lambda
/// authorizer's `Authorization`, a usage plan's `x-api-key`, IAM's `SigV4` headers).
const ALLOWED_HEADERS: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::IF_MATCH,
    HeaderName::from_static(crate::extract::IDEMPOTENCY_KEY),
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-amz-date"),
    HeaderName::from_static("x-amz-security-token"),
    HeaderName::from_static("x-amz-content-sha256"),
    REQUEST_ID,
];

/// CORS from `CRM_CORS_ORIGINS`; `None` when it is off. Preflights are answered here, before
/// routing; a preflight from an origin not allowed gets no `Access-Control-Allow-Origin`, which
/// the browser reads as a refusal. Responses expose what a browser client needs to read: `ETag`
/// for `If-Match`, `Location`, the request id, `Retry-After` on 503s and 409s, `Allow` on 405s and
/// `Idempotent-Replayed` on the answers from an idempotency key's record.
fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        CorsOrigins::Disabled => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                REQUEST_ID,
                header::RETRY_AFTER,
                header::ALLOW,
                HeaderName::from_static(crate::customers::IDEMPOTENT_REPLAYED),
            ])
            .max_age(std::time::Duration::from_mins(10)),
    )
}

/// What the platform in front of the router knows of a request that the request itself does not
/// say. A platform adapter (`crm-lambda` for API Gateway, ALB and function URL events) inserts it
/// as a request extension before the request reaches [`api`](crate::api) (or
/// [`router`](crate::router)); without it, the
/// request id comes from the headers and the client's path from the URI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformContext {
    request_id: Option<String>,
    trace_header: Option<String>,
    client_path: Option<String>,
    deadline: Option<SystemTime>,
}

impl PlatformContext {
    /// A context that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The platform's id of this request (Lambda's `aws_request_id`), which the request log line
    /// and the `x-request-id` response header then carry.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into()).filter(|id| !id.is_empty());
        self
    }

    /// The platform's X-Ray trace header of this request (Lambda's `_X_AMZN_TRACE_ID`, as the
    /// invocation's context gives it: `Root=1-…;Parent=…;Sampled=…`), whose root id every log line
    /// of the request then carries as `trace_id`. It wins over the request's own trace headers.
    #[must_use]
    pub fn with_trace_header(mut self, header: impl Into<String>) -> Self {
        self.trace_header = Some(header.into()).filter(|h| !h.is_empty());
        self
    }

    /// The path as the client sent it, when the platform rewrote the request's path (API Gateway
    /// REST APIs put the stage into it, even behind a custom domain whose clients never sent one),
    /// so that `Location` headers hold the prefix the client used.
    #[must_use]
    pub fn with_client_path(mut self, path: impl Into<String>) -> Self {
        self.client_path = Some(path.into());
        self
    }

    /// When the platform stops waiting for this request (a Lambda invocation's deadline): the
    /// request then gets at most the time left, less [`DEADLINE_MARGIN`] to send the answer,
    /// whatever `CRM_REQUEST_DEADLINE_MS` says.
    #[must_use]
    pub fn with_deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The platform's id of this request, if it gave one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The caller's span the platform's X-Ray trace header names, for a direct invocation's span.
    #[cfg(feature = "otel")]
    pub(crate) fn remote_parent(&self) -> Option<crate::otel::RemoteParent> {
        self.trace_header.as_deref().and_then(xray_parent)
    }

    /// How long a request may take: `configured`, or less when the platform's deadline comes
    /// sooner (zero when it has passed, or is nearer than the margin).
    pub fn time_limit(&self, configured: Duration) -> Duration {
        let Some(deadline) = self.deadline else {
            return configured;
        };
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(DEADLINE_MARGIN);
        configured.min(left)
    }
}

/// The time kept back from a platform's deadline to answer: a request that runs out of time gets
/// its 503 out before the platform cuts it off (for Lambda, a timeout that the client sees as a
/// gateway error and that ends the sandbox).
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(200);

/// Serves `/<stage>/<route…>` as `/<route…>` (see [`crate::router`]; unless `strip` is off) and
/// records the client's prefix: the part of the path the client used that precedes the route.
///
/// The client's path is the platform's ([`PlatformContext`]), else the one the outermost axum
/// router saw ([`OriginalUri`], which holds the prefix of an application that nests this router):
/// the first of them that ends with the routed path gives the prefix; when neither does (a layer
/// rewrote the path), the stage stripped here is the prefix. The prefix goes into `Location`
/// headers, so every byte outside visible ASCII is percent-encoded. With the docs page on (`docs`),
/// `docs` is a route root too.
fn strip_stage(mut request: Request, strip: bool, docs: bool) -> Request {
    let mut stripped = String::new();
    if let Some(stage) = stage_prefix(request.uri().path(), docs).filter(|_| strip) {
        let stage = stage.to_owned();
        let rest = &request.uri().path()[stage.len()..];
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
            stripped = stage;
        }
    }
    let routed = request.uri().path();
    let platform = request
        .extensions()
        .get::<PlatformContext>()
        .and_then(|context| context.client_path.as_deref());
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map(|original| original.path());
    let prefix = [platform, original]
        .into_iter()
        .flatten()
        .find_map(|client| client.strip_suffix(routed))
        .map_or(stripped, visible_ascii);
    request.extensions_mut().insert(StagePrefix(prefix));
    request
}

/// `text` with every byte outside visible ASCII percent-encoded, so that it fits a header value
/// and a URL whatever a client or host put in its path.
fn visible_ascii(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x21..=0x7e).contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    encoded
}

/// How many segments a prefix may have: the stage, then a base path of up to three levels.
const MAX_PREFIX_SEGMENTS: usize = 4;

/// The prefix of `path` that precedes the route: up to [`MAX_PREFIX_SEGMENTS`] leading segments,
/// each a valid stage or base-path segment and none a route root, followed by a segment that is a
/// route root ([`ROUTE_ROOTS`], and [`DOCS_ROOT`] when `docs` is on: only then, so that a build or
/// configuration without the docs page keeps serving a stage named `docs`). `/prod/customers` →
/// `/prod`; `/prod/crm/customers` (a REST API behind a custom domain whose base path is `crm`:
/// `lambda_http` puts the stage before the client's path, which holds the base path) →
/// `/prod/crm`; `/prod/api/v1/customers` → `/prod/api/v1`.
fn stage_prefix(path: &str, docs: bool) -> Option<&str> {
    let after = path.strip_prefix('/')?;
    let mut length = 0;
    for (index, segment) in after.split('/').enumerate() {
        if ROUTE_ROOTS.contains(&segment) || (docs && segment == DOCS_ROOT) {
            return (index > 0).then(|| &path[..length]);
        }
        if index == MAX_PREFIX_SEGMENTS || !is_prefix_segment(segment) {
            return None;
        }
        length += 1 + segment.len();
    }
    None
}

/// A segment that can be an API Gateway stage name (`[A-Za-z0-9_-]`, at most 128) or one level of a
/// custom domain's base path (letters, digits and `$-_.+!*'()`, as API Gateway accepts them), but not
/// `.` or `..`, which no client means as a base path.
fn is_prefix_segment(segment: &str) -> bool {
    (1..=128).contains(&segment.len())
        && !matches!(segment, "." | "..")
        && segment.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'$' | b'+' | b'!' | b'*' | b'\'' | b'(' | b')'
                )
        })
}

/// The request id: the platform's ([`PlatformContext`]), else a well-formed `x-request-id` or
/// `x-amzn-requestid` header from a proxy, else a new UUIDv7.
fn request_id(request: &Request) -> String {
    if let Some(id) = request
        .extensions()
        .get::<PlatformContext>()
        .and_then(|context| context.request_id.as_deref())
    {
        return id.to_owned();
    }
    // Looked up by `HeaderName`, not by `&str`, which `http` would parse and check again on
    // every request.
    [AMZN_REQUEST_ID, REQUEST_ID]
        .iter()
        .filter_map(|name| request.headers().get(name)?.to_str().ok())
        .find(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(new_request_id, str::to_owned)
}

/// A new request id: a UUIDv7 (the time in milliseconds, then 74 random bits), its random bits
/// from a generator of the thread's own. `Uuid::now_v7` takes them from a system call and a lock
/// shared by every thread (its counter keeps ids in order within a millisecond, which a request id
/// does not need).
fn new_request_id() -> String {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let random = random_u128().to_le_bytes();
    let mut bits = [0; 10];
    bits.copy_from_slice(&random[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid();
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// 128 random bits from the thread's wyrand generator, seeded once per thread from the standard
/// library's randomly keyed hasher (whose keys come from the operating system). Not for secrets:
/// request ids only need to differ.
fn random_u128() -> u128 {
    use std::cell::Cell;
    use std::hash::{BuildHasher as _, RandomState};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
    }
    let next = || {
        STATE.with(|state| {
            let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
            state.set(s);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            // The high and low halves of the product, folded.
            let [high, low] = [t >> 64, t & u128::from(u64::MAX)]
                .map(|half| u64::try_from(half).unwrap_or_default());
            high ^ low
        })
    };
    u128::from(next()) << 64 | u128::from(next())
}

/// The trace id of the request, for its log lines: the root of the platform's X-Ray trace header
/// ([`PlatformContext::with_trace_header`]), else of an `X-Amzn-Trace-Id` header (API Gateway's
/// REST API and ALB set it), else the trace id of a W3C `traceparent` header. Only a well-formed
/// id is taken (`1-` + 8 + 24 hex digits for X-Ray, 32 hex digits for W3C), so a header can put
/// nothing else on a log line.
fn trace_id(request: &Request) -> Option<String> {
    let platform = request
        .extensions()
        .get::<PlatformContext>()
        .and_then(|context| context.trace_header.as_deref());
    let header = |name: &HeaderName| request.headers().get(name)?.to_str().ok();
    platform
        .and_then(xray_root)
        .or_else(|| header(&AMZN_TRACE_ID).and_then(xray_root))
        .or_else(|| header(&TRACEPARENT).and_then(w3c_trace_id))
        .map(str::to_owned)
}

/// The caller's span the request span continues, for the exported spans: from the same headers,
/// in the same order, as [`trace_id`], each taken only when it names a parent span too (an X-Ray
/// header without `Parent` gives way to the next).
#[cfg(feature = "otel")]
fn remote_parent(request: &Request) -> Option<crate::otel::RemoteParent> {
    let platform = request
        .extensions()
        .get::<PlatformContext>()
        .and_then(|context| context.trace_header.as_deref());
    let header = |name: &HeaderName| request.headers().get(name)?.to_str().ok();
    platform
        .and_then(xray_parent)
        .or_else(|| header(&AMZN_TRACE_ID).and_then(xray_parent))
        .or_else(|| header(&TRACEPARENT).and_then(w3c_parent))
}

/// The parent of an X-Ray trace header: its `Root` (well-formed, as [`xray_root`] takes it; the
/// trace id is its hex digits), its `Parent` (16 hex digits, not all zeros) and `Sampled` (`0`: not
/// sampled; `1`, `?` or absent: sampled).
#[cfg(feature = "otel")]
fn xray_parent(header: &str) -> Option<crate::otel::RemoteParent> {
    let root = xray_root(header)?;
    let field = |name: &str| {
        header
            .split(';')
            .find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='))
    };
    let trace_id = u128::from_str_radix(&root[2..].replace('-', ""), 16).ok()?;
    let span_id = field("Parent")
        .filter(|p| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|p| u64::from_str_radix(p, 16).ok())?;
    (trace_id != 0 && span_id != 0).then(|| crate::otel::RemoteParent {
        trace_id,
        span_id,
        sampled: field("Sampled") != Some("0"),
    })
}

/// The parent of a W3C `traceparent` header: its trace id (as [`w3c_trace_id`] takes it), parent
/// id (not all zeros) and sampled flag.
#[cfg(feature = "otel")]
fn w3c_parent(header: &str) -> Option<crate::otel::RemoteParent> {
    let trace_id = u128::from_str_radix(w3c_trace_id(header)?, 16).ok()?;
    let mut parts = header.trim().split('-').skip(2);
    let span_id = u64::from_str_radix(parts.next()?, 16).ok()?;
    let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
    (span_id != 0).then_some(crate::otel::RemoteParent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// The `Root` of an X-Ray trace header (`Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1`).
fn xray_root(header: &str) -> Option<&str> {
    let root = header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = root.split('-');
    let well_formed = parts.next() == Some("1")
        && parts.next().is_some_and(|time| hex(time, 8))
        && parts.next().is_some_and(|id| hex(id, 24))
        && parts.next().is_none();
    well_formed.then_some(root)
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), unless all zeros.
fn w3c_trace_id(header: &str) -> Option<&str> {
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut parts = header.trim().split('-');
    let version = parts.next().filter(|v| lower_hex(v, 2) && *v != "ff")?;
    let trace = parts.next().filter(|t| lower_hex(t, 32))?;
    parts.next().filter(|parent| lower_hex(parent, 16))?;
    parts.next().filter(|flags| lower_hex(flags, 2))?;
    // Version 00 has exactly four parts; later versions may add more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    (trace.bytes().any(|b| b != b'0')).then_some(trace)
}

/// The fallback for a path no route has.
pub(crate) async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// The fallback for a route called with a method it does not have; axum adds `Allow`.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn trace_ids_are_taken_only_when_well_formed() {
        let root = "1-5759e988-bd862e3fe1be46a994272793";
        assert_eq!(
            xray_root(&format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1")),
            Some(root)
        );
        assert_eq!(xray_root(&format!("Sampled=0; Root={root}")), Some(root));
        for bad in [
            "",
            "Root=",
            "Root=1-5759e988",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279z",
            "Root=1-5759e988-bd862e3fe1be46a994272793-x",
            "Root=ada@example.com",
        ] {
            assert_eq!(xray_root(bad), None, "{bad}");
        }
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            w3c_trace_id(&format!("00-{trace}-00f067aa0ba902b7-01")),
            Some(trace)
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
            format!("00-{trace}-00f067aa0ba902b7"),
            format!("00-{trace}-00f067aa0ba902b7-01-extra"),
            format!("ff-{trace}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", trace.to_uppercase()),
            "00-ada@example.com-00f067aa0ba902b7-01".to_owned(),
        ] {
            assert_eq!(w3c_trace_id(&bad), None, "{bad}");
        }
    }

    #[cfg(feature = "otel")]
    #[test]
    fn a_remote_parent_is_taken_only_from_a_well_formed_header_with_a_parent() {
        use crate::otel::RemoteParent;
        let parent = |trace_id, span_id, sampled| {
            Some(RemoteParent {
                trace_id,
                span_id,
                sampled,
            })
        };
        assert_eq!(
            xray_parent(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            ),
            parent(
                0x5759_e988_bd86_2e3f_e1be_46a9_9427_2793,
                0x5399_5c3f_42cd_8ad8,
                true
            )
        );
        assert_eq!(
            xray_parent(
                "Sampled=0; Parent=53995c3f42cd8ad8 ;Root=1-5759e988-bd862e3fe1be46a994272793"
            ),
            parent(
                0x5759_e988_bd86_2e3f_e1be_46a9_9427_2793,
                0x5399_5c3f_42cd_8ad8,
                false
            )
        );
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=+3995c3f42cd8ad8",
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
            "Root=ada@example.com;Parent=53995c3f42cd8ad8",
        ] {
            assert_eq!(xray_parent(bad), None, "{bad}");
        }
        assert_eq!(
            w3c_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            parent(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                true
            )
        );
        assert_eq!(
            w3c_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .map(|p| p.sampled),
            Some(false)
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(w3c_parent(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_request_id_is_a_uuid_v7_of_now_and_differs_every_time() {
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.hyphenated().to_string(), *id, "lower-case, hyphenated");
            assert_eq!(uuid.get_version_num(), 7);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            let (seconds, _) = uuid.get_timestamp().unwrap().to_unix();
            assert!(seconds.abs_diff(before.as_secs()) <= 5, "{id}");
        }
        // Another thread's generator starts elsewhere.
        let other = std::thread::spawn(new_request_id).join().unwrap();
        assert!(!ids.contains(&other));
    }

    #[test]
    fn a_stage_before_a_route_root_is_a_prefix() {
        assert_eq!(stage_prefix("/prod/customers", false), Some("/prod"));
        assert_eq!(stage_prefix("/prod/customers/abc", false), Some("/prod"));
        assert_eq!(stage_prefix("/dev-2/Customers", false), Some("/dev-2"));
        assert_eq!(stage_prefix("/v1_test/health", false), Some("/v1_test"));
        assert_eq!(stage_prefix("/prod/openapi.json", false), Some("/prod"));
        assert_eq!(stage_prefix("/prod/DynamoDBManager", false), Some("/prod"));
    }

    #[test]
    fn docs_is_a_route_root_only_with_the_docs_page_on() {
        assert_eq!(stage_prefix("/prod/docs", true), Some("/prod"));
        assert_eq!(
            stage_prefix("/prod/crm/docs/init.js", true),
            Some("/prod/crm")
        );
        assert_eq!(stage_prefix("/docs", true), None);
        assert_eq!(stage_prefix("/prod/docs", false), None);
        // Without the page, a stage named `docs` is a stage like any other.
        assert_eq!(stage_prefix("/docs/customers", false), Some("/docs"));
        assert_eq!(stage_prefix("/docs/customers", true), None);
        let request = strip_stage(request("/prod/docs"), true, true);
        assert_eq!(request.uri().path(), "/docs");
        assert_eq!(prefix(&request), "/prod");
    }

    #[test]
    fn a_stage_and_a_custom_domain_base_path_are_one_prefix() {
        assert_eq!(
            stage_prefix("/prod/crm/customers", false),
            Some("/prod/crm")
        );
        assert_eq!(
            stage_prefix("/prod/crm/customers/abc", false),
            Some("/prod/crm")
        );
        assert_eq!(
            stage_prefix("/prod/api/v1/customers", false),
            Some("/prod/api/v1")
        );
        assert_eq!(
            stage_prefix("/prod/a/b/c/customers", false),
            Some("/prod/a/b/c"),
            "four segments at most"
        );
        assert_eq!(stage_prefix("/crm.v2/customers", false), Some("/crm.v2"));
        assert_eq!(
            stage_prefix("/prod/crm.api/health", false),
            Some("/prod/crm.api")
        );
        assert_eq!(
            stage_prefix("/p/$x_(1)!*'+/health", false),
            Some("/p/$x_(1)!*'+")
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        let long = format!("/{}/customers", "p".repeat(129));
        for path in [
            "/customers",
            "/customers/abc",
            "/customers/customers",
            "/customers/prod/customers",
            "/prod",
            "/prod/",
            "/prod/unknown",
            "/prod/crm/unknown/deeper",
            "/a/b/c/d/e/customers",
            "/prod/customers2",
            "//customers",
            "/prod//customers",
            "/pr%20od/customers",
            "/pr:od/customers",
            "/../customers",
            "/prod/./customers",
            long.as_str(),
            "",
            "/",
        ] {
            assert_eq!(stage_prefix(path, false), None, "{path}");
        }
    }

    fn request(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    /// The client's prefix `strip_stage` recorded.
    fn prefix(request: &Request) -> &str {
        &request.extensions().get::<StagePrefix>().unwrap().0
    }

    #[test]
    fn a_custom_domain_location_keeps_the_base_path_the_client_used() {
        // As API Gateway sends it for `https://crm.example.com/api/v1/customers`: the stage in the
        // request path, the client's own path in the request context.
        let mut request = request("https://crm.example.com/prod/api/v1/customers");
        request
            .extensions_mut()
            .insert(PlatformContext::new().with_client_path("/api/v1/customers"));
        let request = strip_stage(request, true, false);
        assert_eq!(request.uri().path(), "/customers");
        assert_eq!(prefix(&request), "/api/v1");
    }

    #[test]
    fn a_nesting_application_s_prefix_is_kept() {
        let mut request = request("/prod/customers/abc");
        request
            .extensions_mut()
            .insert(OriginalUri("/crm/prod/customers/abc".parse().unwrap()));
        let request = strip_stage(request, true, false);
        assert_eq!(request.uri().path(), "/customers/abc");
        assert_eq!(prefix(&request), "/crm/prod");
    }

    #[test]
    fn a_client_path_that_does_not_end_with_the_route_gives_way_to_the_next() {
        // A platform path that a layer made stale, then the host's own path.
        let mut request = request("/customers");
        request
            .extensions_mut()
            .insert(PlatformContext::new().with_client_path("/somewhere/else"));
        request
            .extensions_mut()
            .insert(OriginalUri("/crm/customers".parse().unwrap()));
        let request = strip_stage(request, true, false);
        assert_eq!(prefix(&request), "/crm");
    }

    #[test]
    fn a_prefix_outside_visible_ascii_is_percent_encoded() {
        let mut request = request("/customers");
        request
            .extensions_mut()
            .insert(PlatformContext::new().with_client_path("/m\u{fc}nchen tenant/customers"));
        let request = strip_stage(request, true, false);
        let prefix = prefix(&request);
        assert_eq!(prefix, "/m%C3%BCnchen%20tenant");
        assert!(HeaderValue::from_str(prefix).is_ok());
    }

    #[test]
    fn with_stage_prefixes_off_a_stage_like_segment_is_left_to_routing() {
        let request = request("/prod/customers");
        let request = strip_stage(request, false, false);
        assert_eq!(request.uri().path(), "/prod/customers");
        assert_eq!(prefix(&request), "");
    }

    #[test]
    fn a_platform_deadline_shortens_the_time_a_request_gets_by_the_margin() {
        let configured = Duration::from_secs(5);
        assert_eq!(PlatformContext::new().time_limit(configured), configured);
        let far = SystemTime::now() + Duration::from_mins(1);
        assert_eq!(
            PlatformContext::new()
                .with_deadline(far)
                .time_limit(configured),
            configured
        );
        let near = SystemTime::now() + Duration::from_secs(1);
        let limit = PlatformContext::new()
            .with_deadline(near)
            .time_limit(configured);
        assert!(limit <= Duration::from_millis(800), "{limit:?}");
        assert!(limit > Duration::from_millis(500), "{limit:?}");
        let passed = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(
            PlatformContext::new()
                .with_deadline(passed)
                .time_limit(configured),
            Duration::ZERO
        );
    }

    #[test]
    fn stripping_keeps_the_query_and_records_the_prefix() {
        let request = request("https://api.example.com/prod/customers?limit=5");
        let request = strip_stage(request, true, false);
        assert_eq!(
            request.uri().to_string(),
            "https://api.example.com/customers?limit=5"
        );
        assert_eq!(prefix(&request), "/prod");
    }

    #[test]
    fn every_documented_path_starts_with_a_route_root_and_every_root_is_documented() {
        let paths = crate::openapi::paths();
        for path in &paths {
            let root = path.trim_start_matches('/').split('/').next().unwrap();
            assert!(ROUTE_ROOTS.contains(&root), "{path}");
        }
        for root in ROUTE_ROOTS {
            assert!(
                paths
                    .iter()
                    .any(|p| p.trim_start_matches('/').split('/').next() == Some(root)),
                "{root}"
            );
        }
    }
}
