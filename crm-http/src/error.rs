//! The one error type of the HTTP edge, and the one place that turns errors into statuses.
//!
//! Every failure of a request, whether in parsing, in the domain, in storage or in the layers around
//! the handlers, becomes an [`ApiError`]; [`ApiError::status`] decides its status and
//! [`ApiError::problem`] its `application/problem+json` body (RFC 9457). A 5xx body says nothing of
//! internals: the full error chain goes to the log, at error level, and only there. No text in here
//! holds customer data: the domain's error messages never repeat a rejected value, and the JSON
//! syntax errors quoted are positions, not content.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use crm_domain::{FieldError, RepositoryError, ValidationErrors, Version};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type`: `urn:problem:crm:<code>`, where `<code>` is
/// [`ApiError::code`].
pub const PROBLEM_TYPE_PREFIX: &str = "urn:problem:crm:";

/// `Retry-After` when the store gave no hint: one second.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a client should wait before sending again a request whose key another request holds.
const KEY_IN_USE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Everything that can go wrong with a request. Each variant documents its status; [`ApiError::status`],
/// [`ApiError::code`] and [`ApiError::problem`] all read them from one match
/// (`ApiError::describe`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body could not be parsed as JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(#[source] serde_json::Error),
    /// 400: a query parameter, header or envelope member is not as documented; the text says which
    /// and what is accepted.
    #[error("{0}")]
    BadRequest(String),
    /// 400: a cursor that is not even shaped like one this API issues (the store judges the rest:
    /// [`RepositoryError::InvalidCursor`], also a 400 `invalid-cursor`, whose detail adds that a
    /// cursor is bound to the sort and filters of the listing that issued it).
    #[error("the cursor is not one this API issued; start again without a cursor")]
    MalformedCursor,
    /// 400: `GET /Customers` would return more customers than its cap.
    #[error(
        "there are more than {cap} customers, more than GET /Customers returns in one response; page through GET /customers?limit=100&cursor=… instead"
    )]
    CompatListTooLong {
        /// The configured cap (`CRM_COMPAT_LIST_CAP`).
        cap: usize,
    },
    /// 400: `GET /Customers` would answer a body too large for a Lambda response, whatever the cap.
    #[error(
        "the customers make a response larger than {budget} bytes, more than GET /Customers returns in one response; page through GET /customers?limit=100&cursor=… instead"
    )]
    CompatListTooLarge {
        /// The largest body, in bytes.
        budget: usize,
    },
    /// 403: the `DynamoDBManager` envelope named a table other than the configured one.
    #[error(
        "tableName names a table this API does not serve; omit it or give the configured table"
    )]
    ForbiddenTable,
    /// 404: no route has this path.
    #[error("no resource has this path; see /openapi.json")]
    RouteNotFound,
    /// 404: the id in the path or the `Key` is not well-formed, so it names no customer.
    #[error("no customer has this id")]
    MalformedId,
    /// 405: the path exists but not with this method; the `Allow` header lists the methods.
    #[error("this resource does not support the method; see the Allow header")]
    MethodNotAllowed,
    /// 412: `If-Match` lists entity tags, none of which is the customer's current one.
    #[error("no entity tag of If-Match is the customer's current one")]
    IfMatchFailed {
        /// The version the customer is at.
        current: Version,
    },
    /// 413: the body is larger than the route's limit: [`BODY_LIMIT`](crate::BODY_LIMIT) bytes,
    /// or [`BATCH_BODY_LIMIT`](crate::BATCH_BODY_LIMIT) for `POST /customers/batch`.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: the `Content-Type` is missing or not one this operation reads.
    #[error("the Content-Type must be {expected}")]
    UnsupportedMediaType {
        /// The media types accepted, in words.
        expected: &'static str,
    },
    /// 422: the input is well-formed JSON but not a valid customer or patch; every field at once
    /// (never empty).
    #[error("the request is not valid: {}", FieldList(.0))]
    Validation(Vec<FieldError>),
    /// From the service: each [`RepositoryError`] variant has its own status (404, 409, 412, 422,
    /// 400, 503; 500 for `Unexpected` only); see `ApiError::describe`.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// 503: the request did not finish within its deadline (`CRM_REQUEST_DEADLINE_MS`, or less when
    /// the platform's own deadline comes sooner).
    #[error("the request did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    /// 500: a response could not be serialized.
    #[error("a response could not be serialized")]
    Serialization(#[source] serde_json::Error),
    /// 500: a handler panicked.
    #[error("a request handler panicked")]
    Panicked,
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors.into_errors())
    }
}

