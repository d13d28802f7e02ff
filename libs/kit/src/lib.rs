//! The service kit: what every deployable of the notification platform shares.
//!
//! - [`settings`]: typed configuration read from `APP_*` environment variables.
//! - [`telemetry`]: JSON logs through `tracing`, OTLP trace export.
//! - [`tracecontext`]: W3C `traceparent` across HTTP, the outbox and Kafka.
//! - [`envelope`] and [`error`]: the `{success, data, message, meta}` response envelope and
//!   the one place where errors become HTTP responses.
//! - [`auth`]: JWT verification (and issuing, for user-svc and tests) with scopes.
//! - [`correlation`]: the `X-Correlation-Id` middleware.
//! - [`health`]: dependency reports for `GET /health`.
//! - [`shutdown`]: SIGTERM/SIGINT → a cancellation token.
//! - [`rate_limit`]: token buckets in Redis shared by every instance.
//! - [`validate`] and [`pagination`]: field-by-field body checks and `?page=&limit=`.

pub mod auth;
pub mod correlation;
pub mod envelope;
pub mod error;
pub mod health;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod rate_limit;
pub mod redis_conn;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod tracecontext;
pub mod validate;

pub use envelope::{ApiResponse, PageMeta};
pub use error::{ApiError, FieldError};
