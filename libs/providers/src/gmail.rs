//! Email through the Gmail API: `POST {base}/gmail/v1/users/{user}/messages/send` with
//! `{"raw": base64url(RFC 822 message)}`, authorised by an OAuth2 access token from a
//! service-account key with domain-wide delegation (scope `gmail.send`, acting as the
//! sending user). Gmail sends the message as that user: the `From` must be the user or one
//! of their verified aliases.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use base64::Engine as _;
use notify_kit::settings::{self, SettingsError};
use notify_worker::provider::{Delivery, Provider, ProviderFailure, ProviderReceipt};
use reqwest::{header::HeaderMap, StatusCode, Url};
use secrecy::ExposeSecret;

use crate::{
    email::{Email, SenderSettings},
    google_auth::{ServiceAccountKey, TokenSource},
    http,
};

/// The OAuth scope to send mail and nothing else.
pub const GMAIL_SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";

/// How long to wait after a Gmail quota refusal that gave no `Retry-After`.
const QUOTA_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of [`GmailProvider`], from `APP_GMAIL_*`.
#[derive(Debug, Clone)]
pub struct GmailSettings {
    /// `APP_GMAIL_SERVICE_ACCOUNT_JSON` (the key JSON, secret) or
    /// `APP_GMAIL_SERVICE_ACCOUNT_FILE` (a path to it): one is required.
    pub key: ServiceAccountKey,
    /// `APP_GMAIL_USER` (required): the Workspace user the service account acts as (the
    /// assertion's `sub`), and the sender.
    pub user: String,
    /// `APP_GMAIL_BASE_URL` (default `https://gmail.googleapis.com`).
    pub base_url: String,
    /// `APP_GMAIL_TIMEOUT_MS`: limit of one request, token exchange included (default 10000).
    pub timeout: Duration,
    /// `APP_EMAIL_FROM`, `APP_EMAIL_MESSAGE_ID_DOMAIN` (shared by every email provider).
    pub sender: SenderSettings,
}

impl GmailSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let s = Self {
            key: ServiceAccountKey::from_env("APP_GMAIL_SERVICE_ACCOUNT_JSON", "APP_GMAIL_SERVICE_ACCOUNT_FILE")?,
            user: settings::required("APP_GMAIL_USER")?,
            base_url: settings::string("APP_GMAIL_BASE_URL", "https://gmail.googleapis.com"),
            timeout: settings::millis("APP_GMAIL_TIMEOUT_MS", 10_000)?,
            sender: SenderSettings::from_env()?,
        };
        s.send_url()?;
        Ok(s)
    }

    fn send_url(&self) -> Result<Url, SettingsError> {
        if !self.user.contains('@') || self.user.contains('/') {
            return Err(SettingsError::invalid(
                "APP_GMAIL_USER",
                "must be the sending user's address",
            ));
        }
        crate::api_url(
            &self.base_url,
            &format!("/gmail/v1/users/{}/messages/send", self.user),
            "APP_GMAIL_BASE_URL",
        )
    }
}

/// Delivers email through the Gmail API. Share it (`Arc`).
pub struct GmailProvider {
    client: reqwest::Client,
    url: Url,
    tokens: Arc<TokenSource>,
    sender: SenderSettings,
}

impl GmailProvider {
    pub fn new(settings: &GmailSettings) -> Result<Self, SettingsError> {
        let tokens = TokenSource::new(
            settings.key.clone(),
            GMAIL_SEND_SCOPE,
            Some(settings.user.clone()),
            settings.timeout,
        )?;
        Self::with_tokens(settings, Arc::new(tokens))
    }

    /// [`GmailProvider::new`] with a given token source (tests: an injected clock).
    pub fn with_tokens(settings: &GmailSettings, tokens: Arc<TokenSource>) -> Result<Self, SettingsError> {
        Ok(Self {
            client: http::client(settings.timeout, "APP_GMAIL_TIMEOUT_MS")?,
            url: settings.send_url()?,
            tokens,
            sender: settings.sender.clone(),
        })
    }

