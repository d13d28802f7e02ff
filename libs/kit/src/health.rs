//! `GET /health` reports: the state of each dependency, and whether the service is ready.
//! Readiness (503) fails only on *hard* dependencies; soft ones are reported but tolerated.
//! `GET /health/live` ([`live`]) checks no dependency: the process answers, so it is alive.

use actix_web::{http::StatusCode, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::envelope::ApiResponse;

/// One dependency's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DependencyHealth {
    pub name: String,
    pub healthy: bool,
    /// Whether the service is unready without it.
    pub hard: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthReport {
    pub service: String,
    pub version: String,
    pub ready: bool,
    pub dependencies: Vec<DependencyHealth>,
}

impl HealthReport {
    pub fn new(service: &str, version: &str, dependencies: Vec<DependencyHealth>) -> Self {
        let ready = dependencies.iter().all(|d| d.healthy || !d.hard);
        Self {
            service: service.to_string(),
            version: version.to_string(),
            ready,
            dependencies,
        }
    }

    /// 200 when ready, 503 otherwise, in the envelope.
    pub fn into_response(self) -> HttpResponse {
        let (status, message) = if self.ready {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: a hard dependency is down")
        };
        let mut body = ApiResponse::ok(self, message);
        body.success = status.is_success();
        body.respond(status)
    }
}

/// Liveness: 200 whenever the process serves HTTP. It checks no dependency, so an
/// orchestrator restarts a wedged process, never one whose database or broker is down (that is
/// readiness, `GET /health`).
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(ApiResponse::ok("alive", "alive"))
}

/// Runs a check with a timeout and times it.
pub async fn check<F, E>(name: &str, hard: bool, timeout: std::time::Duration, fut: F) -> DependencyHealth
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(timeout, fut).await;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
    };
    DependencyHealth {
        name: name.to_string(),
        healthy: error.is_none(),
        hard,
        error,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(hard: bool, healthy: bool) -> DependencyHealth {
        DependencyHealth {
            name: "x".into(),
            healthy,
            hard,
            error: None,
            latency_ms: 0,
        }
    }

    #[test]
    fn only_hard_dependencies_decide_readiness() {
        assert!(HealthReport::new("s", "1", vec![dep(true, true), dep(false, false)]).ready);
        assert!(!HealthReport::new("s", "1", vec![dep(true, false), dep(false, true)]).ready);
    }
}
