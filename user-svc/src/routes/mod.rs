//! HTTP routes of user-svc.

pub mod auth;
pub mod delivery;
pub mod devices;
pub mod health;
pub mod openapi;
pub mod suppressions;
pub mod unsubscribe;
pub mod users;

use actix_web::web;
use notify_kit::auth::JwtIssuer;
use notify_lookup::Cache;
use notify_schemas::ids::UserId;
use sqlx::PgPool;

use crate::{password::Passwords, unsubscribe::UnsubscribeLinks};

/// Registers every route of user-svc, each resource module its own paths (in their
/// canonical form; [`notify_kit::http::trailing_slash`] forgives the other).
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    openapi::configure(cfg);
    auth::configure(cfg);
    users::configure(cfg);
    suppressions::configure(cfg);
    unsubscribe::configure(cfg);
    devices::configure(cfg);
    cfg.route("/metrics", web::get().to(notify_kit::metrics::endpoint));
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub passwords: Passwords,
    pub issuer: JwtIssuer,
    pub user_token_ttl: std::time::Duration,
    pub open_registration: bool,
    pub cache: Cache,
    /// Mints and verifies the one-click unsubscribe links.
    pub links: UnsubscribeLinks,
    /// The provider of a device whose registration names none, per platform.
    pub device_defaults: crate::domain::DeviceDefaults,
    /// Login lockouts and the bounded hashing queue.
    pub login_guard: crate::login_guard::LoginGuard,
}

impl AppState {
    /// Drops the lookup cache entry of `user_id` after a committed change. A failure is
    /// logged, not returned: the change is done, and the entry expires within its TTL.
    pub async fn invalidate(&self, user_id: UserId) {
        if let Err(e) = self.cache.invalidate_user(user_id.as_uuid()).await {
            tracing::warn!(%user_id, error = %e, "cache invalidation failed; the entry expires with its TTL");
        }
    }
}
