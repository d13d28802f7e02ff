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
//! - [`settings`]: configuration (`APP_*`).
//! - [`pipeline`]: what happens to one notification (decode → deliver → outcome).
//! - [`consumer`]: the consume loops (main + retry tiers, and the priority topic), pause and
//!   resume of retry partitions until their due time, commit after the outcome is durable.
//! - [`routing`]: retry/DLT records and their headers.
//! - [`ledger`]: the Redis delivery ledger that makes redelivered records harmless.
//! - [`metric_series`]: the worker's metrics, described and registered at 0 at start.
//! - [`status`]: status events.

pub mod app;
pub mod consumer;
pub mod ledger;
pub mod metric_series;
pub mod pipeline;
pub mod provider;
pub mod routing;
pub mod settings;
pub mod status;
