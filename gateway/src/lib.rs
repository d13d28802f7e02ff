//! The notification gateway: the platform's HTTP entry point.
//!
//! Request path: `routes/notifications.rs` (auth, parse) → `domain/` (validation into
//! types that are valid by construction) → `notify_store::notifications::accept` (one
//! transaction: notification + outbox row + idempotency record). The relay publishes the
//! outbox; the gateway never talks to Kafka, so a broker outage does not affect it.
//!
//! Status changes from outside the pipeline (`routes/delivery_reports.rs`, and the provider
//! webhooks of `routes/webhooks.rs` verified and parsed by `domain/webhooks/`) are written
//! to the outbox as status events by one function, [`outbox::enqueue_status_change`].

pub mod domain;
pub mod outbox;
pub mod rate_limits;
pub mod routes;
pub mod settings;
pub mod startup;
