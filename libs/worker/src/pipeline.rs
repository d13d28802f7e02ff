//! What happens to one notification: decode, look up, render, deliver, decide the outcome.

use std::{sync::Arc, time::Instant};

use notify_lookup::{LookupError, TemplateLookup, RecipientLookup};
use notify_kit::tracecontext;
use notify_schemas::{registry::SchemaRegistry, wire, Channel, NotificationRequested};
use notify_templates::{render, RenderError, TemplateCode};
use serde_json::{Map, Value};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    ledger::Ledger,
    provider::{OutgoingMessage, Provider, ProviderError},
};

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Retry later (next delay tier).
    Transient,
    /// Retrying cannot help: straight to the dead-letter topic.
    Permanent,
    /// The record cannot be decoded: dead-letter topic with its bytes intact.
    Poison,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Poison => "poison",
        }
    }
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    fn transient(m: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Transient,
            message: m.into(),
        }
    }
    fn permanent(m: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Permanent,
            message: m.into(),
        }
    }
    fn poison(m: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Poison,
            message: m.into(),
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every target has it (now or in an earlier attempt). `rejected` lists targets the
    /// provider refused permanently (e.g. an unregistered device among several).
    Sent {
        template_version: u32,
        language: String,
        sent_now: usize,
        rejected: Vec<String>,
    },
    /// Not sent on purpose: user deleted, opted out, nothing to send to.
    Skipped {
        reason: String,
    },
    Failed(Failure),
}

/// A decoded notification with the parts every step needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub event: NotificationRequested,
    pub notification_id: Uuid,
}

/// Decodes a record value. Registry outages are transient; undecodable bytes are poison.
pub async fn decode(registry: &SchemaRegistry, payload: &[u8]) -> Result<Job, Failure> {
    let schema_id = wire::schema_id(payload).map_err(|e| Failure::poison(format!("not Confluent-framed Avro: {e}")))?;
    let schema = registry.schema_by_id(schema_id).await.map_err(|e| {
        if e.is_not_found() {
            Failure::poison(format!("unknown schema id {schema_id}: {e}"))
        } else {
            Failure::transient(format!("schema registry: {e}"))
        }
    })?;
    let event: NotificationRequested =
        wire::decode(&schema, payload).map_err(|e| Failure::poison(format!("cannot decode: {e}")))?;
    let notification_id = Uuid::try_parse(&event.notification_id)
        .map_err(|_| Failure::poison(format!("notification_id {} is not a UUID", event.notification_id)))?;
    Ok(Job { event, notification_id })
}

fn lookup_failure(what: &str, e: LookupError) -> Failure {
    match e {
        // A bad answer will not get better by itself; anything else (down, timeout, our own
        // token refused: a configuration problem) is retried so nothing is lost.
        LookupError::Invalid { .. } => Failure::permanent(format!("{what}: {e}")),
        other => Failure::transient(format!("{what}: {other}")),
    }
}

/// Everything delivery needs, shared by the consume loops.
pub struct Pipeline {
    pub channel: Channel,
    pub provider: Arc<dyn Provider>,
    pub users: RecipientLookup,
    pub templates: TemplateLookup,
    pub ledger: Ledger,
}

impl Pipeline {
    /// Runs one delivery attempt of `job` and says what came of it.
    pub async fn deliver(&self, job: &Job, correlation_id: &str, traceparent: Option<&str>) -> Outcome {
        match self.try_deliver(job, correlation_id, traceparent).await {
            Ok(outcome) => outcome,
            Err(f) => Outcome::Failed(f),
        }
    }

