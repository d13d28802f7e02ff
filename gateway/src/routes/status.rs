//! `POST /api/v1/{channel}/status/`: delivery reports from providers or internal systems.
//!
//! A report is not applied here: it becomes a `NotificationStatusChanged` event in the outbox
//! (so it is durable when we answer 202) and the status projector applies it through the same
//! state machine as the workers' events.

use actix_web::{web, HttpResponse};
use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_kit::{
    auth::{Caller, SCOPE_STATUS_WRITE},
    correlation::{CorrelationId, TraceParent},
    validate, ApiError, ApiResponse, FieldError,
};
use notify_schemas::{
    headers, topics::Topics, Channel, DeliveryStatus, NotificationStatusChanged, NOTIFICATION_STATUS,
};
use notify_store::notifications::NewOutboxMessage;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;

const FIELDS: [&str; 4] = ["notification_id", "status", "timestamp", "error"];

/// Body of a delivery report.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusReportBody {
    notification_id: Uuid,
    /// `sent`, `delivered`, `bounced` or `failed`.
    #[schema(example = "delivered")]
    status: String,
    /// When it happened (RFC 3339); defaults to now.
    timestamp: Option<DateTime<Utc>>,
    /// What went wrong, for `bounced`/`failed`.
    error: Option<String>,
}

/// What a report answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportAccepted {
    pub notification_id: Uuid,
    pub status: String,
}

struct Report {
    notification_id: Uuid,
    status: DeliveryStatus,
    timestamp: DateTime<Utc>,
    error: Option<String>,
}

fn parse(body: &Value) -> Result<Report, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = validate::object(body, "", &mut errors) else {
        return Err(errors);
    };
    validate::reject_unknown(obj, &FIELDS, "", &mut errors);
    let id = validate::required_str(obj, "notification_id", "", &mut errors).and_then(|s| {
        Uuid::try_parse(s)
            .map_err(|_| errors.push(FieldError::new("notification_id", "must be a UUID")))
            .ok()
    });
    let status = validate::required_str(obj, "status", "", &mut errors).and_then(|s| match s {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "bounced" => Some(DeliveryStatus::Bounced),
        "failed" => Some(DeliveryStatus::Failed),
        _ => {
            errors.push(FieldError::new(
                "status",
                "must be one of sent, delivered, bounced, failed",
            ));
            None
        }
    });
    let timestamp = match validate::optional_str(obj, "timestamp", "", &mut errors) {
        Err(()) => None,
        Ok(None) => Some(Utc::now()),
        Ok(Some(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                errors.push(FieldError::new(
                    "timestamp",
                    "must be an RFC 3339 date-time, e.g. 2025-11-12T10:00:00Z",
                ))
            })
            .ok(),
    };
    let error = validate::optional_str(obj, "error", "", &mut errors)
        .ok()
        .flatten()
        .map(|s| s.chars().take(2000).collect());
    match (id, status, timestamp) {
        (Some(notification_id), Some(status), Some(timestamp)) if errors.is_empty() => Ok(Report {
            notification_id,
            status,
            timestamp,
            error,
        }),
        _ => Err(errors),
    }
}

/// Accepts a delivery report for a notification of `channel`.
#[utoipa::path(
    post,
    path = "/api/v1/{channel}/status/",
    tag = "notifications",
    params(("channel" = String, Path, description = "`email` or `push`")),
    request_body = StatusReportBody,
    responses(
        (status = 202, description = "Recorded; applied asynchronously", body = ReportAccepted),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `notifications:status`"),
        (status = 404, description = "Unknown channel or notification"),
        (status = 422, description = "Validation failed")
    ),
    security(("bearer" = []))
)]
pub async fn report(
    caller: Caller,
    correlation: CorrelationId,
    trace: TraceParent,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_STATUS_WRITE)?;
    let channel: Channel = path
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no channel `{path}` (email or push)")))?;
    let report = parse(&body).map_err(ApiError::Validation)?;
    let (stored_channel, attempts) = notify_store::outbox::notification_channel(&state.pool, report.notification_id)
        .await
        .context("failed to read the notification")?
        .ok_or_else(|| ApiError::NotFound(format!("notification {} not found", report.notification_id)))?;
    if stored_channel != channel.as_str() {
        return Err(ApiError::field(
            "notification_id",
            format!(
                "notification {} is a {stored_channel} notification, not {channel}",
                report.notification_id
            ),
        ));
    }
    let event = NotificationStatusChanged {
        notification_id: report.notification_id.into(),
        channel,
        status: report.status,
        attempt: attempts,
        occurred_at: report.timestamp.timestamp_millis(),
        error: report.error,
        provider: Some(format!("report:{}", caller.subject)),
        correlation_id: correlation.as_str().to_string(),
        template_version: None,
        language: None,
        source: "provider-report".into(),
    };
    let key = report.notification_id.to_string();
    let payload = serde_json::to_value(&event).context("failed to serialise the event")?;
    let hdrs = json!({
        headers::NOTIFICATION_ID: key,
        headers::CORRELATION_ID: correlation.as_str(),
        headers::TRACEPARENT: trace.0,
    });
    let topic = Topics::new("").status();
    notify_store::outbox::enqueue(
        &state.pool,
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
    .context("failed to store the report")?;
    let status = serde_json::to_value(report.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(HttpResponse::Accepted().json(ApiResponse::ok(
        ReportAccepted {
            notification_id: report.notification_id,
            status,
        },
        "report accepted",
    )))
}
