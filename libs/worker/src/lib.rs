//! The worker runtime shared by `email-worker` and `push-worker`.
//!
//! For each record: decode (Avro, registry) → look up the recipient and the template
//! (user-svc, template-svc, cached) → render → check the delivery ledger → send through the
//! [`provider::Provider`] → record in the ledger → publish the outcome to
//! `notifications.status` → and only then commit the offset. Failures are classified once,
//! at the provider boundary: transient ones go to the delay tiers
//! (`notifications.<channel>.retry-30s`, then `.retry-5m`), permanent and poison ones (and
//! exhausted retries) to `notifications.<channel>.dlt`, with headers that say why.
//!
//! - [`app`]: the [`Application`]: wiring, health endpoint, run until stopped.
//! - [`settings`]: configuration (`APP_*`), [`Settings`].
//! - [`consumer`]: the consume loops (main + retry tiers, and the priority topic), pause and
//!   resume of retry partitions until their due time, producing follow-ups and committing
//!   after the outcome is durable.
//! - [`attempt`]: one attempt of one record: span, decode → deliver → decide, logs, metrics.
//! - [`pipeline`]: what happens to one notification (decode → look up → render → deliver →
//!   outcome).
//! - [`decision`]: the pure decision an outcome leads to (retry tier, dead letter, status).
//! - [`routing`]: the headers of retry, dead-letter and status records.
//! - [`devices`]: after a push, devices used and gone devices reported to user-svc in the
//!   background (never failing the notification).
//! - [`ledger`]: the Redis delivery ledger that makes redelivered records harmless.
//! - [`status_events`]: encoding status events (Avro).
//! - [`provider`]: the provider boundary (trait, message, failure classes).
//! - [`metric_series`]: the worker's metrics, described and registered at 0 at start.

pub mod app;
pub mod attempt;
pub mod consumer;
pub mod decision;
pub mod devices;
pub mod ledger;
pub mod metric_series;
pub mod pipeline;
#[cfg(test)]
mod properties;
pub mod provider;
pub mod redact;
pub mod routing;
pub mod settings;
pub mod status_events;

pub use app::Application;
pub use settings::Settings;
