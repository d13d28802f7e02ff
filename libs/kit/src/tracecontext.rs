//! W3C trace context (`traceparent`) across HTTP, the outbox and Kafka headers.
//!
//! Each hop opens a span, makes it the child of the `traceparent` it received
//! ([`adopt`]) and hands on its own. When no OTLP endpoint is configured no span is
//! exported and a hop hands on the `traceparent` it received unchanged, so the trace id in
//! the logs stays the same from the HTTP request to the provider call either way.

use std::{collections::HashMap, fmt::Write as _};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (HTTP and Kafka) that carries the trace context.
pub const HEADER: &str = "traceparent";

/// A well-formed `traceparent` (version 00), lower-cased: `00-<32 hex>-<16 hex>-<2 hex>`
/// with neither id all zeros. Anything else is refused.
pub fn parse(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let parts: Vec<&str> = raw.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let ok = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2);
    ok.then(|| raw.to_ascii_lowercase())
}

/// The trace id (32 hex) of a well-formed `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1).filter(|id| id.len() == 32)
}

/// A new root context (sampled), for requests that arrive without one while spans are not
/// exported.
pub fn new_root() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace}-{}-01", &span[..16])
}

/// Whether spans are exported (an OTLP endpoint is configured and the exporter started).
pub fn exporting() -> bool {
    crate::telemetry::exporting()
}

/// Makes `span` the child of the remote span `inbound` names (when spans are exported and
/// `inbound` is well-formed), records the trace id in the span's `trace_id` field and, when
/// exported, its own id in `span_id` (when it declares them; the JSON log lines show them)
/// and returns the `traceparent` to hand on: the span's own when exported,
/// otherwise `inbound`.
pub fn adopt(span: &Span, inbound: Option<&str>) -> Option<String> {
    let inbound = inbound.and_then(parse);
    let mut handed_on = inbound.clone();
    if exporting() {
        if let Some(tp) = &inbound {
            let carrier = HashMap::from([(HEADER.to_string(), tp.clone())]);
            let parent = TraceContextPropagator::new().extract(&carrier);
            if parent.span().span_context().is_valid() {
                let _ = span.set_parent(parent);
            }
        }
        if let Some(own) = of(span) {
            handed_on = Some(own);
        }
    }
    if let Some(tp) = handed_on.as_deref() {
        if let Some(id) = trace_id(tp) {
            span.record("trace_id", id);
        }
        // The span's own id exists only when spans are exported (then `handed_on` is its own).
        if exporting() {
            if let Some(id) = tp.split('-').nth(2) {
                span.record("span_id", id);
            }
        }
    }
    handed_on
}

/// The `traceparent` of `span` itself, when spans are exported.
pub fn of(span: &Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() || sc.trace_id() == TraceId::INVALID {
        return None;
    }
    let mut out = String::with_capacity(55);
    let _ = write!(
        out,
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_version_00_contexts_are_accepted() {
        let good = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
        assert_eq!(
            parse(good).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(
            trace_id(&parse(good).unwrap()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_new_root_is_well_formed_and_new_each_time() {
        let a = new_root();
        assert_eq!(parse(&a).as_deref(), Some(a.as_str()));
        assert_ne!(trace_id(&a), trace_id(&new_root()));
    }

    /// Collects every `trace_id` recorded on a span after its creation.
    #[derive(Clone, Default)]
    struct Recorded(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorded {
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Visit<'a>(&'a std::sync::Mutex<Vec<String>>);
            impl tracing::field::Visit for Visit<'_> {
                fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                    if field.name() == "trace_id" {
                        self.0.lock().unwrap().push(value.to_string());
                    }
                }
                fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
            }
            values.record(&mut Visit(&self.0));
        }
    }

    #[test]
    fn the_trace_id_goes_into_the_spans_log_fields() {
        use tracing_subscriber::prelude::*;
        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry().with(recorded.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("hop", trace_id = tracing::field::Empty);
            adopt(&span, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
            let no_context = tracing::info_span!("other", trace_id = tracing::field::Empty);
            adopt(&no_context, Some("not a traceparent"));
        });
        assert_eq!(
            *recorded.0.lock().unwrap(),
            vec!["4bf92f3577b34da6a3ce929d0e0e4736".to_string()]
        );
    }

    #[test]
    fn without_an_exporter_the_inbound_context_is_handed_on_unchanged() {
        let span = tracing::info_span!("hop", trace_id = tracing::field::Empty);
        let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(adopt(&span, Some(inbound)).as_deref(), Some(inbound));
        assert_eq!(adopt(&span, Some("garbage")), None);
        assert_eq!(adopt(&span, None), None);
    }
}
