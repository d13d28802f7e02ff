//! HTTP routes of template-svc.

pub mod health;
pub mod openapi;
pub mod templates;

use actix_web::web;
use notify_lookup::Cache;
use notify_templates::TemplateCode;
use sqlx::PgPool;

/// Registers every route of template-svc, each resource module its own paths (in their
/// canonical form; [`notify_kit::http::trailing_slash`] forgives the other).
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    openapi::configure(cfg);
    templates::configure(cfg);
    cfg.route("/metrics", web::get().to(notify_kit::metrics::endpoint));
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub cache: Cache,
}

impl AppState {
    /// Drops the lookup cache entries of `code` (every language) after a committed
    /// change. A failure is logged, not returned: the change is done, and the entries
    /// expire within their TTL.
    pub async fn invalidate(&self, code: &TemplateCode) {
        if let Err(e) = self.cache.invalidate_template(code).await {
            tracing::warn!(template_code = %code, error = %e, "cache invalidation failed; entries expire with their TTL");
        }
    }
}
