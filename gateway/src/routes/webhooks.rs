//! `POST /api/v1/webhooks/sendgrid` and `POST /api/v1/webhooks/mailgun`: provider event
//! webhooks, authenticated by the provider's signature (not by a bearer token).
//!
//! - A missing or bad signature (or a Mailgun timestamp outside `APP_WEBHOOK_MAX_AGE_SECS`,
//!   or a Mailgun token seen before) is `401` and changes nothing; an endpoint whose key is
//!   not configured is `404`.
//! - Each event about one of our email notifications becomes a status event through
//!   [`crate::outbox::enqueue_status_change`] (provider `sendgrid`/`mailgun`, source
//!   `provider-webhook`), mapped as `domain/webhooks` documents; events about unknown
//!   notifications, and events the platform does not act on, are skipped and counted
//!   without failing the batch.
//! - Hard bounces, complaints and unsubscribes also suppress the address in user-svc. The
//!   suppressions are written first: if user-svc cannot take them the answer is `503` and
//!   nothing is enqueued, so the provider retries the whole request (every effect is
//!   idempotent: the suppression is an upsert, a repeated status event is a duplicate for
//!   the projector).
//! - Used Mailgun tokens live in Redis (`SET NX`, twice the accepted age). **If Redis cannot
//!   answer, the token check is skipped** (logged, `webhook_replay_check_errors_total`): the
//!   signature and the timestamp window still hold, and a replayed event repeats only
//!   idempotent effects, whereas refusing would stop bounce handling during a Redis outage.
//!   A request answered 5xx releases its token, so the provider's retry is accepted.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use chrono::Utc;
use notify_kit::{
    auth::{JwtIssuer, SCOPE_SUPPRESSIONS_WRITE},
    correlation::{CorrelationId, TraceParent},
    redis_conn::RedisConnection,
    ApiError, ApiResponse,
};
use notify_lookup::{LookupError, Suppression, SuppressionClient, TokenSource};
use notify_schemas::Channel;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::{
    domain::webhooks::{
        mailgun::{self, MailgunVerifier},
        sendgrid::{self, SendGridVerifier},
        EventKind, InvalidEvent, Provider, ProviderEvent, SignatureError,
    },
    outbox::ReportedStatus,
    settings::WebhookSettings,
};

/// The `source` of the status events the webhooks enqueue.
pub const SOURCE: &str = "provider-webhook";

/// Registers the two webhook routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/webhooks/sendgrid", web::post().to(sendgrid_events))
        .route("/api/v1/webhooks/mailgun", web::post().to(mailgun_event));
}

/// What the webhooks need at run time, built once at start.
pub struct Webhooks {
    sendgrid: Option<SendGridVerifier>,
    mailgun: Option<MailgunVerifier>,
    replay: ReplayGuard,
    suppressions: Option<SuppressionClient>,
    max_body_bytes: usize,
}

impl Webhooks {
    /// From the settings; the service token for user-svc (scope `suppressions:write`) is
    /// signed with the gateway's JWT key material, needed only when a webhook is configured.
    pub fn new(settings: &WebhookSettings, auth: &notify_kit::auth::AuthSettings) -> anyhow::Result<Self> {
        let mailgun = settings
            .mailgun_signing_key
            .clone()
            .map(|k| MailgunVerifier::new(k, settings.max_age));
        let suppressions = if settings.sendgrid.is_some() || mailgun.is_some() {
            let issuer = JwtIssuer::new(auth).context("cannot sign the gateway's service token for user-svc")?;
            let tokens = TokenSource::issuer(issuer, "gateway", &[SCOPE_SUPPRESSIONS_WRITE], Duration::from_secs(600));
            Some(SuppressionClient::new(
                &settings.user_svc_url,
                tokens,
                settings.user_svc_timeout,
            )?)
        } else {
            None
        };
        let redis = RedisConnection::new(settings.redis.redis_url.expose(), settings.redis.op_timeout)
            .map_err(|e| anyhow::anyhow!("APP_REDIS_URL: {e}"))?;
        describe_metrics();
        Ok(Self {
            sendgrid: settings.sendgrid.clone(),
            mailgun,
            replay: ReplayGuard {
                redis,
                prefix: format!("{}webhook:mailgun:token:", settings.redis.prefix),
                ttl: settings.max_age * 2,
            },
            suppressions,
            max_body_bytes: settings.max_body_bytes,
        })
    }
}

