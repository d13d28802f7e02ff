//! The one place where errors become HTTP responses.

use actix_web::{http::header, http::StatusCode, HttpResponse, ResponseError};

use crate::envelope::{ApiResponse, ErrorBody, FieldErrorBody};

/// A field that failed validation: which one (a JSON path such as `variables.name`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The state of the limit a request ran into, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// The most requests the limit lets through at once (the bucket's size).
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Until the limit is fully available again.
    pub reset: std::time::Duration,
    /// Until the next request may pass.
    pub retry_after: std::time::Duration,
}

/// Whole seconds, rounded up (a client that waits this long is never early), at least 1.
fn seconds(d: std::time::Duration) -> header::HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1).into()
}

/// Every error an HTTP handler can return. Client errors say what is wrong; unexpected
/// errors are logged with their cause chain and answered with an opaque 500.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// Over a rate limit: 429 with `Retry-After` and the `RateLimit-Limit`,
    /// `RateLimit-Remaining` and `RateLimit-Reset` headers (IETF httpapi draft names).
    #[error("{message}")]
    RateLimited { message: String, quota: RateQuota },
    /// Temporarily unable to take the request (a full queue): 503 with `Retry-After`.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    /// An unexpected error, unless its cause is the database being unreachable (down,
    /// restarting, no connection free within the pool's timeout): that is a `503` the client
    /// may retry (with the same `request_id`), not a `500`.
    fn from(cause: anyhow::Error) -> Self {
        if cause
            .chain()
            .any(|e| e.downcast_ref::<sqlx::Error>().is_some_and(database_unavailable))
        {
            tracing::warn!(error = format!("{cause:#}"), "the database is unavailable");
            return Self::Unavailable("the database is unavailable; try again shortly".into());
        }
        Self::Internal(cause)
    }
}

/// Whether `e` says the database could not be reached or went away, rather than that the
/// query was wrong: no connection (refused, reset, pool timed out or closed), or the server
/// ending the session (SQLSTATE class 08, connection exception; 57P01–57P03, shutting down
/// or not yet accepting connections).
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl ApiError {
    /// Shorthand for a single-field validation error.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, reason)])
    }

    /// Stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests(_) | Self::RateLimited { .. } => "too_many_requests",
            Self::Busy { .. } => "unavailable",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let details = match self {
            Self::Validation(errors) => errors
                .iter()
                .map(|e| FieldErrorBody {
                    field: e.field.clone(),
                    reason: e.reason.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed unexpectedly");
                "internal error; quote the X-Correlation-Id of this response when reporting it".to_string()
            }
            Self::Validation(errors) if errors.len() == 1 => {
                format!("validation failed: {}: {}", errors[0].field, errors[0].reason)
            }
            other => other.to_string(),
        };
        let body = ApiResponse::failure(
            message,
            ErrorBody {
                code: self.code().to_string(),
                details,
            },
        );
        let mut resp = body.respond(self.status_code());
        let headers = resp.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited { quota, .. } => {
                headers.insert(header::RETRY_AFTER, seconds(quota.retry_after));
                headers.insert(header::HeaderName::from_static("ratelimit-limit"), quota.limit.into());
                headers.insert(
                    header::HeaderName::from_static("ratelimit-remaining"),
                    quota.remaining.into(),
                );
                headers.insert(header::HeaderName::from_static("ratelimit-reset"), seconds(quota.reset));
            }
            Self::Busy { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, seconds(*retry_after));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_json(resp: HttpResponse) -> serde_json::Value {
        let bytes = resp.into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn validation_errors_name_each_field_in_the_envelope() {
        let err = ApiError::Validation(vec![
            FieldError::new("user_id", "must be a UUID"),
            FieldError::new("priority", "must be between 1 and 10"),
        ]);
        assert_eq!(err.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        let v = body_json(err.error_response());
        assert_eq!(v["success"], false);
        assert!(v["data"].is_null());
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(v["error"]["details"][0]["field"], "user_id");
        assert_eq!(v["error"]["details"][1]["reason"], "must be between 1 and 10");
    }

    #[test]
    fn an_unreachable_database_is_a_503_the_client_may_retry() {
        let cause = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("failed to store the notification");

        let err = ApiError::from(cause);

        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_json(err.error_response());
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "unavailable");
    }

    #[test]
    fn a_query_error_stays_an_opaque_500() {
        let cause = anyhow::Error::new(sqlx::Error::RowNotFound).context("failed to read");

        let err = ApiError::from(cause);

        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 in connection string"));
        let v = body_json(err.error_response());
        assert_eq!(v["error"]["code"], "internal_error");
        assert!(!v["message"].as_str().unwrap().contains("hunter2"));
    }

    #[test]
    fn rate_limited_answers_429_with_retry_after_and_ratelimit_headers() {
        let err = ApiError::RateLimited {
            message: "too many requests from this caller".into(),
            quota: RateQuota {
                limit: 10,
                remaining: 0,
                reset: std::time::Duration::from_millis(4_200),
                retry_after: std::time::Duration::from_millis(300),
            },
        };
        let resp = err.error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = resp.headers();
        assert_eq!(h.get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(h.get("ratelimit-limit").unwrap(), "10");
        assert_eq!(h.get("ratelimit-remaining").unwrap(), "0");
        assert_eq!(h.get("ratelimit-reset").unwrap(), "5");
        let v = body_json(resp);
        assert_eq!(v["error"]["code"], "too_many_requests");
    }

    #[test]
    fn busy_answers_503_with_retry_after() {
        let resp = ApiError::Busy {
            message: "busy".into(),
            retry_after: std::time::Duration::from_secs(2),
        }
        .error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }

    #[test]
    fn unauthorized_asks_for_a_bearer_token() {
        let resp = ApiError::Unauthorized("missing token".into()).error_response();
        assert_eq!(resp.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
}
