//! Prometheus metrics: one process-wide recorder (installed on first use), rendered by
//! `GET /metrics`. Code records through the `metrics` macros.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once; later calls (several services in one test process) reuse it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// `GET /metrics` in the Prometheus text format.
pub async fn endpoint() -> HttpResponse {
    match install() {
        Some(h) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(h.render()),
        None => HttpResponse::ServiceUnavailable().body("metrics recorder unavailable"),
    }
}