/// What a webhook answers: how its events were handled.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// Events in the request.
    pub received: usize,
    /// Events recorded as status events.
    pub recorded: usize,
    /// Addresses suppressed in user-svc.
    pub suppressed: usize,
    /// Events about notifications this platform does not know (or not email ones).
    pub unknown_notification: usize,
    /// Events the platform does not act on (opens, clicks, `processed`…).
    pub ignored: usize,
    /// Events that could not be read (no timestamp…).
    pub invalid: usize,
}

/// One SendGrid event as documented (only the fields read; the rest are ignored). Documents
/// the request body; the handler reads the raw bytes, which the signature covers.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SendGridEvent {
    /// `delivered`, `bounce`, `deferred`, `dropped`, `spamreport`, `unsubscribe`,
    /// `group_unsubscribe` are acted on; others are ignored.
    event: String,
    /// Unix seconds.
    timestamp: i64,
    /// The recipient.
    email: String,
    /// For `bounce`: `bounce` (hard) or `blocked` (soft).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Diagnostics.
    reason: Option<String>,
    status: Option<String>,
    response: Option<String>,
    /// Our custom argument, echoed by SendGrid.
    #[schema(value_type = Option<uuid::Uuid>)]
    notification_id: Option<String>,
}

/// Mailgun's signature object.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct MailgunSignatureBody {
    /// Unix seconds.
    timestamp: String,
    /// 50 random characters, accepted once.
    token: String,
    /// Hex HMAC-SHA256 of `timestamp + token` with the webhook signing key.
    signature: String,
}

/// A Mailgun webhook request.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct MailgunWebhookBody {
    signature: MailgunSignatureBody,
    /// The event: `event` (`delivered`, `failed` with `severity` `permanent`/`temporary`,
    /// `complained`, `unsubscribed` are acted on), `timestamp`, `recipient`,
    /// `user-variables.notification_id`, `delivery-status`.
    #[serde(rename = "event-data")]
    #[schema(value_type = Object)]
    event_data: Value,
}

/// Receives a batch of SendGrid events (Signed Event Webhook).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/sendgrid",
    tag = "webhooks",
    params(
        ("X-Twilio-Email-Event-Webhook-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256/SHA-256 signature of `timestamp + raw body`"),
        ("X-Twilio-Email-Event-Webhook-Timestamp" = String, Header, description = "The signed timestamp (Unix seconds)")
    ),
    request_body(content = Vec<SendGridEvent>, description = "A JSON array of events, signed as sent"),
    responses(
        (status = 200, description = "Every event handled (recorded, or skipped and counted)", body = WebhookAccepted),
        (status = 400, description = "Signed, but not a JSON array of events"),
        (status = 401, description = "Missing or bad signature: nothing changed"),
        (status = 404, description = "Not configured (`APP_SENDGRID_WEBHOOK_PUBLIC_KEY` unset)"),
        (status = 413, description = "Body larger than `APP_WEBHOOK_MAX_BODY_BYTES`"),
        (status = 503, description = "user-svc could not record a suppression: nothing enqueued, retry")
    ),
    security(())
)]
pub async fn sendgrid_events(
    req: HttpRequest,
    payload: web::Payload,
    correlation: CorrelationId,
    trace: TraceParent,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hooks = &state.webhooks;
    let provider = Provider::SendGrid;
    let verifier = hooks.sendgrid.as_ref().ok_or_else(|| not_configured(provider))?;
    let body = read_body(payload, hooks.max_body_bytes).await?;
    verifier
        .verify(
            header(&req, sendgrid::SIGNATURE_HEADER),
            header(&req, sendgrid::TIMESTAMP_HEADER),
            &body,
        )
        .map_err(|e| refused(provider, e))?;
    let events = sendgrid::parse_events(&body).map_err(|e| ApiError::BadRequest(e.0))?;
    let tally = handle_events(&state, provider, events, &correlation, &trace).await?;
    Ok(accepted(tally))
}

