//! `POST /api/v1/{channel}/status/`: delivery reports from providers or internal systems.
//!
//! A report is not applied here: it becomes a `NotificationStatusChanged` event in the outbox
//! (so it is durable when we answer 202) and the status projector applies it through the same
//! state machine as the workers' events.

use actix_web::{web, HttpResponse};
use anyhow::Context;
use chrono::Utc;
use notify_kit::{
    auth::{Caller, SCOPE_STATUS_WRITE},
    correlation::{CorrelationId, TraceParent},
    ApiError, ApiResponse,
};
use notify_schemas::{ids::NotificationId, Channel};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::{domain::DeliveryReport, outbox::ReportedStatus};

/// Registers `POST /api/v1/{channel}/status/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/{channel}/status/", web::post().to(report));
}

/// What a report answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportAccepted {
    #[schema(value_type = uuid::Uuid)]
    pub notification_id: NotificationId,
    pub status: String,
}

/// Accepts a delivery report for a notification of `channel`.
#[utoipa::path(
    post,
    path = "/api/v1/{channel}/status/",
    tag = "notifications",
    params(("channel" = String, Path, description = "`email` or `push`")),
    request_body = crate::domain::DeliveryReportBody,
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
    state.limit_caller(&caller).await?;
    let channel: Channel = path
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no channel `{path}` (email or push)")))?;
    let report = DeliveryReport::parse(&body, Utc::now()).map_err(ApiError::Validation)?;
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
    crate::outbox::enqueue_status_change(
        &state.pool,
        &correlation,
        &trace,
        ReportedStatus {
            notification_id: report.notification_id,
            channel,
            status: report.status,
            attempt: attempts,
            occurred_at: report.timestamp,
            error: report.error,
            provider: format!("report:{}", caller.subject),
            source: "provider-report",
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
