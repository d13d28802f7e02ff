//! Push through OneSignal's REST API: one create-message call per device,
//! `POST {base}/notifications?c=push` with `Authorization: Key {REST API key}`, addressed
//! to the device's OneSignal subscription id (`include_subscription_ids`).
//!
//! ```json
//! {"app_id": "…", "target_channel": "push", "include_subscription_ids": ["<token>"],
//!  "headings": {"en": "…"}, "contents": {"en": "…"},
//!  "big_picture": "…", "ios_attachments": {"image": "…"}, "chrome_web_image": "…",
//!  "url": "https://…" | "app_url": "myapp://…",
//!  "ios_sound": "…", "android_sound": "…", "ios_badgeType": "SetTo", "ios_badgeCount": 3,
//!  "collapse_id": "…", "ttl": 3600,
//!  "data": {"notification_id": "…", "correlation_id": "…"},
//!  "idempotency_key": "<uuid derived from the notification id and the device>"}
//! ```

use std::time::Duration;

use async_trait::async_trait;
use notify_kit::settings::{self, SettingsError};
use notify_templates::PushContent;
use notify_worker::provider::{Delivery, OutgoingMessage, Provider, ProviderFailure, ProviderReceipt};
use reqwest::{header::HeaderMap, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{http, push};

/// Settings of [`OneSignalProvider`], from `APP_ONESIGNAL_*`. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct OneSignalSettings {
    /// `APP_ONESIGNAL_APP_ID` (required): the app's id (a UUID).
    pub app_id: Uuid,
    /// `APP_ONESIGNAL_API_KEY` (required, secret): the app's REST API key.
    pub api_key: SecretString,
    /// `APP_ONESIGNAL_BASE_URL` (default `https://api.onesignal.com`).
    pub base_url: String,
    /// `APP_ONESIGNAL_TIMEOUT_MS` (default 10000): limit of one request.
    pub timeout: Duration,
}

impl OneSignalSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let app_id = settings::required("APP_ONESIGNAL_APP_ID")?;
        let s = Self {
            app_id: Uuid::parse_str(app_id.trim())
                .map_err(|_| SettingsError::invalid("APP_ONESIGNAL_APP_ID", "must be the app's id (a UUID)"))?,
            api_key: settings::secret("APP_ONESIGNAL_API_KEY").ok_or_else(|| SettingsError::Missing {
                name: "APP_ONESIGNAL_API_KEY".into(),
            })?,
            base_url: settings::string("APP_ONESIGNAL_BASE_URL", "https://api.onesignal.com"),
            timeout: settings::millis("APP_ONESIGNAL_TIMEOUT_MS", 10_000)?,
        };
        s.send_url()?;
        Ok(s)
    }

    fn send_url(&self) -> Result<Url, SettingsError> {
        crate::api_url(&self.base_url, "/notifications?c=push", "APP_ONESIGNAL_BASE_URL")
    }
}

/// Delivers [`notify_templates::Rendered::Push`] through OneSignal. Share it (`Arc`).
pub struct OneSignalProvider {
    client: reqwest::Client,
    url: Url,
    app_id: Uuid,
    api_key: SecretString,
}

impl OneSignalProvider {
    pub fn new(settings: &OneSignalSettings) -> Result<Self, SettingsError> {
        Ok(Self {
            client: http::client(settings.timeout, "APP_ONESIGNAL_TIMEOUT_MS")?,
            url: settings.send_url()?,
            app_id: settings.app_id,
            api_key: settings.api_key.clone(),
        })
    }

    /// Whether OneSignal can take this device: one registered with `onesignal`; when the
    /// delivery does not name the device's provider, a token that is a OneSignal
    /// subscription id (a UUID).
    pub fn accepts(delivery: &Delivery<'_>) -> bool {
        crate::chain::accepts_named(delivery, "onesignal", |message| Uuid::parse_str(message.target).is_ok())
    }
}