/// Receives one Mailgun event.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/mailgun",
    tag = "webhooks",
    request_body(content = MailgunWebhookBody, description = "Mailgun's JSON webhook body; the signature object authenticates it"),
    responses(
        (status = 200, description = "The event handled (recorded, or skipped and counted)", body = WebhookAccepted),
        (status = 401, description = "Missing or bad signature, timestamp outside the window, or token already used: nothing changed"),
        (status = 404, description = "Not configured (`APP_MAILGUN_WEBHOOK_SIGNING_KEY` unset)"),
        (status = 413, description = "Body larger than `APP_WEBHOOK_MAX_BODY_BYTES`"),
        (status = 503, description = "user-svc could not record a suppression: nothing enqueued, retry")
    ),
    security(())
)]
pub async fn mailgun_event(
    payload: web::Payload,
    correlation: CorrelationId,
    trace: TraceParent,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hooks = &state.webhooks;
    let provider = Provider::Mailgun;
    let verifier = hooks.mailgun.as_ref().ok_or_else(|| not_configured(provider))?;
    let body = read_body(payload, hooks.max_body_bytes).await?;
    let json: Value = serde_json::from_slice(&body).map_err(|_| refused(provider, SignatureError::Missing))?;
    let (signature, data) = mailgun::parse_body(&json).map_err(|e| refused(provider, e))?;
    verifier
        .verify(&signature, Utc::now())
        .map_err(|e| refused(provider, e))?;
    if !hooks.replay.claim(&signature.token).await {
        return Err(refused(provider, SignatureError::Replayed));
    }
    let result = handle_events(&state, provider, vec![mailgun::parse_event(data)], &correlation, &trace).await;
    if result.is_err() {
        // The provider retries a failed request with the same token: let it in.
        hooks.replay.release(&signature.token).await;
    }
    Ok(accepted(result?))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn accepted(tally: WebhookAccepted) -> HttpResponse {
    HttpResponse::Ok().json(ApiResponse::ok(tally, "events accepted"))
}

fn not_configured(provider: Provider) -> ApiError {
    let var = match provider {
        Provider::SendGrid => "APP_SENDGRID_WEBHOOK_PUBLIC_KEY",
        Provider::Mailgun => "APP_MAILGUN_WEBHOOK_SIGNING_KEY",
    };
    ApiError::NotFound(format!(
        "the {} webhook is not configured on this gateway ({var} is not set)",
        provider.as_str()
    ))
}

/// Counts and logs a refused signature; the answer is 401 whatever the reason.
fn refused(provider: Provider, why: SignatureError) -> ApiError {
    metrics::counter!("webhook_signature_failures_total", "provider" => provider.as_str(), "reason" => why.as_str())
        .increment(1);
    tracing::warn!(
        provider = provider.as_str(),
        reason = why.as_str(),
        "webhook signature refused"
    );
    ApiError::Unauthorized(format!("{} webhook refused: {why}", provider.as_str()))
}

async fn read_body(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("could not read the request body: {e}"))),
        Err(_) => Err(ApiError::PayloadTooLarge { limit }),
    }
}

fn count(provider: Provider, outcome: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("webhook_events_total", "provider" => provider.as_str(), "outcome" => outcome)
            .increment(n as u64);
    }
}

/// An event about one of our notifications, with what it needs to be recorded.
struct Planned {
    event: ProviderEvent,
    kind: EventKind,
    notification_id: notify_schemas::ids::NotificationId,
    attempts: i32,
}

