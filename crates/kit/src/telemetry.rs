//! Logging: JSON lines through `tracing`, filtered by `RUST_LOG` (default `info`).
//! Each line carries the service name and the current span's fields (correlation id,
//! notification id).

use std::{
    io::{self, Write},
    sync::OnceLock,
};

use tracing_subscriber::{fmt, fmt::MakeWriter, prelude::*, EnvFilter};

static SERVICE: OnceLock<&'static str> = OnceLock::new();

/// The name given to [`init_telemetry`] (`unknown` before), for logs and metrics labels.
pub fn service_name() -> &'static str {
    SERVICE.get().copied().unwrap_or("unknown")
}

/// Writes each JSON log line with `"service":"<name>",` as its first field. The formatter
/// hands one whole event per `write`, so the tag goes after the opening brace of each.
struct ServiceTagged;

struct TaggedStdout;

/// Writes `line` to `out` with the service tag as its first JSON field.
fn write_tagged(service: &str, line: &[u8], out: &mut impl Write) -> io::Result<()> {
    match line.split_first() {
        Some((b'{', rest)) => {
            write!(out, "{{\"service\":\"{service}\",")?;
            out.write_all(rest)
        }
        _ => out.write_all(line),
    }
}

impl Write for TaggedStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_tagged(service_name(), buf, &mut io::stdout().lock())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl<'a> MakeWriter<'a> for ServiceTagged {
    type Writer = TaggedStdout;
    fn make_writer(&'a self) -> Self::Writer {
        TaggedStdout
    }
}

/// Installs the global subscriber for a service. Safe to call more than once (later calls
/// are ignored), so in-process tests can start several services.
pub fn init_telemetry(service: &'static str) {
    let _ = SERVICE.set(service);
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
                    .with_target(true)
                    .with_writer(ServiceTagged),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_line_starts_with_the_service() {
        let mut out = Vec::new();
        write_tagged("gateway", br#"{"level":"INFO","message":"hi"}"#, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["service"], "gateway");
        assert_eq!(v["message"], "hi");
        let mut plain = Vec::new();
        write_tagged("gateway", b"not json", &mut plain).unwrap();
        assert_eq!(plain, b"not json");
    }
}
