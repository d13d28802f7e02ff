//! What happens to one notification: decode, look up, render, deliver, decide the outcome.

use std::{sync::Arc, time::Instant};

use notify_kit::tracecontext;
use notify_lookup::{LookupError, PushTarget, RecipientLookup, TemplateLookup};
use notify_schemas::{
    headers::ErrorClass, ids::NotificationId, registry::SchemaRegistry, wire, Channel, NotificationRequested,
};
use notify_templates::{render_blocking, RenderError, TemplateCode};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::{
    devices::DeviceUpkeep,
    ledger::Ledger,
    provider::{Delivery, FailureKind, OutgoingMessage, Provider},
};

/// A failed attempt: transient, permanent or poison (the pipeline never says `exhausted`:
/// that is the decision's, when a transient failure has no retry left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
    /// For a transient failure: not before this long (a provider's `Retry-After`, a rate
    /// limit). The retry tier's delay applies when it is longer.
    pub retry_after: Option<std::time::Duration>,
}

impl Failure {
    pub fn new(class: ErrorClass, m: impl Into<String>) -> Self {
        Self {
            class,
            message: m.into(),
            retry_after: None,
        }
    }
    fn transient(m: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, m)
    }
    fn permanent(m: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, m)
    }
    fn poison(m: impl Into<String>) -> Self {
        Self::new(ErrorClass::Poison, m)
    }
    fn retry_after(self, retry_after: Option<std::time::Duration>) -> Self {
        Self { retry_after, ..self }
    }
}

/// A dependency that every record needs is down (the delivery ledger, user-svc,
/// template-svc, the schema registry): the attempt did not happen. Not a failure of the
/// record: it is attempted again once the dependency answers, without spending an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub dependency: &'static str,
    pub message: String,
}

/// Why an attempt stopped before an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    Failed(Failure),
    Unavailable(Outage),
}

impl From<Failure> for Interrupted {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

fn outage(dependency: &'static str, message: impl std::fmt::Display) -> Interrupted {
    Interrupted::Unavailable(Outage {
        dependency,
        message: format!("{dependency}: {message}"),
    })
}

/// What happened to one device of a push notification in an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// The provider took it in this attempt.
    Sent,
    /// An earlier attempt delivered it (the ledger says so): not sent again.
    SentBefore,
    /// The provider says the device no longer exists; it is being removed from user-svc.
    Gone(String),
    /// The provider refused it for good (another reason than gone).
    Rejected(String),
    /// Not delivered yet: a transient failure, retried with the notification.
    Failed(String),
}

/// One device's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// user-svc's device id (nil from a user-svc that predates device ids).
    pub device_id: uuid::Uuid,
    pub platform: &'static str,
    pub provider: &'static str,
    pub outcome: DeviceOutcome,
}

impl std::fmt::Display for DeviceReport {
    /// `web 0193…: gone (removed): push provider answered 410`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}: ", self.platform, self.provider, self.device_id)?;
        match &self.outcome {
            DeviceOutcome::Sent => f.write_str("sent"),
            DeviceOutcome::SentBefore => f.write_str("sent (earlier attempt)"),
            DeviceOutcome::Gone(m) => write!(f, "gone, removed: {m}"),
            DeviceOutcome::Rejected(m) => write!(f, "rejected: {m}"),
            DeviceOutcome::Failed(m) => write!(f, "not yet: {m}"),
        }
    }
}

/// The per-device part of a status: every device's result when one of them did not get it
/// (`None` when every device got it, or for email).
pub fn device_summary(devices: &[DeviceReport]) -> Option<String> {
    let all_sent = devices
        .iter()
        .all(|d| matches!(d.outcome, DeviceOutcome::Sent | DeviceOutcome::SentBefore));
    if all_sent {
        return None;
    }
    Some(format!(
        "devices: {}",
        devices.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    ))
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every target has it (now or in an earlier attempt). `rejected` lists targets the
    /// provider refused permanently (e.g. an unregistered device among several).
    Sent {
        template_version: u32,
        language: String,
        sent_now: usize,
        rejected: Vec<String>,
        /// Push: what happened to each device (empty for email).
        devices: Vec<DeviceReport>,
        /// The provider that took it, when a chain says which (else the worker's provider).
        provider: Option<String>,
    },
    /// Not sent on purpose: user deleted, opted out, nothing to send to.
    Skipped {
        reason: String,
    },
    Failed(Failure),
    /// Not attempted: a dependency is down (see [`Outage`]).
    Unavailable(Outage),
}

impl From<Interrupted> for Outcome {
    fn from(i: Interrupted) -> Self {
        match i {
            Interrupted::Failed(f) => Self::Failed(f),
            Interrupted::Unavailable(o) => Self::Unavailable(o),
        }
    }
}

