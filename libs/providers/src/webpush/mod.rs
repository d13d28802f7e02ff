//! Web Push (RFC 8030) straight to the browser's push service: the payload encrypted with
//! `aes128gcm` for the subscription's keys (RFC 8291, [`ece`]), the request signed with
//! VAPID (RFC 8292, [`vapid`]). The device token is the subscription JSON
//! ([`subscription`]).
//!
//! The payload, which the site's service worker reads in its `push` event:
//!
//! ```json
//! {"title": "…", "body": "…", "image": "https://…", "url": "https://… or app link",
//!  "tag": "<collapse key>", "sound": "…", "badge": "3",
//!  "data": {"notification_id": "…", "correlation_id": "…"}}
//! ```

pub mod ece;
pub mod subscription;
pub mod vapid;

use std::time::Duration;

use async_trait::async_trait;
use notify_kit::settings::{self, SettingsError};
use notify_worker::provider::{Delivery, Provider, ProviderFailure, ProviderReceipt};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

pub use subscription::{InvalidSubscription, WebPushSubscription};
pub use vapid::VapidKey;

use crate::{http, push};

/// Settings of [`WebPushProvider`]. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct WebPushSettings {
    /// `APP_VAPID_PRIVATE_KEY` (required, secret): the raw P-256 private scalar, base64url.
    pub vapid_private_key: SecretString,
    /// `APP_VAPID_SUBJECT` (required): `mailto:` or `https:` contact for push services.
    pub vapid_subject: String,
    /// `APP_WEBPUSH_TTL_SECONDS` (default 86400): `TTL` when the template sets none.
    pub default_ttl: u32,
    /// `APP_WEBPUSH_TIMEOUT_MS` (default 10000): limit of one request.
    pub timeout: Duration,
    /// `APP_WEBPUSH_ALLOW_HTTP` (default false): accept `http` endpoints (a local push
    /// service in development and tests only; registration never accepts them).
    pub allow_http: bool,
}

impl WebPushSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let s = Self {
            vapid_private_key: settings::secret("APP_VAPID_PRIVATE_KEY").ok_or_else(|| SettingsError::Missing {
                name: "APP_VAPID_PRIVATE_KEY".into(),
            })?,
            vapid_subject: settings::required("APP_VAPID_SUBJECT")?,
            default_ttl: settings::parse("APP_WEBPUSH_TTL_SECONDS", 86_400u32)?,
            timeout: settings::millis("APP_WEBPUSH_TIMEOUT_MS", 10_000)?,
            allow_http: settings::parse("APP_WEBPUSH_ALLOW_HTTP", false)?,
        };
        s.vapid_key()?;
        Ok(s)
    }

    fn vapid_key(&self) -> Result<VapidKey, SettingsError> {
        VapidKey::from_base64url(self.vapid_private_key.expose_secret(), &self.vapid_subject).map_err(|e| match e {
            vapid::VapidError::Key => SettingsError::invalid("APP_VAPID_PRIVATE_KEY", e),
            vapid::VapidError::Subject => SettingsError::invalid("APP_VAPID_SUBJECT", e),
        })
    }
}

/// Delivers [`notify_templates::Rendered::Push`] to Web Push subscriptions. Share it
/// (`Arc`).
pub struct WebPushProvider {
    client: reqwest::Client,
    vapid: VapidKey,
    default_ttl: u32,
    allow_http: bool,
}

#[derive(Serialize)]
struct Payload<'a> {
    title: &'a str,
    body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sound: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    badge: Option<&'a str>,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    notification_id: String,
    correlation_id: &'a str,
}

impl WebPushProvider {
    pub fn new(settings: &WebPushSettings) -> Result<Self, SettingsError> {
        Ok(Self {
            // Push services answer 201 with a Location; never follow a redirect with the
            // VAPID token to another host.
            client: http::client(settings.timeout, "APP_WEBPUSH_TIMEOUT_MS")?,
            vapid: settings.vapid_key()?,
            default_ttl: settings.default_ttl,
            allow_http: settings.allow_http,
        })
    }

    /// Whether Web Push can take this device: one registered with `webpush`; when the
    /// delivery does not name the device's provider, a token that is a subscription (JSON).
    pub fn accepts(delivery: &Delivery<'_>) -> bool {
        crate::chain::accepts_named(delivery, "webpush", |message| {
            WebPushSubscription::looks_like(message.target)
        })
    }

