//! Kafka header names used across the platform (part of the contract).

/// UUID of the notification a record is about.
pub const NOTIFICATION_ID: &str = "notification-id";
/// Correlation id (same value as the HTTP `X-Correlation-Id`).
pub const CORRELATION_ID: &str = "x-correlation-id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Subject of the Avro contract the value is written with.
pub const EVENT_TYPE: &str = "event-type";
/// Id of the outbox row a record was published from (relay's own dedupe and diagnostics).
pub const OUTBOX_ID: &str = "outbox-id";
