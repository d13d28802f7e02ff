//! `POST /api/v1/auth/login`: email + password → a short-lived end-user token, behind the
//! lockouts and the bounded hashing queue of [`crate::login_guard`].

use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use notify_kit::{auth::TokenUse, ApiError, ApiResponse};
use notify_schemas::ids::UserId;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::{db::users as db, domain::Login, SCOPE_USERS_SELF};

/// Registers `POST /api/v1/auth/login`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(login));
}

/// A login token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// JWT with `token_use = user`, `sub` = the user id and the scope `users:self`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
}

/// Exchanges credentials for a user token. Unknown email and wrong password answer alike.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = crate::domain::LoginBody,
    responses(
        (status = 200, description = "Logged in", body = TokenView),
        (status = 401, description = "Invalid email or password"),
        (status = 422, description = "A field is missing or unknown"),
        (status = 429, description = "Too many failed logins for this account or address (`Retry-After`)"),
        (status = 503, description = "Too many logins in progress, or the login limiter is unavailable (`Retry-After`)")
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let login = Login::parse(&body).map_err(ApiError::Validation)?;
    let guard = &state.login_guard;
    let attempt = guard.attempt(&req, &login.email);
    guard.check(&attempt).await?;
    let _admission = guard.admit(&attempt).await?;
    let account = db::credentials(&state.pool, &login.email)
        .await
        .context("failed to read credentials")?;
    let (user_id, hash) = match account {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let valid = state.passwords.verify(login.password.into_secret(), hash).await?;
    let Some(user_id) = user_id.filter(|_| valid) else {
        guard.failed(&attempt).await;
        tracing::info!("login refused");
        return Err(ApiError::Unauthorized("invalid email or password".into()));
    };
    let token = state
        .issuer
        .issue(
            &user_id.to_string(),
            TokenUse::User,
            &[SCOPE_USERS_SELF],
            state.user_token_ttl,
        )
        .context("failed to sign the token")?;
    guard.succeeded(&attempt).await;
    tracing::info!(%user_id, "login succeeded");
    let view = TokenView {
        access_token: token,
        token_type: "Bearer",
        expires_in: state.user_token_ttl.as_secs(),
        user_id,
    };
    Ok(HttpResponse::Ok().json(ApiResponse::ok(view, "logged in")))
}
