//! Logging: JSON lines through `tracing`, filtered by `RUST_LOG` (default `info`).
//! Each line carries the current span's fields (correlation id,
//! notification id) and the span list.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber for a service. Safe to call more than once (later calls
/// are ignored), so in-process tests can start several services.
pub fn init_telemetry(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn,actix_server=warn"));
    let json = std::env::var("APP_LOG_FORMAT").map(|v| v != "pretty").unwrap_or(true);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(true)).try_init()
    };
    if result.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "telemetry initialised");
    }
}

/// For tests: logs to the test writer, ignored if a subscriber exists.
pub fn init_test_telemetry() {
    let _ = tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with(fmt::layer().with_test_writer())
        .try_init();
}