/// What a client is told of an error, but for its `errors` list.
struct Description {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: Detail,
}

/// Where the `detail` of a problem comes from.
enum Detail {
    /// The error's own message, written for clients.
    Message,
    /// A fixed text, for errors whose message is not for clients (5xx) or says less.
    Text(&'static str),
    /// The current version, for the 412s.
    CurrentVersion(Version),
}

const fn describe(
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: Detail,
) -> Description {
    Description {
        status,
        code,
        title,
        detail,
    }
}

const INVALID_FIELDS: &str = "one or more fields are invalid; see errors";
const UNAVAILABLE: &str = "the service is busy or degraded; retry after the time in Retry-After";
const INTERNAL: &str = "the server failed to answer this request; it has been logged";
const MALFORMED_CURSOR: &str =
    "the cursor is not one this API issued; start again without a cursor";
const INVALID_CURSOR: &str = "the cursor belongs to another listing (another sort or filter), or is not one this API issued: send a nextCursor with the same sort and filters as the request that returned it, or start again without a cursor";

impl ApiError {
    /// The one place that decides what a client is told of each error: status, code, title and
    /// detail.
    ///
    /// [`RepositoryError`] is `#[non_exhaustive]`, so its match needs a catch-all; a test
    /// (`every_repository_error_has_its_own_answer`) runs every variant through here, so a new one
    /// cannot silently become a 500.
    #[rustfmt::skip]
    fn describe(&self) -> Description {
        use {Detail::{CurrentVersion, Message, Text}, StatusCode as S};
        match self {
            Self::MalformedJson(_) => describe(S::BAD_REQUEST, "malformed-json", "Malformed JSON", Message),
            Self::BadRequest(_) => describe(S::BAD_REQUEST, "bad-request", "Bad request", Message),
            Self::MalformedCursor => describe(S::BAD_REQUEST, "invalid-cursor", "Invalid cursor", Text(MALFORMED_CURSOR)),
            Self::CompatListTooLong { .. } | Self::CompatListTooLarge { .. } => describe(S::BAD_REQUEST, "list-too-long", "Too many customers for one response", Message),
            Self::ForbiddenTable => describe(S::FORBIDDEN, "forbidden-table", "Table not allowed", Message),
            Self::RouteNotFound => describe(S::NOT_FOUND, "no-such-route", "Not found", Message),
            Self::MalformedId => describe(S::NOT_FOUND, "customer-not-found", "Customer not found", Message),
            Self::MethodNotAllowed => describe(S::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", Message),
            Self::IfMatchFailed { current } => describe(S::PRECONDITION_FAILED, "version-mismatch", "Version mismatch", CurrentVersion(*current)),
            Self::PayloadTooLarge { .. } => describe(S::PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large", Message),
            Self::UnsupportedMediaType { .. } => describe(S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type", Message),
            Self::Validation(_) => describe(S::UNPROCESSABLE_ENTITY, "validation-failed", "Validation failed", Text(INVALID_FIELDS)),
            Self::DeadlineExceeded(_) => describe(S::SERVICE_UNAVAILABLE, "deadline-exceeded", "Service unavailable", Text(UNAVAILABLE)),
            Self::Serialization(_) | Self::Panicked => describe(S::INTERNAL_SERVER_ERROR, "internal-error", "Internal server error", Text(INTERNAL)),
            Self::Repository(error) => match error {
                RepositoryError::NotFound => describe(S::NOT_FOUND, "customer-not-found", "Customer not found", Message),
                RepositoryError::AlreadyExists => describe(S::CONFLICT, "id-taken", "Id already taken", Message),
                RepositoryError::EmailTaken => describe(S::CONFLICT, "email-taken", "Email already taken", Message),
                RepositoryError::VersionConflict { current } => describe(S::PRECONDITION_FAILED, "version-mismatch", "Version mismatch", CurrentVersion(*current)),
                RepositoryError::InvalidPatch(_) => describe(S::UNPROCESSABLE_ENTITY, "validation-failed", "Validation failed", Text(INVALID_FIELDS)),
                RepositoryError::InvalidCursor => describe(S::BAD_REQUEST, "invalid-cursor", "Invalid cursor", Text(INVALID_CURSOR)),
                RepositoryError::KeyInUse => describe(S::CONFLICT, "idempotency-key-in-use", "Idempotency key in use", Message),
                RepositoryError::KeyReused => describe(S::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency key reused", Message),
                RepositoryError::Unavailable { .. } => describe(S::SERVICE_UNAVAILABLE, "store-unavailable", "Service unavailable", Text(UNAVAILABLE)),
                // `Unexpected`, and any variant added to the domain after this match was written.
                _ => describe(S::INTERNAL_SERVER_ERROR, "internal-error", "Internal server error", Text(INTERNAL)),
            },
        }
    }

    /// The status of this error.
    pub fn status(&self) -> StatusCode {
        self.describe().status
    }

    /// A short, stable name for the kind of error: the last part of the problem `type`, and the
    /// `errorType` of a failed direct Lambda invocation.
    pub fn code(&self) -> &'static str {
        self.describe().code
    }

    /// How long a client should wait before retrying, for the 503 errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Repository(RepositoryError::Unavailable { retry_after, .. }) => {
                Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
            }
            Self::DeadlineExceeded(_) => Some(DEFAULT_RETRY_AFTER),
            // The first request with the key is bounded by its deadline; its outcome is there then.
            Self::Repository(RepositoryError::KeyInUse) => Some(KEY_IN_USE_RETRY_AFTER),
            _ => None,
        }
    }