/// Handles verified events: suppressions first (any failure: 5xx, nothing enqueued), then
/// the status events.
async fn handle_events(
    state: &AppState,
    provider: Provider,
    events: Vec<Result<ProviderEvent, InvalidEvent>>,
    correlation: &CorrelationId,
    trace: &TraceParent,
) -> Result<WebhookAccepted, ApiError> {
    let mut tally = WebhookAccepted {
        received: events.len(),
        ..WebhookAccepted::default()
    };
    let mut planned = Vec::new();
    for event in events {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(provider = provider.as_str(), error = %e, "webhook event skipped: unreadable");
                tally.invalid += 1;
                continue;
            }
        };
        let Some(kind) = event.kind else {
            tally.ignored += 1;
            continue;
        };
        let Some(notification_id) = event.notification_id else {
            tracing::info!(provider = provider.as_str(), event = %event.name, "webhook event skipped: no notification id");
            tally.unknown_notification += 1;
            continue;
        };
        let stored = notify_store::outbox::notification_channel(&state.pool, notification_id)
            .await
            .context("failed to read the notification")?;
        match stored {
            Some((channel, attempts)) if channel == Channel::Email.as_str() => planned.push(Planned {
                event,
                kind,
                notification_id,
                attempts,
            }),
            _ => {
                tracing::info!(provider = provider.as_str(), event = %event.name, notification_id = %notification_id,
                    "webhook event skipped: no such email notification");
                tally.unknown_notification += 1;
            }
        }
    }
    for p in &planned {
        let (Some(reason), Some(address)) = (p.kind.suppression(), p.event.recipient.as_deref()) else {
            continue;
        };
        let Some(client) = state.webhooks.suppressions.as_ref() else {
            continue;
        };
        let entry = Suppression {
            reason,
            source: provider.as_str().to_string(),
            detail: p.event.detail.clone(),
        };
        if let Err(e) = client.suppress(Channel::Email.as_str(), address, &entry).await {
            count(provider, "failed", planned.len());
            return Err(match e {
                LookupError::Unavailable { .. } => {
                    tracing::warn!(provider = provider.as_str(), error = %e, "suppression not recorded; asking the provider to retry");
                    ApiError::Unavailable("the suppression list cannot be updated now; retry later".into())
                }
                other => ApiError::Internal(anyhow::Error::new(other).context("failed to record a suppression")),
            });
        }
        metrics::counter!("webhook_suppressions_total", "provider" => provider.as_str(), "reason" => reason.as_str())
            .increment(1);
        tally.suppressed += 1;
    }
    for p in planned {
        tracing::info!(provider = provider.as_str(), event = %p.event.name, notification_id = %p.notification_id,
            "webhook event recorded");
        crate::outbox::enqueue_status_change(
            &state.pool,
            correlation,
            trace,
            ReportedStatus {
                notification_id: p.notification_id,
                channel: Channel::Email,
                status: p.kind.status(),
                attempt: p.attempts,
                occurred_at: p.event.occurred_at,
                error: p.kind.error(p.event.detail.as_deref()),
                provider: provider.as_str().to_string(),
                source: SOURCE,
            },
        )
        .await?;
        tally.recorded += 1;
    }
    count(provider, "recorded", tally.recorded);
    count(provider, "unknown_notification", tally.unknown_notification);
    count(provider, "ignored", tally.ignored);
    count(provider, "invalid", tally.invalid);
    Ok(tally)
}

/// Used Mailgun tokens, in Redis.
struct ReplayGuard {
    redis: RedisConnection,
    prefix: String,
    ttl: Duration,
}

impl ReplayGuard {
    /// Marks `token` used; `false` when it was used before. `true` when Redis cannot answer
    /// (fail open, see the module documentation).
    async fn claim(&self, token: &str) -> bool {
        let key = format!("{}{token}", self.prefix);
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        let answer = self
            .redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        match answer {
            Ok(set) => set.is_some(),
            Err(e) => {
                metrics::counter!("webhook_replay_check_errors_total").increment(1);
                tracing::warn!(error = %e, "cannot check the Mailgun token for reuse; accepting (signature and timestamp verified)");
                true
            }
        }
    }

    /// Forgets `token` (its request failed and will be retried).
    async fn release(&self, token: &str) {
        let key = format!("{}{token}", self.prefix);
        if let Err(e) = self
            .redis
            .run(|mut c| async move { redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await })
            .await
        {
            tracing::warn!(error = %e, "cannot release the Mailgun token; the provider's retry will be refused as a replay");
        }
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        "webhook_events_total",
        "Provider webhook events by provider and outcome (recorded, unknown_notification, ignored, invalid, failed)."
    );
    metrics::describe_counter!(
        "webhook_signature_failures_total",
        "Provider webhook requests refused by provider and reason (missing, invalid, expired, replayed)."
    );
    metrics::describe_counter!(
        "webhook_suppressions_total",
        "Addresses suppressed in user-svc from provider webhooks, by provider and reason."
    );
    metrics::describe_counter!(
        "webhook_replay_check_errors_total",
        "Mailgun token checks skipped because Redis could not answer (accepted: fail open)."
    );
}
