//! Turning the parts of a request into domain inputs, each failure an [`ApiError`].
//!
//! The extractors here replace axum's own (`Json`, `Path`, `Query`), whose rejections are plain text:
//! every rejection of this API is a problem document.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use crm_domain::{
    Cursor, CustomerId, Email, PageLimit, RepositoryError, ValidationErrors, Version,
};
use http::request::Parts;
use http::{HeaderMap, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::Value;

use crate::error::ApiError;
use crate::middleware::{BODY_LIMIT, StagePrefix};

/// Reads a body of at most [`BODY_LIMIT`] bytes: refused from its `Content-Length` when it announces
/// one, else counted while it streams in, and never buffered past the limit.
async fn read_limited(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit: BODY_LIMIT };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large);
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large),
        Err(_) => Err(ApiError::BadRequest(
            "the request body could not be read to its end".to_owned(),
        )),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(ApiError::MalformedJson)
}

/// True when the `Content-Type` is one of `accepted` (compared without parameters and case), and its
/// `charset`, if any, is UTF-8: JSON is UTF-8 (RFC 8259).
fn media_type_is(headers: &HeaderMap, accepted: &[&str]) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    charset_ok && accepted.iter().any(|a| essence.eq_ignore_ascii_case(a))
}

/// The JSON body of `POST /customers`: `Content-Type: application/json`.
pub(crate) struct CreateJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for CreateJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        if !media_type_is(&parts.headers, &["application/json"]) {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let bytes = read_limited(&parts.headers, body).await?;
        parse_json(&bytes).map(Self)
    }
}

/// The JSON Merge Patch body of `PATCH /customers/{id}`: `application/merge-patch+json` or
/// `application/json`.
pub(crate) struct PatchJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for PatchJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        if !media_type_is(
            &parts.headers,
            &["application/merge-patch+json", "application/json"],
        ) {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/merge-patch+json or application/json",
            });
        }
        let bytes = read_limited(&parts.headers, body).await?;
        parse_json(&bytes).map(Self)
    }
}

/// The JSON body of a compatibility route. The seed systems read their body as JSON whatever its
/// `Content-Type` said (`curl -d` sends `application/x-www-form-urlencoded`), so these routes do too;
/// the size limit still holds.
pub(crate) struct AnyJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for AnyJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = read_limited(&parts.headers, body).await?;
        parse_json(&bytes).map(Self)
    }
}

/// The `{id}` of `/customers/{id}`. An id that is not well-formed names no customer: 404.
pub(crate) struct IdPath(pub(crate) CustomerId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| RepositoryError::NotFound)?;
        CustomerId::parse(&id)
            .map(Self)
            .map_err(|_| RepositoryError::NotFound.into())
    }
}

/// The `If-Match` header: absent or `*` (any current version) is `None`; one entity tag
/// `"<version>"` (or `W/"<version>"`) is that version. Anything else, including a list of tags, is
/// a 400: this API issues one tag per customer, so a list is a client bug worth reporting.
pub(crate) struct IfMatch(pub(crate) Option<Version>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if parts.headers.contains_key(header::IF_MATCH) {
                Err(bad_if_match())
            } else {
                Ok(Self(None))
            };
        };
        let text = value.to_str().map_err(|_| bad_if_match())?.trim();
        if text == "*" {
            return Ok(Self(None));
        }
        Version::from_etag(text)
            .map(|v| Self(Some(v)))
            .map_err(|_| bad_if_match())
    }
}

fn bad_if_match() -> ApiError {
    ApiError::BadRequest(
        "If-Match must be one entity tag as sent in ETag, such as \"3\", or *".to_owned(),
    )
}

/// The query of `GET /customers`: a page, or a lookup by email.
pub(crate) enum ListQuery {
    /// `?limit=&cursor=`, both optional.
    Page {
        limit: PageLimit,
        cursor: Option<Cursor>,
    },
    /// `?email=`.
    Email(Email),
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let bad = |detail: &str| ApiError::BadRequest(detail.to_owned());
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|_| bad("the query string is not valid application/x-www-form-urlencoded"))?;
        let (mut limit, mut cursor, mut email) = (None, None, None);
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "limit" => &mut limit,
                "cursor" => &mut cursor,
                "email" => &mut email,
                // The name goes back to the client who sent it, never to a log.
                unknown => {
                    return Err(bad(&format!(
                        "unknown query parameter `{unknown}`; GET /customers takes limit and cursor, or email alone"
                    )));
                }
            };
            if slot.replace(value).is_some() {
                return Err(bad(&format!(
                    "query parameter `{name}` is given more than once"
                )));
            }
        }
        if let Some(email) = email {
            if limit.is_some() || cursor.is_some() {
                return Err(bad(
                    "email cannot be combined with limit or cursor: a lookup by email returns at most one customer",
                ));
            }
            return Email::parse(&email)
                .map(Self::Email)
                .map_err(|e| ValidationErrors::single("email", e.message()).into());
        }
        let limit = limit
            .map(|l| PageLimit::parse(&l))
            .transpose()
            .map_err(|e| bad(&format!("limit {}", e.message())))?
            .unwrap_or_default();
        let cursor = cursor
            .map(|c| Cursor::parse(&c))
            .transpose()
            .map_err(|_| ApiError::Repository(RepositoryError::InvalidCursor))?;
        Ok(Self::Page { limit, cursor })
    }
}

/// The stage prefix the client used (`/prod`), or nothing.
pub(crate) struct Prefix(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Prefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<StagePrefix>()
                .map(|p| p.0.clone())
                .unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        h
    }

    #[test]
    fn json_media_types_are_matched_without_case_or_parameters() {
        let json = ["application/json"];
        assert!(media_type_is(&headers("application/json"), &json));
        assert!(media_type_is(
            &headers("Application/JSON; charset=UTF-8"),
            &json
        ));
        assert!(media_type_is(
            &headers("application/json;charset=\"utf-8\""),
            &json
        ));
        assert!(!media_type_is(
            &headers("application/json; charset=latin1"),
            &json
        ));
        assert!(!media_type_is(&headers("text/plain"), &json));
        assert!(!media_type_is(&headers("application/jsonx"), &json));
        assert!(!media_type_is(&HeaderMap::new(), &json));
    }
}
