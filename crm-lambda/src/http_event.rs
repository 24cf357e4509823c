//! Reading an HTTP event before `lambda_http` converts it, since its conversion panics on what it
//! cannot convert.
//!
//! `lambda_http` (1.x, `request.rs`) builds the request URI with `Url::parse(…).unwrap()`, passes
//! it to `http::Request::builder()` and `expect`s the result; `aws_lambda_events` decodes a base64
//! body with `expect`. A caller can reach the first through a `Host`, `X-Forwarded-Proto`, path or
//! (HTTP API) raw query string that no URI can hold, such as the Lambda console's API Gateway test
//! event, whose host is `1234567890.execute-api.{dns_suffix}`. A header name or value that is not
//! valid HTTP never gets that far: it fails the whole event's deserialization. Each of these is
//! answered here with a 400 problem in the event's own response shape, naming the part at fault
//! and never its value, which can be personal data.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crm_http::Problem;
use crm_http::error::PROBLEM_JSON;
use lambda_http::Body;
use lambda_http::aws_lambda_events::alb::AlbTargetGroupResponse;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::http::header::{CONTENT_TYPE, HOST, HeaderName};
use lambda_http::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use serde_json::Value;
use serde_json::value::{RawValue, to_raw_value};
use url::Url;

/// The part of an event that cannot become part of an HTTP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Host,
    ForwardedProto,
    Path,
    Query,
    Headers,
    Body,
}

impl Part {
    /// The part's name in the log line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::ForwardedProto => "x-forwarded-proto",
            Self::Path => "path",
            Self::Query => "query",
            Self::Headers => "headers",
            Self::Body => "body",
        }
    }

    /// The problem's detail.
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Self::Host => "the Host header is not a valid URI host",
            Self::ForwardedProto => "the X-Forwarded-Proto header is not a valid URI scheme",
            Self::Path => "the path is not valid in a URI",
            Self::Query => "the query string is not valid in a URI",
            Self::Headers => "a header name or value is not valid HTTP",
            Self::Body => "the body is marked base64-encoded but is not valid base64",
        }
    }
}

/// `event` as `lambda_http` reads it, with the part that would make its conversion panic, if any;
/// `None` when it is no API Gateway, ALB or function URL event.
pub(crate) fn read(event: &str) -> Option<(LambdaRequest, Option<Part>)> {
    if let Ok(request) = serde_json::from_str::<LambdaRequest>(event) {
        let fault = fault(&request);
        return Some((request, fault));
    }
    // An event whose header maps hold something that is not HTTP fails to deserialize as a whole;
    // without them it reads, and its headers are what is wrong with it.
    let mut event: Value = serde_json::from_str(event).ok()?;
    let fields = event.as_object_mut()?;
    let removed = [fields.remove("headers"), fields.remove("multiValueHeaders")];
    if removed.iter().all(Option::is_none) {
        return None;
    }
    let request = serde_json::from_str(&event.to_string()).ok()?;
    Some((request, Some(Part::Headers)))
}

/// The part of `request` that `lambda_http` cannot convert, if any.
fn fault(request: &LambdaRequest) -> Option<Part> {
    match request {
        LambdaRequest::ApiGatewayV1(ag) => uri_fault(
            &ag.headers,
            ag.request_context.domain_name.as_deref(),
            &with_stage(ag.request_context.stage.as_deref(), ag.path.as_deref()),
            None,
        )
        .or_else(|| body_fault(ag.is_base64_encoded, ag.body.as_deref())),
        LambdaRequest::ApiGatewayV2(ag) => uri_fault(
            &ag.headers,
            ag.request_context.domain_name.as_deref(),
            &with_stage(ag.request_context.stage.as_deref(), ag.raw_path.as_deref()),
            ag.raw_query_string.as_deref(),
        )
        .or_else(|| body_fault(ag.is_base64_encoded, ag.body.as_deref())),
        LambdaRequest::Alb(alb) => uri_fault(
            &alb.headers,
            None,
            alb.path.as_deref().unwrap_or_default(),
            None,
        )
        .or_else(|| body_fault(alb.is_base64_encoded, alb.body.as_deref())),
        // Event sources whose `lambda_http` features this crate does not enable.
        _ => None,
    }
}

/// The part of the URI that `lambda_http` cannot build (`build_request_uri`), if any. The host is
/// the `Host` header, else (API Gateway) the event's domain name; the scheme `X-Forwarded-Proto`,
/// else `https`. REST API and ALB query strings are re-encoded (`form_urlencoded`) and always fit;
/// an HTTP API's raw query string is appended as it came.
fn uri_fault(
    headers: &HeaderMap,
    domain: Option<&str>,
    path: &str,
    raw_query: Option<&str>,
) -> Option<Part> {
    let header = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(HOST).or(domain);
    let scheme = header(HeaderName::from_static("x-forwarded-proto")).unwrap_or("https");
    if builds(scheme, host, path, raw_query) {
        return None;
    }
    // Which part: the first one whose addition breaks the URI.
    Some(if host.is_some() && !builds(scheme, host, "/", None) {
        if builds(scheme, Some("localhost"), "/", None) {
            Part::Host
        } else {
            Part::ForwardedProto
        }
    } else if !builds(scheme, host, path, None) {
        Part::Path
    } else {
        Part::Query
    })
}

