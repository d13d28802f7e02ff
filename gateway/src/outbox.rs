//! Status changes reported from outside the pipeline (delivery reports, provider webhooks)
//! become `NotificationStatusChanged` events in the outbox: durable when the caller gets its
//! answer, and applied by the status projector through the same state machine as the
//! workers' events. Both entry points go through [`enqueue_status_change`].

use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_kit::correlation::{CorrelationId, TraceParent};
use notify_schemas::{
    headers, ids::NotificationId, topics::Topics, Channel, DeliveryStatus, NotificationStatusChanged,
    NOTIFICATION_STATUS,
};
use notify_store::notifications::NewOutboxMessage;
use serde_json::json;
use sqlx::PgPool;

/// A reported status change of a stored notification.
#[derive(Debug, Clone)]
pub struct ReportedStatus {
    pub notification_id: NotificationId,
    pub channel: Channel,
    pub status: DeliveryStatus,
    /// The notification's current attempt count (the report is about the latest attempt).
    pub attempt: i32,
    pub occurred_at: DateTime<Utc>,
    pub error: Option<String>,
    /// Who delivered or reported it (`sendgrid`, `report:<caller>`).
    pub provider: String,
    /// Which path reported it (`provider-report`, `provider-webhook`).
    pub source: &'static str,
}

/// Writes the status event of `change` to the outbox (keyed by the notification id, so it
/// stays in order with the notification's other status events).
pub async fn enqueue_status_change(
    pool: &PgPool,
    correlation: &CorrelationId,
    trace: &TraceParent,
    change: ReportedStatus,
) -> anyhow::Result<()> {
    let key = change.notification_id.to_string();
    let event = NotificationStatusChanged {
        notification_id: change.notification_id,
        channel: change.channel,
        status: change.status,
        attempt: change.attempt,
        occurred_at: change.occurred_at.timestamp_millis(),
        error: change.error,
        provider: Some(change.provider),
        correlation_id: correlation.as_str().to_string(),
        template_version: None,
        language: None,
        source: change.source.into(),
    };
    let payload = serde_json::to_value(&event).context("failed to serialise the status event")?;
    let hdrs = json!({
        headers::NOTIFICATION_ID: key,
        headers::CORRELATION_ID: correlation.as_str(),
        headers::TRACEPARENT: trace.0,
    });
    let topic = Topics::new("").status();
    notify_store::outbox::enqueue(
        pool,
        &NewOutboxMessage {
            shard: notify_store::shard_of(&key),
            topic: &topic,
            message_key: &key,
            event_type: NOTIFICATION_STATUS.subject,
            payload: &payload,
            headers: &hdrs,
        },
    )
    .await
    .context("failed to store the status event")?;
    Ok(())
}
