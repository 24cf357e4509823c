//! Turning the parts of a request into domain inputs, each failure an [`ApiError`].
//!
//! The extractors here replace axum's own (`Json`, `Path`, `Query`), whose rejections are plain text:
//! every rejection of this API is a problem document.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use crm_domain::{
    CustomerId, CustomerService, Idempotency, IdempotencyKey, RequestFingerprint, Version,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::Value;

use crate::batch;
use crate::distinct;
use crate::error::ApiError;
use crate::find::{Filters, Find};
use crate::middleware::{BATCH_BODY_LIMIT, BODY_LIMIT, StagePrefix};

/// Reads a body of at most `limit` bytes ([`BODY_LIMIT`] but on the batch route): refused from its
/// `Content-Length` when it announces one, else counted while it streams in, and never buffered
/// past the limit.
async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large),
        Err(_) => Err(ApiError::BadRequest(
            "the request body could not be read to its end".to_owned(),
        )),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    distinct::from_slice(bytes).map_err(ApiError::MalformedJson)
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

/// The body of a request that must be `application/json`, read within `limit` bytes.
async fn json_body(request: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let (parts, body) = request.into_parts();
    if !media_type_is(&parts.headers, &["application/json"]) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    read_limited(&parts.headers, body, limit).await
}

/// The JSON body of `POST /customers`: `Content-Type: application/json`.
pub(crate) struct CreateJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for CreateJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        parse_json(&json_body(request, BODY_LIMIT).await?).map(Self)
    }
}

/// The JSON body of `POST /customers/batch` (`Content-Type: application/json`, at most
/// [`BATCH_BODY_LIMIT`] bytes), read by [`batch::items_of`]: `{"customers": [...]}` with 1 to 100
/// items, each still to be read as a customer.
pub(crate) struct BatchJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for BatchJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        batch::items_of(&json_body(request, BATCH_BODY_LIMIT).await?).map(Self)
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
        let bytes = read_limited(&parts.headers, body, BODY_LIMIT).await?;
        parse_json(&bytes).map(Self)
    }
}

/// The JSON body of a compatibility route. The legacy APIs read their body as JSON whatever its
/// `Content-Type` said (`curl -d` sends `application/x-www-form-urlencoded`), so these routes do too;
/// the size limit still holds.
pub(crate) struct AnyJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for AnyJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = read_limited(&parts.headers, body, BODY_LIMIT).await?;
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
            .map_err(|_| ApiError::MalformedId)?;
        CustomerId::parse(&id)
            .map(Self)
            .map_err(|_| ApiError::MalformedId)
    }
}

/// The `If-Match` header (RFC 9110 §13.1.1), read for a strong comparison with the customer's
/// `ETag` (`"<version>"`):
///
/// - absent, or `*` (any current representation): no expected version;
/// - a list of entity tags (one header or several, comma-separated): it matches when any tag is
///   strongly equal to the current `ETag`. A weak tag (`W/"1"`) never matches in If-Match, nor does
///   a well-formed tag this API never issues (`"0"`, `"01"`, `"x"`), nor an empty list: they are
///   the 412 of a precondition that fails, not a 400;
/// - anything that is not `*` or a list of entity tags (`1`, `"1`, `"1" "2"`, `*, "1"`): 400.
///
/// The repository takes one expected version, checked in the same conditional write; see
/// [`IfMatch::expected_version`] for how a list becomes one.
pub(crate) struct IfMatch(Precondition);

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Precondition {
    /// No header, or `*`.
    Any,
    /// A list of entity tags; these are the versions its strong tags name (the only tags that can
    /// match), without repeats and in the order given.
    OneOf(Vec<Version>),
}

