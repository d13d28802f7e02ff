//! Accepting a notification request: the one path shared by the platform's two kinds of
//! callers, upstream services calling the HTTP API (the gateway) and internal producers
//! publishing to `notifications.requests` (the ingest service).
//!
//! - [`request`]: the request's validation into types valid by construction
//!   ([`NotificationRequest::parse`]), every problem reported with its field;
//! - [`references`]: the user and the template must exist (cached lookups);
//! - [`record`]: a producer's Avro request mapped to that body, so it meets the same rules;
//! - [`accept`]: the notification, its outbox row and its idempotency record
//!   `(caller, request_id)` in one transaction.
//!
//! It lives in a library, not in the gateway, so that the ingest service and the producer
//! library use this code itself rather than a copy (the gateway re-exports it at its old paths).

pub mod accept;
pub mod record;
pub mod references;
pub mod request;
#[cfg(test)]
mod request_props;

pub use accept::{accept, AcceptError, Acceptance, Accepted, Submission};
pub use record::{parse_record, record_of, ValidRecord, PRODUCER_AUDIENCE, SCOPE_PRODUCE};
pub use references::References;
pub use request::{NotificationRequest, Priority, RequestId, SendNotificationBody, TemplateCode, HIGH_PRIORITY_MIN};
