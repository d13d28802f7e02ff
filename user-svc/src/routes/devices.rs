//! Devices: `/api/v1/users/{id}/push-tokens` (a user's devices) and `/api/v1/devices` (what
//! the push worker reports: devices used, devices a provider says are gone).
//!
//! Who may do what:
//! - list, register, delete a user's devices: as for the user's record (an end-user token
//!   with `users:self` for its own id; a service with `users:read` to list, `users:write` to
//!   change).
//! - A token that another user has **moves** only when the caller is authenticated as the
//!   new owner: an end-user token (`users:self`) of the user it is registered for. A
//!   service, even with `users:write`, gets `409`: it cannot tell a reinstall from a
//!   takeover. An operator who must move one deletes it from the old owner first (recorded
//!   as `removed`), then registers it (recorded as `registered`). Every move is recorded
//!   in `device_events` (from, to, who, when).
//! - `/api/v1/devices`: services with `users:devices:write` (the push worker) only.

use actix_web::{web, HttpResponse};
use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_kit::{
    auth::{Caller, TokenUse, SCOPE_USERS_DEVICES_WRITE},
    validate, ApiError, ApiResponse, FieldError,
};
use notify_schemas::ids::UserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    users::{authorize, not_found, Access},
    AppState,
};
use crate::{
    db::devices::{self as db, PushTokenRow, TokenAdded},
    domain::NewPushToken,
};

/// Longest path segment or body token looked up (a Web Push subscription as JSON fits).
const MAX_TOKEN_KEY: usize = 8192;
/// Longest `reason` of a gone device kept.
const MAX_REASON: usize = 500;

/// Registers the device routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/users/{id}/push-tokens", web::get().to(list))
        .route("/api/v1/users/{id}/push-tokens", web::post().to(register))
        .route("/api/v1/users/{id}/push-tokens/{device}", web::delete().to(remove))
        .route("/api/v1/devices", web::delete().to(remove_gone))
        .route("/api/v1/devices/used", web::post().to(mark_used));
}

/// A registered device.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushTokenView {
    pub id: Uuid,
    /// An FCM registration token, a OneSignal subscription id, or a Web Push subscription
    /// as JSON text.
    pub token: String,
    /// `android`, `ios` or `web`.
    pub platform: String,
    /// `fcm`, `webpush` or `onesignal`.
    pub provider: String,
    pub created_at: DateTime<Utc>,
    /// When a delivery last reached it (`null`: not yet).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PushTokenRow> for PushTokenView {
    fn from(t: PushTokenRow) -> Self {
        Self {
            id: t.id,
            platform: db::platform_of(&t.platform).as_str().to_string(),
            provider: db::provider_of(&t.provider).as_str().to_string(),
            token: t.token,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// Who did it, as `device_events.actor` records it.
pub fn actor(caller: &Caller) -> String {
    match caller.token_use {
        TokenUse::User => format!("user:{}", caller.subject),
        TokenUse::Service => format!("service:{}", caller.subject),
    }
}

/// The devices of a user, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/push-tokens",
    tag = "devices",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user's devices", body = [PushTokenView]),
        (status = 403, description = "Token lacks the scope"),
        (status = 404, description = "No such user (or not yours)")
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    authorize(&caller, id, Access::Read)?;
    let user = crate::db::users::get(&state.pool, id)
        .await
        .context("failed to read the user")?
        .ok_or_else(|| not_found(id))?;
    let devices: Vec<PushTokenView> = user.push_tokens.into_iter().map(PushTokenView::from).collect();
    Ok(HttpResponse::Ok().json(ApiResponse::ok(devices, "devices")))
}

/// Registers a device. Its token is checked for its provider's shape (see the body). A
/// token another user has moves to this user only for an end-user token of this user
/// (`users:self`); the move is recorded. A service gets `409` instead.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/push-tokens",
    tag = "devices",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = crate::domain::PushTokenBody,
    responses(
        (status = 201, description = "Registered (or registered again by the same user)", body = PushTokenView),
        (status = 404, description = "No such user (or not yours)"),
        (status = 409, description = "Another user has this token, and only that token's new owner may move it"),
        (status = 422, description = "Validation failed (`error.details` names the field, e.g. `token.keys.p256dh`), or too many devices")
    ),
    security(("bearer" = []))
)]
pub async fn register(
    caller: Caller,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    authorize(&caller, id, Access::Write)?;
    let token = NewPushToken::parse(&body, &state.device_defaults).map_err(ApiError::Validation)?;
    // `authorize` let a user token through only for its own id.
    let may_move = caller.token_use == TokenUse::User;
    match db::add(&state.pool, id, &token, may_move, &actor(&caller))
        .await
        .context("failed to register the device")?
    {
        TokenAdded::Done(device, moved_from) => {
            if let Some(previous) = moved_from {
                state.invalidate(previous).await;
                tracing::info!(user_id = %id, from_user = %previous, device_id = %device.id, "device moved to its new owner");
            }
            state.invalidate(id).await;
            tracing::info!(user_id = %id, device_id = %device.id, platform = token.platform.as_str(), provider = token.provider.as_str(), "device registered");
            Ok(HttpResponse::Created().json(ApiResponse::ok(PushTokenView::from(device), "device registered")))
        }
        TokenAdded::NoSuchUser => Err(not_found(id)),
        TokenAdded::TooMany => Err(ApiError::field(
            "token",
            format!(
                "a user may register at most {} devices; delete one first",
                db::MAX_PUSH_TOKENS
            ),
        )),
        TokenAdded::OwnedByAnother => Err(token_taken("token")),
    }
}