impl IfMatch {
    /// The version to write at: `None` for no precondition; the one version the list names, without
    /// a read; and when the list names none or several, the customer's current version if the list
    /// holds it (read first, then written at that version, so a change in between is still a 412).
    ///
    /// # Errors
    /// 404 when the customer does not exist (as without `If-Match`); 412 when no tag of the list
    /// can match its current version; or the errors of the read.
    pub(crate) async fn expected_version(
        &self,
        service: &CustomerService,
        id: &CustomerId,
    ) -> Result<Option<Version>, ApiError> {
        match &self.0 {
            Precondition::Any => Ok(None),
            Precondition::OneOf(versions) if versions.len() == 1 => Ok(versions.first().copied()),
            Precondition::OneOf(versions) => {
                let current = service.get(id).await?.version();
                if versions.contains(&current) {
                    Ok(Some(current))
                } else {
                    Err(ApiError::IfMatchFailed { current })
                }
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let values: Vec<&[u8]> = parts
            .headers
            .get_all(header::IF_MATCH)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        if values.is_empty() {
            return Ok(Self(Precondition::Any));
        }
        parse_if_match(&values).map(Self).ok_or_else(|| {
            ApiError::BadRequest(
                "If-Match must be * or a comma-separated list of entity tags, such as \"3\" as sent in ETag"
                    .to_owned(),
            )
        })
    }
}

/// Reads the field lines of `If-Match`; `None` when they are not `*` or a list of entity tags.
fn parse_if_match(values: &[&[u8]]) -> Option<Precondition> {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
    if let [value] = values
        && value.iter().filter(|b| !is_ows(b)).eq(b"*")
    {
        return Some(Precondition::Any);
    }
    let mut versions = Vec::new();
    for value in values {
        let mut rest: &[u8] = value;
        // True after a tag, until a comma: two tags need a comma between them.
        let mut after_tag = false;
        loop {
            while rest.first().is_some_and(is_ows) {
                rest = &rest[1..];
            }
            match rest {
                [] => break,
                [b',', tail @ ..] => {
                    rest = tail;
                    after_tag = false;
                }
                _ if after_tag => return None,
                _ => {
                    let (weak, tail) = match rest {
                        [b'W', b'/', tail @ ..] => (true, tail),
                        _ => (false, rest),
                    };
                    let (opaque, tail) = opaque_tag(tail)?;
                    if !weak
                        && let Some(version) = version_of(opaque)
                        && !versions.contains(&version)
                    {
                        versions.push(version);
                    }
                    rest = tail;
                    after_tag = true;
                }
            }
        }
    }
    Some(Precondition::OneOf(versions))
}

/// Splits `"<etagc>*"` off the front of `bytes`: the characters between the quotes, and the rest.
fn opaque_tag(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = bytes.strip_prefix(b"\"")?;
    let end = inner.iter().position(|b| *b == b'"')?;
    let opaque = &inner[..end];
    // etagc = %x21 / %x23-7E / obs-text
    opaque
        .iter()
        .all(|b| *b == 0x21 || (0x23..=0x7e).contains(b) || *b >= 0x80)
        .then(|| (opaque, &inner[end + 1..]))
}

/// The version an opaque tag names when it is exactly what this API sends in `ETag` (a positive
/// decimal without leading zeros): strong comparison is character by character.
fn version_of(opaque: &[u8]) -> Option<Version> {
    let n: u64 = std::str::from_utf8(opaque).ok()?.parse().ok()?;
    let version = Version::try_from(n).ok()?;
    (version.get().to_string().as_bytes() == opaque).then_some(version)
}

/// The query of `GET /customers`, read by [`Filters::from_query`].
pub(crate) struct FindQuery(pub(crate) Find);

impl<S: Send + Sync> FromRequestParts<S> for FindQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Filters::from_query(&parts.uri).map(Self)
    }
}

/// The JSON body of `POST /customers/search` (`Content-Type: application/json`), read by
/// [`Filters::from_json`]: the same filters as [`FindQuery`], out of the URL.
pub(crate) struct SearchJson(pub(crate) Find);

impl<S: Send + Sync> FromRequest<S> for SearchJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Filters::from_json(&json_body(request, BODY_LIMIT).await?).map(Self)
    }
}

/// The `Idempotency-Key` of a write (IETF httpapi draft `draft-ietf-httpapi-idempotency-key-header`),
/// with the parts of the request its fingerprint covers besides the body: the method, the path
/// (percent-decoded, as the router reads it: `/customers/%6Ba` is `/customers/ka`) and
/// `If-Match`. No header: the write runs without a key.
///
/// The key is a Structured Field string (`"8e03978e-…"`) or, as many clients send it, the bare
/// text; either way 1 to 255 visible ASCII characters. Anything else, or two of the header, is a
/// 400 that quotes nothing of it.
pub(crate) struct KeyHeader(Option<KeyedRequest>);

/// A request that carries an idempotency key.
pub(crate) struct KeyedRequest {
    key: IdempotencyKey,
    method: http::Method,
    /// The path, percent-decoded.
    path: Vec<u8>,
    if_match: Vec<u8>,
}