    /// The VAPID public key browsers must subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        self.vapid.public_key()
    }
}

#[async_trait]
impl Provider for WebPushProvider {
    fn name(&self) -> &'static str {
        "webpush"
    }

    #[tracing::instrument(name = "webpush_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let message = &delivery.message;
        let content = push::content(message)?;
        let subscription = WebPushSubscription::parse_allowing_http(message.target, self.allow_http)
            .map_err(|e| ProviderFailure::recipient(format!("malformed Web Push subscription: {e}")))?;
        let payload = serde_json::to_vec(&Payload {
            title: &content.title,
            body: &content.body,
            image: content.image_url.as_deref(),
            url: content.link_url.as_deref(),
            tag: content.collapse_key.as_deref(),
            sound: content.sound.as_deref(),
            badge: content.badge.as_deref(),
            data: Data {
                notification_id: message.notification_id.to_string(),
                correlation_id: message.correlation_id,
            },
        })
        .map_err(|e| ProviderFailure::permanent(format!("cannot encode the Web Push payload: {e}")))?;
        let body = ece::encrypt(&payload, subscription.public_key(), subscription.auth_secret())
            .map_err(|e| ProviderFailure::permanent(format!("Web Push: {e}")))?;
        let authorization = self
            .vapid
            .authorization(&subscription.origin())
            .map_err(|e| ProviderFailure::alert(format!("cannot sign the VAPID token: {e}")))?;
        let ttl = content
            .ttl_seconds
            .as_deref()
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(self.default_ttl);

        let mut request = self
            .client
            .post(subscription.endpoint().clone())
            .header("TTL", ttl.to_string())
            // The rendered notification has no priority of its own: RFC 8030's default.
            .header("Urgency", "normal")
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization)
            .body(body);
        if let Some(topic) = content.collapse_key.as_deref() {
            request = request.header("Topic", topic);
        }
        let origin = subscription.origin();
        let response = request
            .send()
            .await
            .map_err(|e| http::request_failed(&format!("the push service {origin}"), e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            let location = headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Ok(ProviderReceipt {
                provider_message_id: location,
                provider: Some("webpush"),
            });
        }
        let text = response.text().await.unwrap_or_default();
        Err(classify(&origin, status, &headers, &text))
    }
}

/// Classifies a push service's refusal (RFC 8030 §5-§8 and what FCM, Mozilla autopush and
/// Apple answer): 404/410 the subscription is gone; 400, 413 the message is refused; 429 and
/// 5xx transient with `Retry-After`; 401/403 our VAPID key or subject (an alert).
fn classify(origin: &str, status: StatusCode, headers: &reqwest::header::HeaderMap, body: &str) -> ProviderFailure {
    let detail: String = body.chars().take(300).collect();
    let who = format!("the push service {origin}");
    match status.as_u16() {
        404 | 410 => push::gone("webpush", format!("{who} answered {}: {detail}", status.as_u16())),
        400 => ProviderFailure::permanent(format!("{who} answered 400: {detail}")),
        _ => http::common_class(&who, status, headers, &detail)
            .unwrap_or_else(|| ProviderFailure::permanent(format!("{who} answered {}: {detail}", status.as_u16()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_worker::provider::FailureKind;

    #[test]
    fn answers_are_classified_as_rfc_8030_says() {
        let h = reqwest::header::HeaderMap::new();
        let gone = classify("https://p.test", StatusCode::GONE, &h, "");
        assert!(gone.is_gone(), "{gone:?}");
        assert!(classify("https://p.test", StatusCode::NOT_FOUND, &h, "").is_gone());
        assert_eq!(
            classify("https://p.test", StatusCode::PAYLOAD_TOO_LARGE, &h, "").kind,
            FailureKind::Permanent
        );
        assert_eq!(
            classify("https://p.test", StatusCode::BAD_REQUEST, &h, "").kind,
            FailureKind::Permanent
        );
        assert!(classify("https://p.test", StatusCode::FORBIDDEN, &h, "").alert);
        assert!(classify("https://p.test", StatusCode::SERVICE_UNAVAILABLE, &h, "").is_transient());
    }
}
