//! One producer request: identity → decode → validate → references → accept. Each step
//! either moves on, rejects the record for good ([`Rejection`], dead-lettered by the caller) or
//! fails for a reason outside the record (an outage: `Err`, the caller holds the record).

use std::sync::Arc;

use apache_avro::Schema;
use notify_intake::{accept, parse_record, Acceptance, References, Submission, SCOPE_PRODUCE};
use notify_kafka::headers;
use notify_kit::{
    auth::{JwtVerifier, TokenUse},
    correlation::CorrelationId,
    tracecontext,
};
use notify_schemas::{ids::NotificationId, registry::SchemaRegistry, wire, IngestRequest, NOTIFICATION_REQUEST_RECORD};
use notify_store::outbox::RelayWaker;
use rdkafka::message::{Headers, Message, OwnedMessage, Timestamp};
use sqlx::PgPool;
use tracing::{Instrument as _, Span};

use crate::dead_letter::Rejection;

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted: the notification and its outbox row are committed.
    Accepted(NotificationId),
    /// The producer sent this request before: nothing written.
    Duplicate(NotificationId),
    /// Never acceptable: dead-lettered.
    Rejected(Rejection),
}

impl Outcome {
    /// Logs the outcome and counts it in `ingest_requests_total{outcome}`.
    pub fn record(&self, span: &Span) {
        let label = match self {
            Self::Accepted(id) => {
                span.record("notification_id", tracing::field::display(id));
                tracing::info!(parent: span, notification_id = %id, "request accepted");
                "accepted"
            }
            Self::Duplicate(id) => {
                tracing::info!(parent: span, notification_id = %id, "duplicate request ignored");
                "duplicate"
            }
            Self::Rejected(r) => {
                tracing::warn!(parent: span, class = %r.class, reason = %r.reason, "request dead-lettered");
                "dead_lettered"
            }
        };
        metrics::counter!("ingest_requests_total", "outcome" => label).increment(1);
    }
}

/// Turns records into notifications with the gateway's own code.
pub struct Handler {
    /// Verifies producer tokens (the ingest audience).
    pub verifier: JwtVerifier,
    pub registry: SchemaRegistry,
    /// This service's version of the request contract: every writer's version is resolved to it.
    pub reader: Arc<Schema>,
    pub references: References,
    pub pool: PgPool,
    pub idempotency_ttl: std::time::Duration,
    pub waker: RelayWaker,
    pub max_record_bytes: usize,
}

/// A header of `msg` as text.
fn header<'m>(msg: &'m OwnedMessage, name: &str) -> Option<&'m str> {
    msg.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

