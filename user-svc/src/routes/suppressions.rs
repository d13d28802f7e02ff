//! `/api/v1/suppressions/...`: the suppression list, for operators and the provider
//! webhooks. Reading needs `suppressions:read`, adding and lifting `suppressions:write`.
//!
//! An entry is keyed by channel and normalised address (email: lower-cased). Putting an
//! entry again keeps its first `created_at` and moves `updated_at`; its reason (with source
//! and detail) changes only to a stronger one (`complaint` > `unsubscribe` > `hard_bounce` >
//! `manual`), so redelivered and out-of-order provider events are harmless. Every change
//! invalidates the cached recipient of the user with that email address, so the workers see
//! it at their next lookup.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_kit::{
    auth::{Caller, SCOPE_SUPPRESSIONS_READ, SCOPE_SUPPRESSIONS_WRITE},
    pagination::PageRequest,
    ApiError, ApiResponse, FieldError,
};
use notify_schemas::Channel;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::{
    db::suppressions::{self as db, Suppression},
    domain::{NewSuppression, SuppressionTarget},
};

/// Registers the `/api/v1/suppressions/...` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/suppressions/", web::get().to(list))
        .route("/api/v1/suppressions/{channel}/{address}", web::get().to(get))
        .route("/api/v1/suppressions/{channel}/{address}", web::put().to(put))
        .route("/api/v1/suppressions/{channel}/{address}", web::delete().to(delete));
}

/// An entry of the suppression list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    /// `email` or `push`.
    pub channel: String,
    /// The address as stored: an email address lower-cased, or a device token.
    pub address: String,
    /// `hard_bounce`, `complaint`, `unsubscribe` or `manual`.
    pub reason: String,
    /// Who said so (`sendgrid`, `mailgun`, `operator:<subject>`, ...).
    pub source: String,
    pub detail: Option<String>,
    /// When the address was first suppressed.
    pub created_at: DateTime<Utc>,
    /// When it was last put (a repeated event moves it).
    pub updated_at: DateTime<Utc>,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> Self {
        Self {
            channel: s.channel,
            address: s.address,
            reason: s.reason,
            source: s.source,
            detail: s.detail,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

fn target(path: web::Path<(String, String)>) -> Result<SuppressionTarget, ApiError> {
    let (channel, address) = path.into_inner();
    SuppressionTarget::parse(&channel, &address).map_err(ApiError::Validation)
}

fn not_suppressed(target: &SuppressionTarget) -> ApiError {
    ApiError::NotFound(format!("{} is not suppressed on {}", target.address(), target.channel))
}

/// Drops the cached recipient of every user whose delivery the change affects.
async fn invalidate(state: &AppState, target: &SuppressionTarget) -> Result<(), ApiError> {
    let users = db::users_to_invalidate(&state.pool, target)
        .await
        .context("failed to find the users of the address")?;
    for user in users {
        state.invalidate(user).await;
    }
    Ok(())
}

/// Lists suppressions, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/suppressions/",
    tag = "suppressions",
    params(
        ("channel" = Option<String>, Query, description = "`email` or `push` (default: both)"),
        ("page" = Option<u32>, Query, description = "1-based page (default 1)"),
        ("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)")
    ),
    responses(
        (status = 200, description = "A page of entries; `meta` has the counts", body = [SuppressionView]),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `suppressions:read`"),
        (status = 422, description = "Bad `channel`, `page` or `limit`, or an unknown parameter")
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_SUPPRESSIONS_READ)?;
    let mut errors: Vec<FieldError> = query
        .keys()
        .filter(|k| !matches!(k.as_str(), "channel" | "page" | "limit"))
        .map(|k| FieldError::new(k.clone(), "unknown query parameter; expected channel, page, limit"))
        .collect();
    let channel = match query.get("channel").map(|c| c.parse::<Channel>()) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => {
            errors.push(FieldError::new("channel", "must be `email` or `push`"));
            None
        }
    };
    let page = PageRequest::parse(
        query.get("page").map(String::as_str),
        query.get("limit").map(String::as_str),
    )
    .map_err(|e| errors.extend(e))
    .ok();
    let Some(page) = page.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let (rows, total) = db::list(&state.pool, channel, page.offset(), page.limit_i64())
        .await
        .context("failed to list suppressions")?;
    let views: Vec<SuppressionView> = rows.into_iter().map(SuppressionView::from).collect();
    Ok(HttpResponse::Ok().json(ApiResponse::page(views, "suppressions", page.meta(total))))
}