    async fn post(&self, raw: &str) -> Result<(StatusCode, HeaderMap, String), ProviderFailure> {
        let token = self.tokens.access_token().await?;
        let response = self
            .client
            .post(self.url.clone())
            .bearer_auth(token.expose_secret())
            .json(&serde_json::json!({ "raw": raw }))
            .send()
            .await
            .map_err(|e| http::request_failed("the Gmail API", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        Ok((status, headers, response.text().await.unwrap_or_default()))
    }
}

#[async_trait]
impl Provider for GmailProvider {
    fn name(&self) -> &'static str {
        "gmail"
    }

    #[tracing::instrument(name = "gmail_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let message = Email::compose(delivery, &self.sender)?.to_message()?;
        let raw = base64::engine::general_purpose::URL_SAFE.encode(message.formatted());
        let (mut status, mut headers, mut body) = self.post(&raw).await?;
        if status == StatusCode::UNAUTHORIZED {
            // The token may have been revoked or expired early: one new token, one retry.
            self.tokens.invalidate().await;
            (status, headers, body) = self.post(&raw).await?;
        }
        if status.is_success() {
            return Ok(ProviderReceipt {
                provider_message_id: http::json_str(&body, "id"),
                provider: Some("gmail"),
            });
        }
        Err(classify(status, &headers, &body))
    }
}

/// Classifies a refusal from the Gmail API's documented answers: 400 refuses the message
/// (the recipient when it names the `To` header or a recipient); 403 with a rate or quota
/// reason is transient with a back-off, any other 403 (scope, delegation, policy) and a 401
/// that survived a new token are ours to fix; 429 and 5xx transient.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> ProviderFailure {
    let (reason, message) = error_detail(body);
    let detail = format!("{reason}: {message}");
    if status == StatusCode::FORBIDDEN
        && matches!(
            reason.as_str(),
            "rateLimitExceeded" | "userRateLimitExceeded" | "dailyLimitExceeded" | "quotaExceeded"
        )
    {
        let wait = http::retry_after(headers).unwrap_or(QUOTA_BACKOFF);
        return ProviderFailure::transient(format!("the Gmail API answered 403: {detail}"))
            .with_retry_after(Some(wait));
    }
    if let Some(failure) = http::common_class("the Gmail API", status, headers, &detail) {
        return failure;
    }
    let what = format!("the Gmail API answered {}: {detail}", status.as_u16());
    let lower = message.to_ascii_lowercase();
    if status == StatusCode::BAD_REQUEST && (lower.contains("to header") || lower.contains("recipient")) {
        ProviderFailure::recipient(what)
    } else {
        ProviderFailure::permanent(what)
    }
}

/// `error.errors[0].reason` (else `error.status`) and `error.message` of a Google API error.
fn error_detail(body: &str) -> (String, String) {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = json.as_ref().and_then(|j| j.get("error"));
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or("").to_string();
    let reason = text(error.and_then(|e| e.pointer("/errors/0/reason")));
    let reason = if reason.is_empty() {
        text(error.and_then(|e| e.get("status")))
    } else {
        reason
    };
    let message = match error.and_then(|e| e.get("message")) {
        Some(m) => text(Some(m)),
        None => body.chars().take(300).collect(),
    };
    (reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_worker::provider::FailureKind;

    fn google_error(code: u16, reason: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"message": message, "domain": "usageLimits", "reason": reason}]}})
        .to_string()
    }

    #[test]
    fn quota_refusals_are_transient_with_a_back_off() {
        for reason in ["rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded"] {
            let f = classify(
                StatusCode::FORBIDDEN,
                &HeaderMap::new(),
                &google_error(403, reason, "slow down"),
            );
            assert!(f.is_transient() && !f.alert, "{reason}");
            assert_eq!(f.retry_after, Some(QUOTA_BACKOFF));
        }
    }

    #[test]
    fn other_refusals_of_access_are_ours_to_fix() {
        let f = classify(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            &google_error(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            ),
        );
        assert!(f.is_transient() && f.alert);
    }

    #[test]
    fn an_invalid_to_header_refuses_the_recipient() {
        let f = classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            &google_error(400, "invalidArgument", "Invalid To header"),
        );
        assert_eq!(f.kind, FailureKind::Recipient);
    }
}