    /// [`retry_after`](Self::retry_after) as `Retry-After` says it: whole seconds, rounded up,
    /// at least 1 (`Retry-After: 0` would invite a retry storm).
    pub(crate) fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after().map(|after| {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            seconds.max(1)
        })
    }

    /// The RFC 9457 body of this error.
    pub fn problem(&self) -> Problem {
        let Description {
            status,
            code,
            title,
            detail,
        } = self.describe();
        let detail = match detail {
            Detail::Message => self.to_string(),
            Detail::Text(text) => text.to_owned(),
            Detail::CurrentVersion(current) => format!(
                "the customer is at version {current} (ETag {}), not at the version in If-Match",
                crate::customers::etag(current)
            ),
        };
        let errors = match self {
            Self::Validation(errors) => Some(errors.clone()),
            Self::Repository(RepositoryError::InvalidPatch(errors)) => {
                Some(errors.errors().to_vec())
            }
            _ => None,
        };
        Problem {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
        }
    }

    /// Logs what a client is not told: the full chain of a 5xx, at error level (503 at warn). Not
    /// for a panic: its one line, with its location, is the panic hook's
    /// ([`install_panic_hook`](crate::telemetry::install_panic_hook), which every binary installs).
    pub(crate) fn log(&self) {
        let Description { status, code, .. } = self.describe();
        if matches!(self, Self::Panicked) {
            return;
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status = status.as_u16(), code, error = %Chain(self), "request not served");
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, error = %Chain(self), "request failed");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let problem = self.problem();
        let mut response = (self.status(), Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_seconds() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `urn:problem:crm:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened to this request, in words a client can act on.
    pub detail: String,
    /// For 422: every failing field, as `{"field", "message"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    /// The problem in one line: its detail, or for a 422 every failing field
    /// (`one or more fields are invalid: firstName: is required; email: …`). Used where a client
    /// gets a message rather than a document (a failed direct Lambda invocation).
    pub fn summary(&self) -> String {
        match &self.errors {
            Some(errors) => format!("one or more fields are invalid: {}", FieldList(errors)),
            None => self.detail.clone(),
        }
    }
}

/// Displays field errors as `field: message; field: message`.
struct FieldList<'a>(&'a [FieldError]);

impl fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Displays an error and all its sources, `: `-separated, for the log.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crm_domain::{RepositoryError, Version};

