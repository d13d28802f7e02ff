//! HTTP routes of the gateway.

pub mod health;
pub mod notifications;
pub mod openapi;
pub mod status;

use notify_kit::health::HealthReport;
use sqlx::PgPool;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub idempotency_ttl: std::time::Duration,
    /// Checks that users and templates exist (see [`crate::domain::references`]).
    pub references: Option<std::sync::Arc<crate::domain::references::References>>,
    /// Wakes the relays after a commit (coalesced `NOTIFY`).
    pub relay_waker: notify_store::outbox::RelayWaker,
}

/// Used only to name a type for the OpenAPI document.
pub type Health = HealthReport;
