//! `POST /api/v1/notifications/` and `GET /api/v1/notifications/{id}`.

use actix_web::{http::StatusCode, web, HttpResponse};
use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_intake::{accept, Acceptance, Submission};
use notify_kit::{
    auth::{Caller, TokenUse, SCOPE_READ, SCOPE_SEND},
    correlation::{CorrelationId, TraceParent},
    ApiError, ApiResponse,
};
use notify_schemas::ids::{NotificationId, UserId};
use notify_store::notifications as store;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::domain::NotificationRequest;
/// What an accepted notification answers (shared with the ingest service's idempotency records).
pub use notify_intake::Accepted;

/// Header set on a response replayed for a repeated `request_id`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Registers `POST /api/v1/notifications/` and `GET /api/v1/notifications/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/notifications/", web::post().to(create))
        .route("/api/v1/notifications/{id}", web::get().to(get));
}

/// One step of a notification's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    pub attempt: i32,
    /// Why it failed or was skipped; for a push that some device did not get, every
    /// device's result (`devices: android fcm {device id}: sent; web webpush {device id}:
    /// gone, removed: …`).
    pub error: Option<String>,
    pub provider: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// A notification's status and history.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    #[schema(value_type = uuid::Uuid)]
    pub notification_id: NotificationId,
    pub request_id: String,
    pub notification_type: String,
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
    pub template_code: String,
    pub priority: i16,
    pub status: String,
    pub attempts: i32,
    /// The latest `error` of the history (see [`HistoryEntry::error`]).
    pub last_error: Option<String>,
    /// Template version used for delivery (once sent).
    pub template_version: Option<i32>,
    /// Template language used for delivery (once sent).
    pub language: Option<String>,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<HistoryEntry>,
}

/// Accepts a notification for asynchronous delivery.
#[utoipa::path(
    post,
    path = "/api/v1/notifications/",
    tag = "notifications",
    request_body = crate::domain::SendNotificationBody,
    responses(
        (status = 202, description = "Accepted (or the replay of an identical earlier request)"),
        (status = 400, description = "Body is not JSON"),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `notifications:send`"),
        (status = 409, description = "request_id reused with a different body"),
        (status = 413, description = "Body too large"),
        (status = 422, description = "Validation failed; `error.details` names each field"),
        (status = 429, description = "Over the caller's or the recipient's rate limit (`Retry-After`, `RateLimit-*`)")
    ),
    security(("bearer" = []))
)]
pub async fn create(
    caller: Caller,
    correlation: CorrelationId,
    trace: TraceParent,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_SEND)?;
    state.limit_caller(&caller).await?;
    let request = NotificationRequest::parse(&body).map_err(ApiError::Validation)?;
    if let Some(limits) = &state.limits {
        limits.recipient(request.user_id).await?;
    }
    if let Some(references) = &state.references {
        let errors = references
            .check(request.user_id, request.template_code.as_str(), request.channel)
            .await;
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
    }
    let submission = Submission {
        request: &request,
        caller: &caller.subject,
        correlation_id: correlation.as_str(),
        traceparent: &trace.0,
        idempotency_ttl: state.idempotency_ttl,
    };
    match accept(&state.pool, &submission)
        .await
        .context("failed to accept the notification")?
    {
        Acceptance::Created {
            notification_id,
            response_body,
        } => {
            state.relay_waker.wake();
            tracing::info!(%notification_id, channel = %request.channel, "notification accepted");
            Ok(HttpResponse::Accepted().json(response_body))
        }
        Acceptance::Replayed(stored) => {
            tracing::info!(notification_id = %stored.notification_id, "idempotent replay");
            let status =
                StatusCode::from_u16(u16::try_from(stored.status).unwrap_or(202)).unwrap_or(StatusCode::ACCEPTED);
            Ok(HttpResponse::build(status)
                .insert_header((REPLAYED_HEADER, "true"))
                .json(stored.body))
        }
        Acceptance::Conflict(_) => Err(ApiError::Conflict(format!(
            "request_id `{}` was already used with a different body; use a new request_id for a new notification",
            request.request_id.as_str()
        ))),
    }
}

/// A notification's status and history. Visible to the service that sent it, to tokens with
/// `notifications:read`, and to the recipient user.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/{id}",
    tag = "notifications",
    params(("id" = uuid::Uuid, Path, description = "Notification id")),
    responses(
        (status = 200, description = "The notification", body = NotificationView),
        (status = 401, description = "Missing or invalid token"),
        (status = 404, description = "No such notification (or not yours)"),
        (status = 429, description = "Over the caller's rate limit (`Retry-After`, `RateLimit-*`)")
    ),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    path: web::Path<NotificationId>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.limit_caller(&caller).await?;
    let id = path.into_inner();
    let not_found = || ApiError::NotFound(format!("notification {id} not found"));
    let (n, history) = store::get(&state.pool, id)
        .await
        .context("failed to read the notification")?
        .ok_or_else(not_found)?;
    let visible = caller.has_scope(SCOPE_READ)
        || (caller.token_use == TokenUse::Service && caller.subject == n.caller)
        || (caller.token_use == TokenUse::User && caller.subject == n.user_id.to_string());
    if !visible {
        return Err(not_found());
    }
    let view = NotificationView {
        notification_id: n.id,
        request_id: n.request_id,
        notification_type: n.channel,
        user_id: n.user_id,
        template_code: n.template_code,
        priority: n.priority,
        status: n.status,
        attempts: n.attempts,
        last_error: n.last_error,
        template_version: n.template_version,
        language: n.language,
        correlation_id: n.correlation_id,
        created_at: n.created_at,
        updated_at: n.updated_at,
        history: history
            .into_iter()
            .map(|h| HistoryEntry {
                status: h.status,
                attempt: h.attempt,
                error: h.error,
                provider: h.provider,
                occurred_at: h.occurred_at,
            })
            .collect(),
    };
    Ok(HttpResponse::Ok().json(ApiResponse::ok(view, "notification found")))
}