/// A decoded notification.
#[derive(Debug, Clone)]
pub struct Job {
    pub event: NotificationRequested,
}

impl Job {
    pub fn notification_id(&self) -> NotificationId {
        self.event.notification_id
    }
}

/// Decodes a record value. A registry outage is an [`Outage`]; undecodable bytes are poison.
pub async fn decode(registry: &SchemaRegistry, payload: &[u8]) -> Result<Job, Interrupted> {
    let schema_id = wire::schema_id(payload).map_err(|e| Failure::poison(format!("not Confluent-framed Avro: {e}")))?;
    let schema = registry.schema_by_id(schema_id).await.map_err(|e| {
        if e.is_not_found() {
            Failure::poison(format!("unknown schema id {schema_id}: {e}")).into()
        } else {
            outage("schema registry", e)
        }
    })?;
    // A missing or malformed id fails here, as the rest of an undecodable value does.
    let event: NotificationRequested =
        wire::decode(&schema, payload).map_err(|e| Failure::poison(format!("cannot decode: {e}")))?;
    Ok(Job { event })
}

fn lookup_failure(what: &'static str, e: LookupError) -> Interrupted {
    match e {
        // A bad answer will not get better by itself.
        LookupError::Invalid { .. } => Failure::permanent(format!("{what}: {e}")).into(),
        // Down, timing out, or refusing our own token (a configuration problem): every
        // record needs it, so none is attempted until it answers again.
        LookupError::Unavailable { .. } | LookupError::Unauthorized { .. } => outage(what, e),
    }
}

/// Everything delivery needs, shared by the consume loops.
pub struct Pipeline {
    pub channel: Channel,
    pub provider: Arc<dyn Provider>,
    pub users: RecipientLookup,
    pub templates: TemplateLookup,
    pub ledger: Ledger,
    /// Where device use and gone devices are reported (push).
    pub devices: DeviceUpkeep,
}

/// One address to deliver to: an email address, or a device.
struct Target<'a> {
    address: &'a str,
    platform: Option<&'static str>,
    device: Option<&'a PushTarget>,
}

impl Pipeline {
    /// Runs one delivery attempt of `job` and says what came of it.
    pub async fn deliver(&self, job: &Job, correlation_id: &str, traceparent: Option<&str>) -> Outcome {
        match self.try_deliver(job, correlation_id, traceparent).await {
            Ok(outcome) => outcome,
            Err(i) => i.into(),
        }
    }

