//! One attempt of one record: its consumer span, decode → deliver ([`crate::pipeline`]) →
//! decide ([`crate::decision`]), the logs and metrics of the verdict, and the follow-up
//! records to produce. The consumer ([`crate::consumer`]) produces them and commits.

use std::collections::HashMap;
use std::time::Duration;

use notify_kafka::headers as h;
use notify_kit::tracecontext;
use notify_schemas::ids::NotificationId;
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use crate::{
    consumer::Runtime,
    decision::{decide, Attempted, Decision, Policy, Verdict},
    pipeline::{decode, Job, Outage, Outcome},
    routing::{status_headers, to_kafka, Position},
    status_events::StatusUpdate,
};

/// This worker's `name/version`, in the failure headers.
pub const WORKER_VERSION: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// A record to produce as the consequence of one attempt.
pub(crate) struct FollowUp {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: OwnedHeaders,
    /// A retry or dead-letter record: produced in a batch of its own, because it is read
    /// again from its own offset.
    pub own_batch: bool,
}

impl FollowUp {
    pub fn record(&self) -> FutureRecord<'_, [u8], [u8]> {
        let record = FutureRecord::to(&self.topic)
            .payload(self.payload.as_slice())
            .headers(self.headers.clone());
        match &self.key {
            Some(k) => record.key(k.as_slice()),
            None => record,
        }
    }
}

/// What came of an attempt.
pub(crate) enum AttemptResult {
    /// Decided: the records to produce (the status event, and the retry or dead-letter record).
    Decided(Vec<FollowUp>),
    /// Not attempted: a dependency is down. Attempt the same record again once it answers.
    Held(Outage),
    /// Stopped before the outcome could be made durable: leave the record uncommitted.
    Stopped,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Runtime {
    fn policy(&self) -> Policy<'_> {
        Policy {
            channel: self.settings.channel,
            topics: &self.topics,
            tiers: &self.settings.tiers,
            group: &self.settings.group_id,
            provider: self.pipeline.provider.name(),
            worker_version: WORKER_VERSION,
        }
    }