    async fn try_deliver(
        &self,
        job: &Job,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<Outcome, Failure> {
        let ev = &job.event;
        if ev.channel != self.channel {
            return Err(Failure::permanent(format!(
                "a {} notification reached the {} worker",
                ev.channel, self.channel
            )));
        }
        let user_id = Uuid::try_parse(&ev.user_id)
            .map_err(|_| Failure::poison(format!("user_id {} is not a UUID", ev.user_id)))?;
        let Some(recipient) = self
            .users
            .get(user_id)
            .await
            .map_err(|e| lookup_failure("user-svc", e))?
        else {
            return Ok(Outcome::Skipped {
                reason: "recipient not found (deleted user)".into(),
            });
        };
        let (allowed, targets): (bool, Vec<(String, Option<&'static str>)>) = match self.channel {
            Channel::Email => (recipient.preferences.email, vec![(recipient.email.clone(), None)]),
            Channel::Push => (
                recipient.preferences.push,
                recipient
                    .push_tokens
                    .iter()
                    .map(|t| (t.token.clone(), Some(t.platform.as_str())))
                    .collect(),
            ),
        };
        if !allowed {
            return Ok(Outcome::Skipped {
                reason: format!("recipient opted out of {}", self.channel),
            });
        }
        if targets.is_empty() {
            return Ok(Outcome::Skipped {
                reason: "recipient has no push device registered".into(),
            });
        }
        let code =
            TemplateCode::parse(&ev.template_code).map_err(|e| Failure::permanent(format!("template_code: {e}")))?;
        let template = self
            .templates
            .get(&code, &recipient.language)
            .await
            .map_err(|e| lookup_failure("template-svc", e))?
            .ok_or_else(|| Failure::permanent(format!("template {} not found", ev.template_code)))?;
        if template.channel.as_str() != self.channel.as_str() {
            return Err(Failure::permanent(format!(
                "template {} is a {} template, not {}",
                ev.template_code,
                template.channel.as_str(),
                self.channel
            )));
        }
        let variables: Map<String, Value> = serde_json::from_str(&ev.variables_json)
            .map_err(|e| Failure::poison(format!("variables_json is not a JSON object: {e}")))?;
        let rendered = render(&template.content, &variables).map_err(|e| match e {
            RenderError::MissingVariable { .. } => Failure::permanent(format!("template {}: {e}", ev.template_code)),
            other => Failure::permanent(format!("template {}: {other}", ev.template_code)),
        })?;

        let mut sent_now = 0;
        let mut rejected = Vec::new();
        let mut transient: Option<String> = None;
        for (target, platform) in &targets {
            let done = self
                .ledger
                .delivered(job.notification_id, self.channel, target)
                .await
                .map_err(|e| Failure::transient(e.to_string()))?;
            if done {
                continue;
            }
            let started = Instant::now();
            let span = tracing::info_span!(
                "provider_send",
                otel.name = format!("{} send", self.provider.name()),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                provider = self.provider.name(),
                platform = platform.unwrap_or_default(),
            );
            // The provider sees the context of this call (the push API gets it as a header).
            let call_context = tracecontext::of(&span);
            let result = self
                .provider
                .send(&OutgoingMessage {
                    notification_id: job.notification_id,
                    correlation_id,
                    traceparent: call_context.as_deref().or(traceparent),
                    target,
                    platform: *platform,
                    recipient_name: None,
                    content: &rendered,
                })
                .instrument(span.clone())
                .await;
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
            }
            drop(span);
            metrics::histogram!("worker_delivery_duration_seconds", "channel" => self.channel.as_str(), "provider" => self.provider.name())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(_) => {
                    sent_now += 1;
                    if let Err(e) = self.ledger.record(job.notification_id, self.channel, target).await {
                        // Sent but not remembered: a redelivery would send again. Logged; the
                        // email's deterministic Message-ID still lets receivers drop it.
                        tracing::warn!(notification_id = %job.notification_id, error = %e, "delivery not recorded in the ledger");
                    }
                }
                Err(ProviderError::Permanent(m)) => rejected.push(m),
                Err(ProviderError::Transient(m)) => {
                    transient.get_or_insert(m);
                }
            }
        }
        if let Some(m) = transient {
            return Err(Failure::transient(m));
        }
        if rejected.len() == targets.len() {
            return Err(Failure::permanent(rejected.join("; ")));
        }
        Ok(Outcome::Sent {
            template_version: template.version,
            language: template.language.as_str().to_string(),
            sent_now,
            rejected,
        })
    }
}