/// The answer when a token belongs to another user and this caller may not move it.
pub fn token_taken(field: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{field}: this device is registered to another user; only its new owner, signed in (a `users:self` token), can move it"
    ))
}

/// Deletes one of a user's devices, named by its id or its token.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/push-tokens/{device}",
    tag = "devices",
    params(
        ("id" = uuid::Uuid, Path, description = "User id"),
        ("device" = String, Path, description = "The device's id, or its token (URL-encoded)")
    ),
    responses(
        (status = 200, description = "Removed; the removed device", body = PushTokenView),
        (status = 404, description = "No such user or device (or not yours)")
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    caller: Caller,
    path: web::Path<(UserId, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, key) = path.into_inner();
    authorize(&caller, id, Access::Write)?;
    let no_device = || ApiError::NotFound("no such device for this user".into());
    if key.is_empty() || key.len() > MAX_TOKEN_KEY {
        return Err(no_device());
    }
    let removed = db::remove(&state.pool, id, &key, &actor(&caller))
        .await
        .context("failed to remove the device")?
        .ok_or_else(no_device)?;
    state.invalidate(id).await;
    tracing::info!(user_id = %id, device_id = %removed.id, "device removed");
    Ok(HttpResponse::Ok().json(ApiResponse::ok(PushTokenView::from(removed), "device removed")))
}

/// Body of `DELETE /api/v1/devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoneBody {
    /// The token the provider refused, as user-svc gave it.
    #[schema(value_type = String)]
    pub token: Option<Value>,
    /// What the provider said, e.g. `fcm: UNREGISTERED` (1 to 500 characters).
    #[schema(value_type = String, example = "fcm: UNREGISTERED")]
    pub reason: Option<Value>,
}

/// What `DELETE /api/v1/devices` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoneView {
    pub removed: bool,
    pub device_id: Uuid,
}

fn service_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.token_use != TokenUse::Service {
        return Err(ApiError::Forbidden(format!(
            "needs a service token with `{SCOPE_USERS_DEVICES_WRITE}`"
        )));
    }
    caller.require(SCOPE_USERS_DEVICES_WRITE)
}