/// Whether `lambda_http` builds a request URI from these parts: its steps, without its `unwrap`s.
fn builds(scheme: &str, host: Option<&str>, path: &str, raw_query: Option<&str>) -> bool {
    let url = match host {
        None => Url::parse(&format!("http://localhost{path}")).map(|url| url.path().to_owned()),
        Some(host) => Url::parse(&format!("{scheme}://{host}{path}")).map(String::from),
    };
    let Ok(mut uri) = url else {
        return false;
    };
    if let Some(query) = raw_query.filter(|query| !query.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    Uri::try_from(uri).is_ok()
}

/// The path `lambda_http` gives an API Gateway event (`apigw_path_with_stage`): the stage in front,
/// unless it is `$default`, the path already starts with it, or
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set.
fn with_stage<'a>(stage: Option<&str>, path: Option<&'a str>) -> Cow<'a, str> {
    let path = path.unwrap_or_default();
    match stage {
        Some(stage)
            if stage != "$default"
                && std::env::var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_err()
                && !path.starts_with(&format!("/{stage}/")) =>
        {
            Cow::Owned(format!("/{stage}{path}"))
        }
        _ => Cow::Borrowed(path),
    }
}

/// `Body` when the body claims base64 and is not (`Body::from_maybe_encoded` would panic).
fn body_fault(base64: bool, body: Option<&str>) -> Option<Part> {
    (base64 && body.is_some_and(|body| STANDARD.decode(body).is_err())).then_some(Part::Body)
}

/// `problem` as the response to an event from `origin`, in the shape `lambda_http` gives the
/// router's responses: a REST API's headers as multi-value headers only, an HTTP API's as single
/// values, an ALB's as both, with a status description. `x-request-id` is Lambda's request id, as
/// on every response of the router.
pub(crate) fn problem_response(
    origin: &RequestOrigin,
    problem: &Problem,
    request_id: &str,
) -> Result<Box<RawValue>, serde_json::Error> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Some(Body::Text(serde_json::to_string(problem)?));
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), id);
    }
    match origin {
        RequestOrigin::ApiGatewayV1 => {
            let mut response = ApiGatewayProxyResponse::default();
            response.status_code = status.as_u16().into();
            response.multi_value_headers = headers;
            response.body = body;
            to_raw_value(&response)
        }
        RequestOrigin::Alb => {
            let mut response = AlbTargetGroupResponse::default();
            response.status_code = status.as_u16().into();
            response.status_description = Some(format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            ));
            response.headers = headers.clone();
            response.multi_value_headers = headers;
            response.body = body;
            to_raw_value(&response)
        }
        // HTTP APIs and function URLs (and the origins of features this crate does not enable).
        _ => {
            let mut response = ApiGatewayV2httpResponse::default();
            response.status_code = status.as_u16().into();
            response.headers = headers;
            response.body = body;
            to_raw_value(&response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_rules_are_lambda_http_s() {
        let cases = [
            ("https", Some("api.example.com"), "/customers", None, None),
            (
                "https",
                Some("1234567890.execute-api.{dns_suffix}"),
                "/",
                None,
                Some(Part::Host),
            ),
            ("https", Some("a b"), "/", None, Some(Part::Host)),
            (
                "1x",
                Some("api.example.com"),
                "/",
                None,
                Some(Part::ForwardedProto),
            ),
            (
                "https",
                Some("api.example.com"),
                ":99999",
                None,
                Some(Part::Path),
            ),
            ("https", None, "%zz", None, Some(Part::Path)),
            ("https", Some("api.example.com"), "/a b", None, None),
            (
                "https",
                Some("api.example.com"),
                "/c",
                Some("q=a b"),
                Some(Part::Query),
            ),
            (
                "https",
                Some("api.example.com"),
                "/c",
                Some("q=%C3%A4"),
                None,
            ),
        ];
        for (scheme, host, path, query, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
            if let Some(host) = host {
                headers.insert(HOST, HeaderValue::from_str(host).unwrap());
            }
            assert_eq!(
                uri_fault(&headers, None, path, query),
                expected,
                "{scheme} {host:?} {path} {query:?}"
            );
        }
    }

    #[test]
    fn the_stage_goes_in_front_as_lambda_http_puts_it() {
        assert_eq!(
            with_stage(Some("prod"), Some("/customers")),
            "/prod/customers"
        );
        assert_eq!(
            with_stage(Some("prod"), Some("/prod/customers")),
            "/prod/customers"
        );
        assert_eq!(
            with_stage(Some("$default"), Some("/customers")),
            "/customers"
        );
        assert_eq!(with_stage(None, None), "");
    }
}
