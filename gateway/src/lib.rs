//! The notification gateway: the platform's HTTP entry point.
//!
//! Request path: `routes/notifications.rs` (auth, parse) → `domain/` (validation into
//! types that are valid by construction) → `notify_store::notifications::accept` (one
//! transaction: notification + outbox row + idempotency record). The relay publishes the
//! outbox; the gateway never talks to Kafka, so a broker outage does not affect it.

pub mod domain;
pub mod rate_limits;
pub mod routes;
pub mod settings;
pub mod startup;