/// The header's name.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl KeyHeader {
    /// The key, with the fingerprint of this request with `body`: the SHA-256 of the method, the
    /// path, `If-Match` and the body's JSON (as parsed, so that whitespace does not count).
    pub(crate) fn with_body(&self, body: Option<&Value>) -> Option<Idempotency> {
        use sha2::{Digest as _, Sha256};
        use std::fmt::Write as _;
        let request = self.0.as_ref()?;
        let mut digest = Sha256::new();
        for part in [
            request.method.as_str().as_bytes(),
            &request.path,
            &request.if_match,
        ] {
            digest.update(part);
            digest.update([0]);
        }
        if let Some(body) = body {
            digest.update(body.to_string().as_bytes());
        }
        let hex = digest
            .finalize()
            .iter()
            .fold(String::new(), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            });
        Some(Idempotency {
            key: request.key.clone(),
            fingerprint: RequestFingerprint::new(hex),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        let invalid = || {
            ApiError::BadRequest(
                "Idempotency-Key must be one string of 1 to 255 visible ASCII characters".into(),
            )
        };
        if values.next().is_some() {
            return Err(invalid());
        }
        let text = value.to_str().map_err(|_| invalid())?;
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        let key = IdempotencyKey::parse(text).map_err(|_| invalid())?;
        let if_match = parts
            .headers
            .get_all(header::IF_MATCH)
            .iter()
            .flat_map(|v| v.as_bytes().iter().copied().chain([b'\n']))
            .collect();
        Ok(Self(Some(KeyedRequest {
            key,
            method: parts.method.clone(),
            path: percent_encoding::percent_decode_str(parts.uri.path()).collect(),
            if_match,
        })))
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

    fn if_match(values: &[&str]) -> Option<Precondition> {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        parse_if_match(&values)
    }

    fn one_of(versions: &[u64]) -> Precondition {
        Precondition::OneOf(
            versions
                .iter()
                .map(|v| Version::try_from(*v).unwrap())
                .collect(),
        )
    }

    #[test]
    fn if_match_star_is_any_version() {
        assert_eq!(if_match(&["*"]), Some(Precondition::Any));
        assert_eq!(if_match(&[" * "]), Some(Precondition::Any));
    }

    #[test]
    fn if_match_lists_name_the_versions_of_their_strong_tags() {
        assert_eq!(if_match(&["\"3\""]), Some(one_of(&[3])));
        assert_eq!(if_match(&["\"1\", \"2\""]), Some(one_of(&[1, 2])));
        assert_eq!(if_match(&["\"1\",\"2\" ,\t\"1\""]), Some(one_of(&[1, 2])));
        assert_eq!(if_match(&["\"1\"", "\"7\""]), Some(one_of(&[1, 7])));
        assert_eq!(if_match(&[", \"4\",,"]), Some(one_of(&[4])));
        // Well-formed tags that can never match: weak ones, and opaque tags this API never sends.
        assert_eq!(if_match(&["W/\"1\", \"2\""]), Some(one_of(&[2])));
        for never in [
            "W/\"1\"",
            "\"0\"",
            "\"01\"",
            "\"+1\"",
            "\"x\"",
            "\"\"",
            "\"1,2\"",
            "\"99999999999999999999\"",
            "",
            " , ",
        ] {
            assert_eq!(if_match(&[never]), Some(one_of(&[])), "{never:?}");
        }
    }

    #[test]
    fn anything_but_star_or_a_list_of_entity_tags_is_malformed() {
        for bad in [
            "1",
            "\"1",
            "1\"",
            "\"1\" \"2\"",
            "\"1\"x",
            "*, \"1\"",
            "**",
            "w/\"1\"",
            "W/ \"1\"",
            "W/1",
            "\"a b\"",
            "\"a\\\"b\"",
        ] {
            assert_eq!(if_match(&[bad]), None, "{bad:?}");
        }
        assert_eq!(if_match(&["*", "\"1\""]), None, "* stands alone");
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

    proptest::proptest! {
        #[test]
        fn no_if_match_header_makes_the_reader_panic(
            values in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 1..4)
        ) {
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let _ = parse_if_match(&values);
        }

        #[test]
        fn a_list_of_etags_names_its_versions(versions in proptest::collection::vec(1..u64::MAX, 1..6)) {
            let header = versions
                .iter()
                .map(|v| crate::customers::etag(Version::try_from(*v).unwrap()))
                .collect::<Vec<_>>()
                .join(", ");
            let mut expected: Vec<u64> = Vec::new();
            for v in &versions {
                if !expected.contains(v) {
                    expected.push(*v);
                }
            }
            proptest::prop_assert_eq!(if_match(&[&header]), Some(one_of(&expected)));
        }
    }
}
