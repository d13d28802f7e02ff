//! HTTP routes of the gateway.

pub mod delivery_reports;
pub mod health;
pub mod notifications;
pub mod openapi;
pub mod webhooks;

use actix_web::web;
use notify_kit::health::HealthReport;
use sqlx::PgPool;

/// Registers every route of the gateway, each resource module its own paths (in their
/// canonical form; [`notify_kit::http::trailing_slash`] forgives the other).
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    openapi::configure(cfg);
    notifications::configure(cfg);
    delivery_reports::configure(cfg);
    webhooks::configure(cfg);
    cfg.route("/metrics", web::get().to(notify_kit::metrics::endpoint));
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub idempotency_ttl: std::time::Duration,
    /// Checks that users and templates exist (see [`crate::domain::references`]).
    pub references: Option<std::sync::Arc<crate::domain::references::References>>,
    /// Wakes the relays after a commit (coalesced `NOTIFY`).
    pub relay_waker: notify_store::outbox::RelayWaker,
    /// The provider webhooks' verifiers, replay guard and suppression client.
    pub webhooks: std::sync::Arc<webhooks::Webhooks>,
    /// The API's rate limits (none when disabled).
    pub limits: Option<crate::rate_limits::ApiLimits>,
}

impl AppState {
    /// Takes a token of the caller's bucket: `429` when it is empty.
    pub async fn limit_caller(&self, caller: &notify_kit::auth::Caller) -> Result<(), notify_kit::ApiError> {
        match &self.limits {
            Some(limits) => limits.caller(caller).await,
            None => Ok(()),
        }
    }
}

/// Used only to name a type for the OpenAPI document.
pub type Health = HealthReport;