    /// Attempt number `attempt` of `msg`, in the record's consumer span (the child of the span
    /// that produced the record, when spans are exported).
    pub(crate) async fn attempt(
        &self,
        msg: &OwnedMessage,
        headers: &HashMap<String, String>,
        attempt: u32,
        stop: &CancellationToken,
    ) -> AttemptResult {
        let correlation_id = headers.get(h::CORRELATION_ID).map(String::as_str).unwrap_or_default();
        let span = tracing::info_span!(
            "deliver",
            otel.name = format!("{} process", msg.topic()),
            otel.kind = "consumer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = msg.topic(),
            messaging.kafka.offset = msg.offset(),
            notification_id = tracing::field::Empty,
            correlation_id,
            attempt,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let inbound = headers.get(h::TRACEPARENT).map(String::as_str);
        let traceparent = tracecontext::adopt(&span, inbound);
        // Retry, dead-letter and status records carry this attempt's context on.
        let headers = match &traceparent {
            Some(tp) if inbound != Some(tp.as_str()) => {
                let mut hs = headers.clone();
                hs.insert(h::TRACEPARENT.to_string(), tp.clone());
                std::borrow::Cow::Owned(hs)
            }
            _ => std::borrow::Cow::Borrowed(headers),
        };
        let work = self.attempt_in_span(msg, &headers, attempt, traceparent.as_deref(), stop);
        tracing::Instrument::instrument(work, span).await
    }

    async fn attempt_in_span(
        &self,
        msg: &OwnedMessage,
        headers: &HashMap<String, String>,
        attempt: u32,
        traceparent: Option<&str>,
        stop: &CancellationToken,
    ) -> AttemptResult {
        let span = tracing::Span::current();
        let correlation_id = headers.get(h::CORRELATION_ID).map(String::as_str).unwrap_or_default();
        let payload = msg.payload().unwrap_or_default();
        let (job, outcome) = match decode(&self.registry, payload).await {
            Ok(job) => {
                let outcome = self.pipeline.deliver(&job, correlation_id, traceparent).await;
                (Some(job), outcome)
            }
            Err(i) => (None, Outcome::from(i)),
        };
        if let Outcome::Unavailable(outage) = outcome {
            return AttemptResult::Held(outage);
        }
        let notification_id = job.as_ref().map(Job::notification_id).or_else(|| {
            headers
                .get(h::NOTIFICATION_ID)
                .and_then(|v| NotificationId::parse(v).ok())
        });
        if let Some(id) = notification_id {
            span.record("notification_id", tracing::field::display(id));
        }
        if matches!(outcome, Outcome::Failed(_)) {
            span.record("otel.status_code", "ERROR");
        }
        let record = Attempted {
            position: Position {
                topic: msg.topic(),
                partition: msg.partition(),
                offset: msg.offset(),
            },
            key: msg.key(),
            payload,
            headers,
            attempt,
            notification_id,
            correlation_id,
        };
        let decision = decide(&self.policy(), &record, &outcome, now_ms());
        self.observe(&decision, &outcome, job.as_ref());
        let Decision {
            failure_record, status, ..
        } = decision;
        let mut out = Vec::with_capacity(2);
        if let Some(r) = failure_record {
            out.push(FollowUp {
                own_batch: true,
                headers: to_kafka(&r.headers),
                topic: r.topic,
                key: r.key,
                payload: r.payload,
            });
        }
        if let Some(status) = status {
            match self.status_record(&status, traceparent, stop).await {
                Some(record) => out.push(record),
                None => return AttemptResult::Stopped,
            }
        }
        AttemptResult::Decided(out)
    }

    /// The status event as a record. Encoding needs the status schema from the registry
    /// (once; then cached): while it cannot be had the attempt waits and tries again, so the
    /// record is not committed without its status. `None` when stopped meanwhile.
    async fn status_record(
        &self,
        status: &StatusUpdate,
        traceparent: Option<&str>,
        stop: &CancellationToken,
    ) -> Option<FollowUp> {
        let mut backoff = Duration::from_millis(200);
        let payload = loop {
            match self.status.encode(self.settings.channel, status).await {
                Ok(bytes) => break bytes,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "status event not encoded; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        };
        Some(FollowUp {
            own_batch: false,
            topic: self.topics.status(),
            key: Some(status.notification_id.to_string().into_bytes()),
            payload,
            headers: to_kafka(&status_headers(
                status.notification_id,
                &status.correlation_id,
                traceparent,
            )),
        })
    }

    /// The verdict's log line and metrics.
    fn observe(&self, decision: &Decision, outcome: &Outcome, job: Option<&Job>) {
        let channel = self.settings.channel.as_str();
        let provider = self.pipeline.provider.name();
        // Empty for a record whose id could not be read.
        let id = decision
            .status
            .as_ref()
            .map(|s| s.notification_id.to_string())
            .unwrap_or_default();
        let error = match outcome {
            Outcome::Failed(f) => f.message.as_str(),
            _ => "",
        };
        match (&decision.verdict, outcome) {
            (Verdict::Sent, Outcome::Sent { sent_now, rejected, .. }) => {
                tracing::info!(notification_id = %id, sent_now, rejected = rejected.len(), "delivered");
                if let Some(job) = job {
                    let age = (now_ms() - job.event.requested_at).max(0) as f64 / 1000.0;
                    metrics::histogram!("notification_end_to_end_seconds", "channel" => channel).record(age);
                }
            }
            (Verdict::Skipped, Outcome::Skipped { reason }) => {
                tracing::info!(notification_id = %id, %reason, "skipped");
            }
            (Verdict::Retried { tier, .. }, _) => {
                tracing::warn!(notification_id = %id, tier, error, "attempt failed; retrying later");
                metrics::counter!("worker_retried_total", "channel" => channel, "tier" => *tier).increment(1);
            }
            (Verdict::DeadLettered { class }, _) => {
                tracing::error!(notification_id = %id, class = class.as_str(), error, "dead-lettered");
                metrics::counter!("worker_dead_lettered_total", "channel" => channel, "reason" => class.as_str())
                    .increment(1);
            }
            _ => {}
        }
        metrics::counter!("worker_deliveries_total", "channel" => channel, "provider" => provider, "outcome" => decision.verdict.label())
            .increment(1);
    }
}