/// The same key for the same (notification, device): OneSignal drops a repeated create
/// within 30 days, so a redelivery after a lost answer does not notify twice.
fn idempotency_key(notification_id: Uuid, subscription: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(notification_id.as_bytes())
        .chain_update(subscription.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The create-message body for one subscription.
pub fn request_json(app_id: Uuid, subscription: &str, message: &OutgoingMessage<'_>, content: &PushContent) -> Value {
    let mut body = Map::new();
    body.insert("app_id".into(), json!(app_id));
    body.insert("target_channel".into(), json!("push"));
    body.insert("include_subscription_ids".into(), json!([subscription]));
    body.insert("headings".into(), json!({"en": content.title}));
    body.insert("contents".into(), json!({"en": content.body}));
    if let Some(image) = content.image_url.as_deref() {
        body.insert("big_picture".into(), json!(image));
        body.insert("ios_attachments".into(), json!({"image": image}));
        body.insert("chrome_web_image".into(), json!(image));
    }
    match content.link_url.as_deref() {
        Some(link) if link.starts_with("https://") => {
            body.insert("url".into(), json!(link));
        }
        Some(deep_link) => {
            body.insert("app_url".into(), json!(deep_link));
        }
        None => {}
    }
    if let Some(sound) = content.sound.as_deref() {
        body.insert("ios_sound".into(), json!(sound));
        body.insert("android_sound".into(), json!(sound));
    }
    if let Some(badge) = content.badge.as_deref().and_then(|b| b.parse::<u64>().ok()) {
        body.insert("ios_badgeType".into(), json!("SetTo"));
        body.insert("ios_badgeCount".into(), json!(badge));
    }
    if let Some(key) = content.collapse_key.as_deref() {
        body.insert("collapse_id".into(), json!(key));
    }
    if let Some(ttl) = content.ttl_seconds.as_deref().and_then(|t| t.parse::<u64>().ok()) {
        body.insert("ttl".into(), json!(ttl));
    }
    body.insert(
        "data".into(),
        json!({"notification_id": message.notification_id, "correlation_id": message.correlation_id}),
    );
    body.insert(
        "idempotency_key".into(),
        json!(idempotency_key(message.notification_id, subscription)),
    );
    Value::Object(body)
}

#[async_trait]
impl Provider for OneSignalProvider {
    fn name(&self) -> &'static str {
        "onesignal"
    }

    #[tracing::instrument(name = "onesignal_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let message = &delivery.message;
        let content = push::content(message)?;
        let subscription = Uuid::parse_str(message.target)
            .map_err(|_| ProviderFailure::recipient("malformed OneSignal subscription id: not a UUID"))?
            .to_string();
        let body = request_json(self.app_id, &subscription, message, content);
        let response = self
            .client
            .post(self.url.clone())
            .header("Authorization", format!("Key {}", self.api_key.expose_secret()))
            .header("x-correlation-id", crate::header_safe(message.correlation_id, 200))
            .json(&body)
            .send()
            .await
            .map_err(|e| http::request_failed("OneSignal", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        outcome(status, &headers, &text)
    }
}

/// The `errors` of an answer, as text.
fn errors_text(errors: &Value) -> String {
    match errors {
        Value::Array(items) => items
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Reads an answer from OneSignal's documented shapes: `200 {"id": "…"}` sent; `200` with
/// `errors.invalid_player_ids` / `errors.invalid_aliases`, or no id and "not subscribed",
/// the device is gone; 400 the message is refused; 401/403 our key (alert); 429 and 5xx
/// transient with `Retry-After`.
pub fn outcome(status: StatusCode, headers: &HeaderMap, body: &str) -> Result<ProviderReceipt, ProviderFailure> {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let errors = json.get("errors").filter(|e| !e.is_null());
    if status.is_success() {
        let id = json.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
        if let Some(errors) = errors {
            let invalid = ["invalid_player_ids", "invalid_aliases", "invalid_subscription_ids"]
                .iter()
                .any(|k| {
                    errors.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty())
                        || errors.get(k).is_some_and(Value::is_object)
                });
            let text = errors_text(errors);
            if invalid || (id.is_none() && text.to_ascii_lowercase().contains("not subscribed")) {
                return Err(push::gone("onesignal", text));
            }
            if id.is_none() {
                return Err(ProviderFailure::permanent(format!("OneSignal sent nothing: {text}")));
            }
        }
        return match id {
            Some(id) => Ok(ProviderReceipt {
                provider_message_id: Some(id.to_string()),
                provider: Some("onesignal"),
            }),
            None => Err(ProviderFailure::transient(
                "OneSignal answered without a notification id",
            )),
        };
    }
    let detail = errors.map_or_else(|| body.chars().take(300).collect(), errors_text);
    Err(http::common_class("OneSignal", status, headers, &detail)
        .unwrap_or_else(|| ProviderFailure::permanent(format!("OneSignal answered {}: {detail}", status.as_u16()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_is_stable_per_notification_and_device() {
        let id = Uuid::now_v7();
        let device = "1dd608f2-c6a1-11e3-851d-000c2940e62c";

        assert_eq!(idempotency_key(id, device), idempotency_key(id, device));
        assert_ne!(idempotency_key(id, device), idempotency_key(id, "other"));
        assert_ne!(idempotency_key(id, device), idempotency_key(Uuid::now_v7(), device));
    }
}
