//! Prometheus metrics: one process-wide recorder (installed on first use), rendered by
//! `GET /metrics`. Code records through the `metrics` macros.
//!
//! Shared series every service reports the same way: `db_pool_connections{service,state}`
//! ([`report_db_pool`]) and `redis_errors_total{service}` ([`register_redis_errors`],
//! [`redis_error`]).

use std::{sync::OnceLock, time::Duration};

use actix_web::HttpResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets (seconds) for every histogram: from 1 ms to 5 min, so the same
/// buckets serve HTTP latency, batch durations and end-to-end delivery latency.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once; later calls (several services in one test process) reuse it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            match PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| b.install_recorder())
            {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often [`report_db_pool`] reads a pool.
const POOL_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Keeps `db_pool_connections{service, state}` (`state`: `in_use`, `idle`) up to date for the
/// service's PostgreSQL pool: read at once, then every 5 s on the current Tokio runtime, until
/// `read` returns `None` (the pool was closed). `read` gives the pool's open and idle
/// connections (`(pool.size(), pool.num_idle())` with sqlx: the kit needs no database driver).
pub fn report_db_pool<F>(read: F)
where
    F: Fn() -> Option<(u32, usize)> + Send + 'static,
{
    install();
    metrics::describe_gauge!(
        "db_pool_connections",
        "Connections of the service's PostgreSQL pool, by state (in_use, idle)."
    );
    let service = crate::telemetry::service_name();
    let in_use = metrics::gauge!("db_pool_connections", "service" => service, "state" => "in_use");
    let idle = metrics::gauge!("db_pool_connections", "service" => service, "state" => "idle");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POOL_REPORT_INTERVAL);
        loop {
            tick.tick().await;
            let Some((open, idle_now)) = read() else {
                return;
            };
            let idle_now = idle_now as f64;
            in_use.set((f64::from(open) - idle_now).max(0.0));
            idle.set(idle_now);
        }
    });
}

/// Registers `redis_errors_total{service}` at 0, so the series exists before the first error
/// (an `increase()` over a series that appears at 1 reads 0). Call where a Redis client is made.
pub fn register_redis_errors() {
    install();
    metrics::describe_counter!(
        "redis_errors_total",
        "Failed Redis operations (connection, command, timeout): caches and the delivery ledger."
    );
    redis_errors().increment(0);
}

/// Counts one failed Redis operation in `redis_errors_total{service}`.
pub fn redis_error() {
    redis_errors().increment(1);
}

fn redis_errors() -> metrics::Counter {
    install();
    metrics::counter!("redis_errors_total", "service" => crate::telemetry::service_name())
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
