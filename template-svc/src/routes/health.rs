//! `GET /health`: PostgreSQL is hard, Redis (the lookup cache) soft.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use notify_kit::health::{check, HealthReport};

use super::AppState;

/// Registers `GET /health` and `GET /health/live`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health)
        .route("/health/live", actix_web::web::get().to(notify_kit::health::live));
}

/// Readiness with the state of each dependency.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Ready (Redis may be down: it is only a cache)"),
        (status = 503, description = "PostgreSQL unreachable")
    )
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let postgres = check("postgres", true, Duration::from_secs(2), async {
        sqlx::query("SELECT 1").execute(&state.pool).await.map(|_| ())
    })
    .await;
    let redis = check("redis", false, Duration::from_secs(1), state.cache.ping()).await;
    HealthReport::new("template-svc", env!("CARGO_PKG_VERSION"), vec![postgres, redis]).into_response()
}
