//! Logging and traces.
//!
//! - Logs: JSON lines through `tracing`, filtered by `RUST_LOG` (default `info`). Each line
//!   carries the service name and the current span's fields (correlation id, notification
//!   id, trace id).
//! - Traces: when `APP_OTLP_ENDPOINT` is set (the collector's OTLP/HTTP base address, e.g.
//!   `http://otel-collector:4318`), spans are exported over OTLP/HTTP (protobuf) to
//!   `<endpoint>/v1/traces` by a batch processor (tuned by the standard `OTEL_BSP_*`
//!   variables). `APP_OTLP_SAMPLE_RATIO` (0..=1, default 1) samples new traces; a trace
//!   that arrives with a `traceparent` follows the caller's decision. See
//!   [`crate::tracecontext`] for how spans are linked across HTTP and Kafka.

use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
    time::Duration,
};

use anyhow::Context as _;
use opentelemetry::{trace::TracerProvider as _, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    trace::{Sampler, SdkTracerProvider},
    Resource,
};
use tracing_subscriber::{fmt, fmt::MakeWriter, prelude::*, EnvFilter, Layer, Registry};

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported over OTLP.
pub(crate) fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

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

/// What becomes a span: the services' own spans (info and above); nothing from the HTTP and
/// database client libraries, nor from the exporter.
const TRACE_FILTER: &str =
    "info,sqlx=off,rdkafka=off,h2=off,hyper=off,hyper_util=off,reqwest=off,tower=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,actix_server=off";

/// Where and how much to trace (`APP_OTLP_ENDPOINT`, `APP_OTLP_SAMPLE_RATIO`).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Full URL of the OTLP/HTTP traces endpoint.
    pub traces_url: String,
    pub sample_ratio: f64,
}

impl TraceSettings {
    /// `None` when `APP_OTLP_ENDPOINT` is unset or empty.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        Self::from_values(
            std::env::var("APP_OTLP_ENDPOINT").ok().as_deref(),
            std::env::var("APP_OTLP_SAMPLE_RATIO").ok().as_deref(),
        )
    }

    fn from_values(endpoint: Option<&str>, ratio: Option<&str>) -> anyhow::Result<Option<Self>> {
        let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            anyhow::bail!("APP_OTLP_ENDPOINT must be an http:// or https:// URL, got {endpoint:?}");
        }
        let base = endpoint.trim_end_matches('/');
        let traces_url = if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        };
        let sample_ratio = match ratio.map(str::trim).filter(|r| !r.is_empty()) {
            None => 1.0,
            Some(r) => {
                let v: f64 = r
                    .parse()
                    .with_context(|| format!("APP_OTLP_SAMPLE_RATIO must be a number in 0..=1, got {r:?}"))?;
                if !(0.0..=1.0).contains(&v) {
                    anyhow::bail!("APP_OTLP_SAMPLE_RATIO must be in 0..=1, got {v}");
                }
                v
            }
        };
        Ok(Some(Self {
            traces_url,
            sample_ratio,
        }))
    }
}

fn tracer_provider(service: &'static str, settings: &TraceSettings) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(settings.traces_url.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the OTLP span exporter")?;
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// Flushes and stops the trace exporter when dropped (at the end of `main`), so the spans
/// of the last moments before a graceful shutdown are not lost.
#[must_use = "keep the guard until the service stops, or the last spans are not exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
            }
        }
    }
}

/// Installs the global subscriber for a service: JSON logs, and OTLP trace export when
/// configured. Safe to call more than once (later calls are ignored), so in-process tests
/// can start several services.
pub fn init_telemetry(service: &'static str) -> Telemetry {
    let _ = SERVICE.set(service);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn,actix_server=warn"));
    let json = std::env::var("APP_LOG_FORMAT").map(|v| v != "pretty").unwrap_or(true);
    // Each layer filters on its own: `RUST_LOG=warn` quiets the logs without emptying the
    // traces, and the exporter's own HTTP client is never traced (it would trace itself).
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_writer(ServiceTagged)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer().with_target(true).with_filter(filter).boxed()
    };
    let (trace_settings, trace_error) = match TraceSettings::from_env() {
        Ok(s) => (s, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let mut provider = None;
    let mut provider_error = None;
    if let Some(settings) = &trace_settings {
        match tracer_provider(service, settings) {
            Ok(p) => provider = Some(p),
            Err(e) => provider_error = Some(format!("{e:#}")),
        }
    }
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let result = Registry::default().with(fmt_layer).with(otel_layer).try_init();
    if result.is_err() {
        // A subscriber exists already (a second service in one test process): keep it.
        if let Some(p) = provider {
            let _ = p.shutdown();
        }
        return Telemetry { provider: None };
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    tracing::info!(
        service,
        version = env!("CARGO_PKG_VERSION"),
        otlp_traces = trace_settings.as_ref().map(|s| s.traces_url.as_str()),
        "telemetry initialised"
    );
    // Bad trace settings do not stop the service; they are reported loudly instead.
    if let Some(e) = trace_error.or(provider_error) {
        tracing::error!(error = %e, "traces are NOT exported");
    }
    Telemetry { provider }
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
    fn trace_settings_from_the_environment_values() {
        assert_eq!(TraceSettings::from_values(None, Some("0.5")).unwrap(), None);
        assert_eq!(TraceSettings::from_values(Some(" "), None).unwrap(), None);
        let s = TraceSettings::from_values(Some("http://collector:4318/"), None)
            .unwrap()
            .unwrap();
        assert_eq!(s.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(s.sample_ratio, 1.0);
        let s = TraceSettings::from_values(Some("https://c/v1/traces"), Some("0.25"))
            .unwrap()
            .unwrap();
        assert_eq!((s.traces_url.as_str(), s.sample_ratio), ("https://c/v1/traces", 0.25));
        assert!(TraceSettings::from_values(Some("collector:4318"), None).is_err());
        assert!(TraceSettings::from_values(Some("http://c"), Some("2")).is_err());
        assert!(TraceSettings::from_values(Some("http://c"), Some("half")).is_err());
    }

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
