//! HTTP routes of user-svc.

pub mod auth;
pub mod health;
pub mod openapi;
pub mod users;

use notify_kit::auth::JwtIssuer;
use notify_lookup::Cache;
use sqlx::PgPool;

use crate::password::Passwords;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub passwords: Passwords,
    pub issuer: JwtIssuer,
    pub user_token_ttl: std::time::Duration,
    pub open_registration: bool,
    pub cache: Cache,
}

impl AppState {
    /// Drops the lookup cache entry of `user_id` after a committed change. A failure is
    /// logged, not returned: the change is done, and the entry expires within its TTL.
    pub async fn invalidate(&self, user_id: uuid::Uuid) {
        if let Err(e) = self.cache.invalidate_user(user_id).await {
            tracing::warn!(%user_id, error = %e, "cache invalidation failed; the entry expires with its TTL");
        }
    }
}