    use super::*;

    #[test]
    fn repository_errors_map_to_their_documented_statuses() {
        let cases = [
            (RepositoryError::NotFound, 404),
            (RepositoryError::AlreadyExists, 409),
            (RepositoryError::EmailTaken, 409),
            (
                RepositoryError::VersionConflict {
                    current: Version::FIRST,
                },
                412,
            ),
            (
                RepositoryError::InvalidPatch(ValidationErrors::single("address.line1", "x")),
                422,
            ),
            (RepositoryError::InvalidCursor, 400),
            (RepositoryError::unavailable("throttled"), 503),
            (RepositoryError::unexpected("boom"), 500),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status().as_u16(), status);
        }
    }

    #[test]
    fn every_repository_error_has_its_own_answer() {
        let mut codes = std::collections::HashSet::new();
        for error in crm_domain::testkit::every_repository_error() {
            let unexpected = matches!(error, RepositoryError::Unexpected(_));
            let name = format!("{error:?}");
            let error = ApiError::from(error);
            assert_eq!(
                error.status().is_server_error() && error.status() != 503,
                unexpected,
                "{name} is answered {} ({})",
                error.status(),
                error.code()
            );
            codes.insert(error.code());
        }
        assert_eq!(
            codes.len(),
            crm_domain::testkit::every_repository_error().len(),
            "two variants share a code: {codes:?}"
        );
    }

    #[test]
    fn edge_errors_answer_like_the_store_errors_they_stand_for() {
        let pairs = [
            (
                ApiError::MalformedId,
                ApiError::from(RepositoryError::NotFound),
            ),
            (
                ApiError::IfMatchFailed {
                    current: Version::FIRST,
                },
                ApiError::from(RepositoryError::VersionConflict {
                    current: Version::FIRST,
                }),
            ),
        ];
        for (edge, store) in pairs {
            assert_eq!(edge.problem(), store.problem());
        }
        // A cursor of the wrong shape and one the store refuses are the same kind of problem; the
        // store's says more, since it may be a cursor of another listing.
        let (edge, store) = (
            ApiError::MalformedCursor.problem(),
            ApiError::from(RepositoryError::InvalidCursor).problem(),
        );
        assert_eq!(
            (edge.problem_type, edge.title, edge.status),
            (store.problem_type, store.title, store.status)
        );
        assert!(
            store.detail.contains("same sort and filters"),
            "{}",
            store.detail
        );
    }

    #[test]
    fn a_422_summary_lists_every_field() {
        let problem = ApiError::Validation(vec![
            FieldError::new("firstName", "is required"),
            FieldError::new("email", "is not an email address"),
        ])
        .problem();
        assert_eq!(
            problem.summary(),
            "one or more fields are invalid: firstName: is required; email: is not an email address"
        );
        assert_eq!(
            ApiError::ForbiddenTable.problem().summary(),
            ApiError::ForbiddenTable.to_string()
        );
    }

    #[test]
    fn a_500_problem_says_nothing_of_its_cause() {
        let problem =
            ApiError::from(RepositoryError::unexpected("table crm-secret is on fire")).problem();
        let body = serde_json::to_string(&problem).unwrap();
        assert!(
            !body.contains("fire") && !body.contains("crm-secret"),
            "{body}"
        );
        assert_eq!(problem.problem_type, "urn:problem:crm:internal-error");
    }

    #[test]
    fn unavailability_asks_for_a_retry_in_whole_seconds() {
        let error = ApiError::from(RepositoryError::Unavailable {
            retry_after: Some(Duration::from_millis(1500)),
            source: "throttled".into(),
        });
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn the_chain_shows_every_source() {
        let error = ApiError::from(RepositoryError::unexpected("disk"));
        assert_eq!(
            Chain(&error).to_string(),
            "unexpected customer store error: disk"
        );
    }
}
