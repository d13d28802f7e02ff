//! Correlation ids: taken from `X-Correlation-Id` when the caller sends a well-formed one,
//! made otherwise, put in the request's extensions and tracing span, and returned in the
//! response header. The same middleware opens the request's server span (the child of the
//! caller's `traceparent`, see [`crate::tracecontext`]), makes the `traceparent` to hand on
//! available as [`TraceParent`], and records the HTTP metrics (`http_requests_total`,
//! `http_request_duration_seconds` by service, route, method).

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    Error, FromRequest, HttpMessage, HttpRequest,
};
use tracing::Instrument;

use crate::tracecontext;

/// The header that carries the correlation id over HTTP (and, by the same name, Kafka).
pub const HEADER: &str = "x-correlation-id";

/// A request's correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Accepts 1..=128 characters of `[A-Za-z0-9._:-]`; anything else is replaced.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(raw.to_string()))
    }

    /// A fresh id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `traceparent` a request hands on to what it causes (the outbox row, then Kafka): its
/// server span's when spans are exported, otherwise the caller's, otherwise a new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(pub String);

impl FromRequest for TraceParent {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let tp = req
            .extensions()
            .get::<TraceParent>()
            .cloned()
            .unwrap_or_else(|| TraceParent(tracecontext::new_root()));
        std::future::ready(Ok(tp))
    }
}

/// Middleware (use with `actix_web::middleware::from_fn`): assigns the correlation id,
/// opens the request span and echoes the id in the response.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(CorrelationId::parse)
        .unwrap_or_else(CorrelationId::generate);
    req.extensions_mut().insert(id.clone());
    let method = req.method().to_string();
    // The route pattern, not the path: ids in paths would make unbounded label values.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
           "http_request",
           otel.name = format!("{method} {route}"),
           otel.kind = "server",
           otel.status_code = tracing::field::Empty,
           http.request.method = %method,
           http.route = %route,
           http.response.status_code = tracing::field::Empty,
           correlation_id = %id,
           trace_id = tracing::field::Empty,
    span_id = tracing::field::Empty,
           method = %method,
           route = %req.match_pattern().unwrap_or_else(|| req.path().to_string()),
           status = tracing::field::Empty,
       );
    let inbound = req.headers().get(tracecontext::HEADER).and_then(|v| v.to_str().ok());
    let handed_on = tracecontext::adopt(&span, inbound).unwrap_or_else(|| {
        let root = tracecontext::new_root();
        if let Some(trace_id) = tracecontext::trace_id(&root) {
            span.record("trace_id", trace_id);
        }
        root
    });
    req.extensions_mut().insert(TraceParent(handed_on));
    let started = std::time::Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    span.record("status", status);
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let service = crate::telemetry::service_name();
    metrics::counter!("http_requests_total", "service" => service, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "service" => service, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}

impl FromRequest for CorrelationId {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<CorrelationId>()
            .cloned()
            .unwrap_or_else(CorrelationId::generate);
        std::future::ready(Ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_kept_and_others_refused() {
        assert!(CorrelationId::parse("req-123_abc:9.z").is_some());
        assert!(CorrelationId::parse("").is_none());
        assert!(CorrelationId::parse("has space").is_none());
        assert!(CorrelationId::parse("line\nbreak").is_none());
        assert!(CorrelationId::parse(&"x".repeat(129)).is_none());
    }
}
