//! `/api/v1/unsubscribe?token=...`: the one-click unsubscribe link of every email (RFC 8058),
//! without a login: the signed token is the authority ([`crate::unsubscribe`]).
//!
//! - `POST` with the form body `List-Unsubscribe=One-Click` (what mail clients send for
//!   `List-Unsubscribe-Post`, and what the confirmation page's form sends) turns the user's
//!   preference for the token's channel off. That is its whole effect: the address is not
//!   put on the suppression list, so the user can turn the channel on again from their
//!   preferences, with no operator involved. Repeating it changes nothing more.
//! - `GET` changes nothing (mail scanners and link previews fetch links): it shows a small
//!   page whose button sends that `POST`.
//!
//! A malformed token answers 400, an altered or foreign one and an expired one 401, each in
//! the envelope and without changing anything. Tokens longer than 256 characters and bodies
//! over 1 KiB are refused before any work.

use std::collections::HashMap;

use actix_web::{http::header::ContentType, web, HttpResponse};
use anyhow::Context;
use chrono::Utc;
use notify_kit::{ApiError, ApiResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::{
    db::preferences,
    unsubscribe::{TokenError, Unsubscribe, MAX_TOKEN_LEN, PATH},
};

/// Largest accepted `POST` body (the one-click body is 26 bytes).
const MAX_BODY_BYTES: usize = 1024;
/// The body RFC 8058 prescribes.
const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// Registers `GET` and `POST /api/v1/unsubscribe`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(confirm))
        .route(PATH, web::post().to(unsubscribe));
}

/// What a one-click unsubscribe answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unsubscribed {
    /// The channel turned off (`email`).
    pub channel: String,
    /// Always true: the preference is off now.
    pub unsubscribed: bool,
}

/// The token of the query string, checked: the only parameter, at most 256 characters.
fn verified(state: &AppState, query: &HashMap<String, String>) -> Result<(String, Unsubscribe), ApiError> {
    if let Some(other) = query.keys().find(|k| k.as_str() != "token") {
        return Err(ApiError::field(
            other.clone(),
            "unknown query parameter; expected token",
        ));
    }
    let token = query
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the unsubscribe link has no token".into()))?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::BadRequest(TokenError::Malformed.to_string()));
    }
    match state.links.verify(token, Utc::now()) {
        Ok(found) => Ok((token.clone(), found)),
        Err(e @ TokenError::Malformed) => Err(ApiError::BadRequest(e.to_string())),
        Err(e @ (TokenError::BadSignature | TokenError::Expired)) => {
            tracing::info!(reason = %e, "unsubscribe link refused");
            Err(ApiError::Unauthorized(e.to_string()))
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The confirmation page of an unsubscribe link: changes nothing, offers the button.
#[utoipa::path(
    get,
    path = "/api/v1/unsubscribe",
    tag = "unsubscribe",
    params(("token" = String, Query, description = "The signed token of the link")),
    responses(
        (status = 200, description = "An HTML page with a button that sends the one-click POST", content_type = "text/html"),
        (status = 400, description = "Malformed or missing token"),
        (status = 401, description = "Altered, foreign or expired token"),
        (status = 422, description = "A query parameter other than `token`")
    )
)]
pub async fn confirm(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (token, found) = verified(&state, &query)?;
    let action = html_escape(&state.links.url_of(&token));
    let channel = found.channel.as_str();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\"><title>Unsubscribe</title></head>\n\
         <body><h1>Unsubscribe from {channel} notifications?</h1>\n\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form>\n</body></html>\n"
    );
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::html())
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(page))
}

/// RFC 8058 one-click unsubscribe: turns the preference of the token's channel off.
#[utoipa::path(
    post,
    path = "/api/v1/unsubscribe",
    tag = "unsubscribe",
    params(("token" = String, Query, description = "The signed token of the link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`List-Unsubscribe=One-Click`"),
    responses(
        (status = 200, description = "The preference is off", body = Unsubscribed),
        (status = 400, description = "Malformed or missing token, or not the one-click body"),
        (status = 401, description = "Altered, foreign or expired token"),
        (status = 404, description = "The user no longer exists"),
        (status = 413, description = "Body over 1 KiB"),
        (status = 422, description = "A query parameter other than `token`")
    )
)]
pub async fn unsubscribe(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (_, found) = verified(&state, &query)?;
    let body = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES })?
        .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
    let one_click = std::str::from_utf8(&body).is_ok_and(|text| text.split('&').any(|pair| pair.trim() == ONE_CLICK));
    if !one_click {
        return Err(ApiError::BadRequest(format!(
            "the body must be the form `{ONE_CLICK}` (RFC 8058)"
        )));
    }
    let user_id = found.user_id;
    if !preferences::turn_off(&state.pool, user_id, found.channel)
        .await
        .context("failed to turn the preference off")?
    {
        return Err(ApiError::NotFound("this user no longer exists".into()));
    }
    state.invalidate(user_id).await;
    tracing::info!(%user_id, channel = found.channel.as_str(), "unsubscribed through the one-click link");
    Ok(HttpResponse::Ok().json(ApiResponse::ok(
        Unsubscribed {
            channel: found.channel.as_str().to_string(),
            unsubscribed: true,
        },
        "unsubscribed",
    )))
}
