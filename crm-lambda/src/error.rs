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
use crm_domain::{FieldError, RepositoryError, ValidationErrors};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type`: `urn:problem:crm:<code>`, where `<code>` is
/// [`ApiError::code`].
pub const PROBLEM_TYPE_PREFIX: &str = "urn:problem:crm:";

/// `Retry-After` when the store gave no hint: one second.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Everything that can go wrong with a request. Each variant documents its status.
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
    /// 400: `GET /Customers` would return more customers than its cap.
    #[error(
        "there are more than {cap} customers, more than GET /Customers returns in one response; page through GET /customers?limit=100&cursor=… instead"
    )]
    CompatListTooLong {
        /// The configured cap (`CRM_COMPAT_LIST_CAP`).
        cap: usize,
    },
    /// 403: the `DynamoDBManager` envelope named a table other than the configured one.
    #[error(
        "tableName names a table this API does not serve; omit it or give the configured table"
    )]
    ForbiddenTable,
    /// 404: no route has this path.
    #[error("no resource has this path; see /openapi.json")]
    RouteNotFound,
    /// 405: the path exists but not with this method; the `Allow` header lists the methods.
    #[error("this resource does not support the method; see the Allow header")]
    MethodNotAllowed,
    /// 413: the body is larger than [`BODY_LIMIT`](crate::BODY_LIMIT) bytes.
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
    /// From the service: 404, 409, 412, 422, 400, 503 or 500 by variant; see [`ApiError::status`].
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// 503: the request did not finish within its deadline (`CRM_REQUEST_DEADLINE_MS`).
    #[error("the request did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    /// 500: a handler panicked.
    #[error("a request handler panicked")]
    Panicked,
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors.into_errors())
    }
}

impl ApiError {
    /// The status of this error: the one place statuses of errors are decided.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_)
            | Self::BadRequest(_)
            | Self::CompatListTooLong { .. }
            | Self::Repository(RepositoryError::InvalidCursor) => StatusCode::BAD_REQUEST,
            Self::ForbiddenTable => StatusCode::FORBIDDEN,
            Self::RouteNotFound | Self::Repository(RepositoryError::NotFound) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Repository(RepositoryError::AlreadyExists | RepositoryError::EmailTaken) => {
                StatusCode::CONFLICT
            }
            Self::Repository(RepositoryError::VersionConflict { .. }) => {
                StatusCode::PRECONDITION_FAILED
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::Repository(RepositoryError::InvalidPatch(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Repository(RepositoryError::Unavailable { .. }) | Self::DeadlineExceeded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Panicked | Self::Repository(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, stable name for the kind of error: the last part of the problem `type`, and the
    /// `errorType` of a failed direct Lambda invocation.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed-json",
            Self::BadRequest(_) => "bad-request",
            Self::CompatListTooLong { .. } => "list-too-long",
            Self::ForbiddenTable => "forbidden-table",
            Self::RouteNotFound => "no-such-route",
            Self::Repository(RepositoryError::NotFound) => "customer-not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Repository(RepositoryError::AlreadyExists) => "id-taken",
            Self::Repository(RepositoryError::EmailTaken) => "email-taken",
            Self::Repository(RepositoryError::VersionConflict { .. }) => "version-mismatch",
            Self::PayloadTooLarge { .. } => "body-too-large",
            Self::UnsupportedMediaType { .. } => "unsupported-media-type",
            Self::Validation(_) | Self::Repository(RepositoryError::InvalidPatch(_)) => {
                "validation-failed"
            }
            Self::Repository(RepositoryError::InvalidCursor) => "invalid-cursor",
            Self::Repository(RepositoryError::Unavailable { .. }) => "store-unavailable",
            Self::DeadlineExceeded(_) => "deadline-exceeded",
            Self::Panicked | Self::Repository(_) => "internal-error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "Malformed JSON",
            Self::BadRequest(_) => "Bad request",
            Self::CompatListTooLong { .. } => "Too many customers for one response",
            Self::ForbiddenTable => "Table not allowed",
            Self::RouteNotFound => "Not found",
            Self::Repository(RepositoryError::NotFound) => "Customer not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Repository(RepositoryError::AlreadyExists) => "Id already taken",
            Self::Repository(RepositoryError::EmailTaken) => "Email already taken",
            Self::Repository(RepositoryError::VersionConflict { .. }) => "Version mismatch",
            Self::PayloadTooLarge { .. } => "Request body too large",
            Self::UnsupportedMediaType { .. } => "Unsupported media type",
            Self::Validation(_) | Self::Repository(RepositoryError::InvalidPatch(_)) => {
                "Validation failed"
            }
            Self::Repository(RepositoryError::InvalidCursor) => "Invalid cursor",
            Self::Repository(RepositoryError::Unavailable { .. }) | Self::DeadlineExceeded(_) => {
                "Service unavailable"
            }
            Self::Panicked | Self::Repository(_) => "Internal server error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(_) | Self::Repository(RepositoryError::InvalidPatch(_)) => {
                "one or more fields are invalid; see errors".to_owned()
            }
            Self::Repository(RepositoryError::VersionConflict { current }) => format!(
                "the customer is at version {current} (ETag {}), not at the version in If-Match",
                current.etag()
            ),
            Self::Repository(RepositoryError::InvalidCursor) => {
                "the cursor is not one this API issued; start again without a cursor".to_owned()
            }
            Self::Repository(RepositoryError::Unavailable { .. }) | Self::DeadlineExceeded(_) => {
                "the service is busy or degraded; retry after the time in Retry-After".to_owned()
            }
            Self::Panicked | Self::Repository(RepositoryError::Unexpected(_)) => {
                "the server failed to answer this request; it has been logged".to_owned()
            }
            // Every other variant's message is written for clients and holds no internals.
            other => other.to_string(),
        }
    }

    /// How long a client should wait before retrying, for the 503 errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Repository(RepositoryError::Unavailable { retry_after, .. }) => {
                Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
            }
            Self::DeadlineExceeded(_) => Some(DEFAULT_RETRY_AFTER),
            _ => None,
        }
    }

    /// The RFC 9457 body of this error.
    pub fn problem(&self) -> Problem {
        let errors = match self {
            Self::Validation(errors) => Some(errors.clone()),
            Self::Repository(RepositoryError::InvalidPatch(errors)) => {
                Some(errors.errors().to_vec())
            }
            _ => None,
        };
        Problem {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{}", self.code()),
            title: self.title(),
            status: self.status().as_u16(),
            detail: self.detail(),
            errors,
        }
    }

    /// Logs what a client is not told: the full chain of a 5xx, at error level (503 at warn).
    pub(crate) fn log(&self) {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status = status.as_u16(), code = self.code(), error = %Chain(self), "request not served");
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code = self.code(), error = %Chain(self), "request failed");
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
        if let Some(after) = self.retry_after() {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a retry storm.
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl From<ApiError> for lambda_runtime::Diagnostic {
    /// A failed direct invocation: `errorType` is the [code](ApiError::code), `errorMessage` the
    /// problem's detail, followed by the field errors of a 422.
    fn from(error: ApiError) -> Self {
        // Logged where it happened ([`crate::envelope::invoke_direct`]), inside the request's span.
        let problem = error.problem();
        let message = match &problem.errors {
            Some(errors) => format!("one or more fields are invalid: {}", FieldList(errors)),
            None => problem.detail,
        };
        Self {
            error_type: error.code().to_owned(),
            error_message: message,
        }
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
    fn repository_errors_map_to_the_statuses_of_the_design() {
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