/// Removes the device with this token, whoever has it, because a push provider said it is
/// gone (the push worker; recorded with the reason). `404` when no device has it (removed
/// already).
#[utoipa::path(
    delete,
    path = "/api/v1/devices",
    tag = "devices",
    request_body = GoneBody,
    responses(
        (status = 200, description = "Removed", body = GoneView),
        (status = 403, description = "Not a service token with `users:devices:write`"),
        (status = 404, description = "No device has this token"),
        (status = 422, description = "Validation failed")
    ),
    security(("bearer" = []))
)]
pub async fn remove_gone(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    service_only(&caller)?;
    let mut errors = Vec::new();
    let parsed = validate::body::<GoneBody>(&body, "", &mut errors);
    let (token, reason) = match &parsed {
        None => (None, None),
        Some(b) => (
            validate::string(b.token.as_ref(), "token", &mut errors),
            validate::string(b.reason.as_ref(), "reason", &mut errors),
        ),
    };
    if token.is_some_and(|t| t.is_empty() || t.len() > MAX_TOKEN_KEY) {
        errors.push(FieldError::new(
            "token",
            format!("must be 1 to {MAX_TOKEN_KEY} characters"),
        ));
    }
    if reason.is_some_and(|r| r.trim().is_empty() || r.chars().count() > MAX_REASON) {
        errors.push(FieldError::new(
            "reason",
            format!("must be 1 to {MAX_REASON} characters"),
        ));
    }
    let (Some(token), Some(reason)) = (token, reason) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let removed = db::remove_gone(&state.pool, token, reason.trim(), &actor(&caller))
        .await
        .context("failed to remove the gone device")?
        .ok_or_else(|| ApiError::NotFound("no device has this token".into()))?;
    let owner = UserId::from(removed.user_id);
    state.invalidate(owner).await;
    tracing::info!(user_id = %owner, device_id = %removed.id, reason = reason.trim(), "gone device removed");
    Ok(HttpResponse::Ok().json(ApiResponse::ok(
        GoneView {
            removed: true,
            device_id: removed.id,
        },
        "device removed",
    )))
}

/// Body of `POST /api/v1/devices/used`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsedBody {
    /// Ids of devices a delivery just reached: 1 to 100.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub device_ids: Option<Value>,
}

/// What `POST /api/v1/devices/used` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsedView {
    /// How many of the ids are devices (the others were removed meanwhile).
    pub updated: u64,
}

/// Sets `last_used_at` of devices a delivery reached (the push worker, one call per
/// notification).
#[utoipa::path(
    post,
    path = "/api/v1/devices/used",
    tag = "devices",
    request_body = UsedBody,
    responses(
        (status = 200, description = "Updated", body = UsedView),
        (status = 403, description = "Not a service token with `users:devices:write`"),
        (status = 422, description = "Validation failed")
    ),
    security(("bearer" = []))
)]
pub async fn mark_used(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    service_only(&caller)?;
    let mut errors = Vec::new();
    let ids = validate::body::<UsedBody>(&body, "", &mut errors).and_then(|b| match b.device_ids {
        Some(Value::Array(items)) if (1..=notify_lookup::MAX_USED_BATCH).contains(&items.len()) => {
            let ids: Vec<Uuid> = items
                .iter()
                .filter_map(|v| v.as_str().and_then(|s| Uuid::try_parse(s).ok()))
                .collect();
            if ids.len() == items.len() {
                Some(ids)
            } else {
                errors.push(FieldError::new("device_ids", "must hold device ids (UUIDs)"));
                None
            }
        }
        _ => {
            errors.push(FieldError::new(
                "device_ids",
                format!("must be an array of 1 to {} device ids", notify_lookup::MAX_USED_BATCH),
            ));
            None
        }
    });
    let Some(ids) = ids.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let updated = db::mark_used(&state.pool, &ids)
        .await
        .context("failed to mark devices used")?;
    Ok(HttpResponse::Ok().json(ApiResponse::ok(UsedView { updated }, "devices marked used")))
}
