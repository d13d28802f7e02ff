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
            Self::TooManyRequests(_) => "too_many_requests",
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
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
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
        if matches!(self, Self::Unauthorized(_)) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
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
    fn unauthorized_asks_for_a_bearer_token() {
        let resp = ApiError::Unauthorized("missing token".into()).error_response();
        assert_eq!(resp.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
}