impl Handler {
    /// Handles one record (see the module documentation). `Err` means "not now": the record's
    /// outcome is undecided and it must be tried again.
    pub async fn handle(&self, msg: &OwnedMessage, span: &Span) -> anyhow::Result<Outcome> {
        let producer = match self.identify(msg) {
            Ok(p) => p,
            Err(r) => return Ok(Outcome::Rejected(r)),
        };
        span.record("producer", producer.as_str());
        let record = match self.decode(msg).instrument(span.clone()).await? {
            Ok(r) => r,
            Err(r) => return Ok(Outcome::Rejected(r.by(&producer))),
        };
        span.record("request_id", record.request_id.as_str());
        let valid = match parse_record(&record) {
            Ok(v) => v,
            Err(errors) => {
                let list: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect();
                return Ok(Outcome::Rejected(
                    Rejection::permanent(format!("invalid request: {}", list.join("; "))).by(&producer),
                ));
            }
        };
        let request = &valid.request;
        let unknown = self
            .references
            .verify(request.user_id, request.template_code.as_str(), request.channel)
            .instrument(span.clone())
            .await?;
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect();
            return Ok(Outcome::Rejected(
                Rejection::permanent(format!("unknown reference: {}", list.join("; "))).by(&producer),
            ));
        }
        let correlation = valid
            .correlation_id
            .clone()
            .or_else(|| header(msg, headers::CORRELATION_ID).and_then(CorrelationId::parse))
            .unwrap_or_else(CorrelationId::generate);
        span.record("correlation_id", correlation.as_str());
        let traceparent =
            tracecontext::adopt(span, header(msg, headers::TRACEPARENT)).unwrap_or_else(tracecontext::new_root);
        let submission = Submission {
            request,
            caller: &producer,
            correlation_id: correlation.as_str(),
            traceparent: &traceparent,
            idempotency_ttl: self.idempotency_ttl,
        };
        Ok(match accept(&self.pool, &submission).instrument(span.clone()).await? {
            Acceptance::Created { notification_id, .. } => {
                self.waker.wake();
                Outcome::Accepted(notification_id)
            }
            Acceptance::Replayed(stored) => Outcome::Duplicate(stored.notification_id),
            Acceptance::Conflict(stored) => Outcome::Rejected(
                Rejection::permanent(format!(
                    "request_id `{}` was already used by this producer for another request (notification {})",
                    request.request_id.as_str(),
                    stored.notification_id
                ))
                .by(&producer),
            ),
        })
    }

    /// The producer: the subject of a valid producer token, judged as of the record's
    /// timestamp (a record that waited through an outage keeps the identity it was sent with).
    fn identify(&self, msg: &OwnedMessage) -> Result<String, Rejection> {
        let token = header(msg, headers::PRODUCER_TOKEN).ok_or_else(|| {
            Rejection::permanent(format!("identity: the {} header is missing", headers::PRODUCER_TOKEN))
        })?;
        let now = chrono::Utc::now().timestamp();
        let written_at = match msg.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) if ms > 0 => (ms / 1000).min(now),
            _ => now,
        };
        let caller = self
            .verifier
            .verify_at(token, written_at)
            .map_err(|e| Rejection::permanent(format!("identity: {e}")))?;
        if caller.token_use != TokenUse::Service {
            return Err(Rejection::permanent("identity: a user token cannot publish requests"));
        }
        if !caller.has_scope(SCOPE_PRODUCE) {
            return Err(Rejection::permanent(format!(
                "identity: the producer token lacks the scope `{SCOPE_PRODUCE}`"
            )));
        }
        Ok(caller.subject)
    }

    /// The request in the record: `Ok(Err(..))` when it is not one, `Err` when the registry
    /// cannot be asked.
    async fn decode(&self, msg: &OwnedMessage) -> anyhow::Result<Result<IngestRequest, Rejection>> {
        let payload = msg.payload().unwrap_or_default();
        if payload.len() > self.max_record_bytes {
            return Ok(Err(Rejection::permanent(format!(
                "the record is {} bytes, more than the {} accepted",
                payload.len(),
                self.max_record_bytes
            ))));
        }
        let id = match wire::schema_id(payload) {
            Ok(id) => id,
            Err(e) => return Ok(Err(Rejection::poison(format!("not the Confluent wire format: {e}")))),
        };
        let writer = match self.registry.schema_by_id(id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                return Ok(Err(Rejection::poison(format!("schema id {id} is not registered"))))
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot fetch the writer's schema")),
        };
        let name = match writer.as_ref() {
            Schema::Record(r) => r.name.fullname(None),
            other => format!("a {:?} schema", apache_avro::schema::SchemaKind::from(other)),
        };
        if name != NOTIFICATION_REQUEST_RECORD {
            return Ok(Err(Rejection::poison(format!(
                "wrong schema: written with {name} (schema id {id}), expected {NOTIFICATION_REQUEST_RECORD}"
            ))));
        }
        Ok(wire::decode_as::<IngestRequest>(&writer, &self.reader, payload)
            .map_err(|e| Rejection::poison(format!("cannot decode the request (schema id {id}): {e}"))))
    }
}