    async fn try_deliver(
        &self,
        job: &Job,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<Outcome, Interrupted> {
        let ev = &job.event;
        if ev.channel != self.channel {
            return Err(Failure::permanent(format!(
                "a {} notification reached the {} worker",
                ev.channel, self.channel
            ))
            .into());
        }
        let Some(recipient) = self
            .users
            .get(ev.user_id.as_uuid())
            .await
            .map_err(|e| lookup_failure("user-svc", e))?
        else {
            return Ok(Outcome::Skipped {
                reason: "recipient not found (deleted user)".into(),
            });
        };
        let (allowed, targets): (bool, Vec<Target<'_>>) = match self.channel {
            Channel::Email => (
                recipient.preferences.email,
                vec![Target {
                    address: &recipient.email,
                    platform: None,
                    device: None,
                }],
            ),
            Channel::Push => (
                recipient.preferences.push,
                recipient
                    .push_tokens
                    .iter()
                    .map(|t| Target {
                        address: &t.token,
                        platform: Some(t.platform.as_str()),
                        device: Some(t),
                    })
                    .collect(),
            ),
        };
        if !allowed {
            return Ok(Outcome::Skipped {
                reason: format!("recipient opted out of {}", self.channel),
            });
        }
        if let (Channel::Email, Some(s)) = (self.channel, &recipient.email_suppressed) {
            return Ok(Outcome::Skipped {
                reason: format!("address suppressed: {} ({}, {})", s.reason, s.source, s.created_at),
            });
        }
        // The one-click link goes into the email's headers (RFC 8058); push has none.
        let unsubscribe_url = match self.channel {
            Channel::Email => recipient.email_unsubscribe_url.as_deref(),
            Channel::Push => None,
        };
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
            ))
            .into());
        }
        let variables: Map<String, Value> = serde_json::from_str(&ev.variables_json)
            .map_err(|e| Failure::poison(format!("variables_json is not a JSON object: {e}")))?;
        let rendered = render_blocking(template.content.clone(), variables)
            .await
            .map_err(|e| match e {
                RenderError::MissingVariable { .. } => {
                    Failure::permanent(format!("template {}: {e}", ev.template_code))
                }
                other => Failure::permanent(format!("template {}: {other}", ev.template_code)),
            })?;

        let mut sent_now = 0;
        let mut rejected = Vec::new();
        let mut transient: Option<String> = None;
        let mut retry_after: Option<std::time::Duration> = None;
        let mut delivered_by: Option<&'static str> = None;
        let mut devices: Vec<DeviceReport> = Vec::new();
        let mut report = |t: &Target<'_>, outcome: DeviceOutcome| {
            if let Some(d) = t.device {
                devices.push(DeviceReport {
                    device_id: d.id,
                    platform: d.platform.as_str(),
                    provider: d.provider.as_str(),
                    outcome,
                });
            }
        };
        // Every provider of the channel is open: nothing to attempt until one is back.
        self.providers_available("circuits open")?;
        for t in &targets {
            let (target, platform) = (t.address, &t.platform);
            let done = self
                .ledger
                .delivered(job.notification_id(), self.channel, target)
                .await
                .map_err(|e| outage("delivery ledger", e))?;
            if done {
                report(t, DeviceOutcome::SentBefore);
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
                .deliver(&Delivery {
                    message: OutgoingMessage {
                        notification_id: job.notification_id().as_uuid(),
                        correlation_id,
                        traceparent: call_context.as_deref().or(traceparent),
                        target,
                        platform: *platform,
                        recipient_name: None,
                        content: &rendered,
                    },
                    unsubscribe_url,
                    provider: t.device.map(|d| d.provider.as_str()),
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
                Ok(receipt) => {
                    sent_now += 1;
                    delivered_by = receipt.provider.or(delivered_by);
                    self.remember(job.notification_id(), target).await;
                    report(t, DeviceOutcome::Sent);
                }
                Err(f) => {
                    if f.alert {
                        tracing::error!(provider = self.provider.name(), error = %f.message, alert = true, "the provider refused our credentials or configuration");
                    }
                    match f.kind {
                        // Only a device can be gone; the provider decided (never the message
                        // of a permanent failure of the whole message).
                        FailureKind::Recipient if t.device.is_some() && f.is_gone() => {
                            tracing::info!(notification_id = %job.notification_id(), device_id = ?t.device.map(|d| d.id), error = %f.message, "the provider says the device is gone; removing it");
                            self.devices
                                .gone(target, &format!("{}: {}", self.provider.name(), f.message));
                            report(t, DeviceOutcome::Gone(f.message.clone()));
                            rejected.push(f.message);
                        }
                        FailureKind::Permanent | FailureKind::Recipient => {
                            report(t, DeviceOutcome::Rejected(f.message.clone()));
                            rejected.push(f.message);
                        }
                        FailureKind::Transient => {
                            // Every provider of the channel is open: an outage, not this
                            // record's failure (held until one is back).
                            self.providers_available(&f.message)?;
                            retry_after = retry_after.max(f.retry_after);
                            report(t, DeviceOutcome::Failed(f.message.clone()));
                            transient.get_or_insert(f.message);
                        }
                    }
                }
            }
        }
        let used: Vec<uuid::Uuid> = devices
            .iter()
            .filter(|d| d.outcome == DeviceOutcome::Sent)
            .map(|d| d.device_id)
            .collect();
        if !used.is_empty() {
            self.devices.used(used);
        }
        if let Some(m) = transient {
            return Err(Failure::transient(m).retry_after(retry_after).into());
        }
        if rejected.len() == targets.len() {
            return Err(Failure::permanent(device_summary(&devices).unwrap_or_else(|| rejected.join("; "))).into());
        }
        Ok(Outcome::Sent {
            template_version: template.version,
            language: template.language.as_str().to_string(),
            sent_now,
            rejected,
            devices,
            provider: delivered_by.map(str::to_string),
        })
    }

    /// An outage when every provider of the channel is unavailable (all circuits open).
    fn providers_available(&self, why: &str) -> Result<(), Interrupted> {
        match self.provider.unavailable_until() {
            Some(until) if until > std::time::Instant::now() => Err(outage(
                "providers",
                format!("every {} provider is unavailable: {why}", self.channel),
            )),
            _ => Ok(()),
        }
    }

    /// Records a delivery in the ledger, trying a few times over about 3 s: the message is
    /// with the provider, and a redelivery before the ledger knows would send it again. If
    /// Redis stays unreachable that long the duplicate window stays open (logged).
    async fn remember(&self, id: NotificationId, target: &str) {
        let mut backoff = std::time::Duration::from_millis(100);
        for _ in 0..5 {
            match self.ledger.record(id, self.channel, target).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(notification_id = %id, error = %e, "delivery not recorded in the ledger yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        tracing::error!(notification_id = %id, alert = true, "delivery not recorded in the ledger: a redelivery would send it again");
    }
}