/// One entry: whether an address is suppressed on a channel, and why.
#[utoipa::path(
    get,
    path = "/api/v1/suppressions/{channel}/{address}",
    tag = "suppressions",
    params(
        ("channel" = String, Path, description = "`email` or `push`"),
        ("address" = String, Path, description = "Email address (any case) or device token, percent-encoded")
    ),
    responses(
        (status = 200, description = "Suppressed", body = SuppressionView),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `suppressions:read`"),
        (status = 404, description = "Not suppressed"),
        (status = 422, description = "Bad `channel` or `address`")
    ),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_SUPPRESSIONS_READ)?;
    let target = target(path)?;
    let entry = db::get(&state.pool, &target)
        .await
        .context("failed to read the suppression")?
        .ok_or_else(|| not_suppressed(&target))?;
    Ok(HttpResponse::Ok().json(ApiResponse::ok(SuppressionView::from(entry), "suppressed")))
}

/// Suppresses an address (idempotent). A new entry answers 201; an existing one 200 with the
/// entry as stored: its first `created_at` kept, `updated_at` moved, and reason, source and
/// detail replaced only when the new reason is stronger (`complaint` > `unsubscribe` >
/// `hard_bounce` > `manual`). `source` defaults to `operator:<token subject>`.
#[utoipa::path(
    put,
    path = "/api/v1/suppressions/{channel}/{address}",
    tag = "suppressions",
    params(
        ("channel" = String, Path, description = "`email` or `push`"),
        ("address" = String, Path, description = "Email address (any case) or device token, percent-encoded")
    ),
    request_body = crate::domain::SuppressionBody,
    responses(
        (status = 201, description = "Suppressed now", body = SuppressionView),
        (status = 200, description = "Was suppressed already; the entry as stored", body = SuppressionView),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `suppressions:write`"),
        (status = 422, description = "Validation failed; `error.details` names each field")
    ),
    security(("bearer" = []))
)]
pub async fn put(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_SUPPRESSIONS_WRITE)?;
    let (target, new) = match (target(path), NewSuppression::parse(&body)) {
        (Ok(t), Ok(n)) => (t, n),
        (t, n) => {
            let mut errors = Vec::new();
            if let Err(ApiError::Validation(e)) = t {
                errors.extend(e);
            }
            if let Err(e) = n {
                errors.extend(e);
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let source = new
        .source
        .clone()
        .unwrap_or_else(|| format!("operator:{}", caller.subject.chars().take(90).collect::<String>()));
    let (entry, created) = db::upsert(&state.pool, &target, &new, &source)
        .await
        .context("failed to store the suppression")?;
    invalidate(&state, &target).await?;
    tracing::info!(
        channel = %target.channel,
        reason = entry.reason.as_str(),
        source = entry.source.as_str(),
        created,
        "address suppressed"
    );
    let view = SuppressionView::from(entry);
    Ok(if created {
        HttpResponse::Created().json(ApiResponse::ok(view, "suppressed"))
    } else {
        HttpResponse::Ok().json(ApiResponse::ok(view, "already suppressed"))
    })
}

/// Lifts a suppression: the address may be sent to again.
#[utoipa::path(
    delete,
    path = "/api/v1/suppressions/{channel}/{address}",
    tag = "suppressions",
    params(
        ("channel" = String, Path, description = "`email` or `push`"),
        ("address" = String, Path, description = "Email address (any case) or device token, percent-encoded")
    ),
    responses(
        (status = 204, description = "Lifted"),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `suppressions:write`"),
        (status = 404, description = "Not suppressed"),
        (status = 422, description = "Bad `channel` or `address`")
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_SUPPRESSIONS_WRITE)?;
    let target = target(path)?;
    if !db::delete(&state.pool, &target)
        .await
        .context("failed to lift the suppression")?
    {
        return Err(not_suppressed(&target));
    }
    invalidate(&state, &target).await?;
    tracing::info!(channel = %target.channel, "suppression lifted");
    Ok(HttpResponse::NoContent().finish())
}
