//! HTTP routes of the gateway.

pub mod health;
pub mod notifications;
pub mod openapi;

use notify_kit::health::HealthReport;
use sqlx::PgPool;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub idempotency_ttl: std::time::Duration,
}

/// Used only to name a type for the OpenAPI document.
pub type Health = HealthReport;
