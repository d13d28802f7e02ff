//! Push through Firebase Cloud Messaging's HTTP v1 API:
//! `POST {base}/v1/projects/{project_id}/messages:send`, authorised by an OAuth2 access
//! token from a service-account key (scope `firebase.messaging`, no subject), one message
//! per device token. Android, APNs (iOS through FCM) and webpush blocks are set from the
//! rendered push; only the block of the device's platform is sent (all three when the
//! platform is unknown).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use notify_kit::settings::{self, SettingsError};
use notify_templates::PushContent;
use notify_worker::provider::{Delivery, OutgoingMessage, Provider, ProviderFailure, ProviderReceipt};
use reqwest::{header::HeaderMap, StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

use crate::{
    google_auth::{ServiceAccountKey, TokenSource},
    http,
    push::{self, DeviceToken},
    webpush::WebPushSubscription,
};

/// The OAuth scope to send FCM messages and nothing else.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// How long to wait after `QUOTA_EXCEEDED` without a `Retry-After` (FCM asks for at least
/// a minute of exponential back-off).
const QUOTA_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of [`FcmProvider`], from `APP_FCM_*`.
#[derive(Debug, Clone)]
pub struct FcmSettings {
    /// `APP_FCM_SERVICE_ACCOUNT_JSON` (the key JSON, secret) or `APP_FCM_SERVICE_ACCOUNT_FILE`
    /// (a path to it): one is required.
    pub key: ServiceAccountKey,
    /// `APP_FCM_PROJECT_ID` (default: the key's `project_id`).
    pub project_id: String,
    /// `APP_FCM_BASE_URL` (default `https://fcm.googleapis.com`).
    pub base_url: String,
    /// `APP_FCM_TIMEOUT_MS`: limit of one request, token exchange included (default 10000).
    pub timeout: Duration,
}

impl FcmSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let key = ServiceAccountKey::from_env("APP_FCM_SERVICE_ACCOUNT_JSON", "APP_FCM_SERVICE_ACCOUNT_FILE")?;
        let project_id = match settings::optional("APP_FCM_PROJECT_ID") {
            Some(id) => id,
            None => key.project_id.clone().ok_or_else(|| SettingsError::Missing {
                name: "APP_FCM_PROJECT_ID (the service-account key names no project_id)".into(),
            })?,
        };
        let s = Self {
            key,
            project_id,
            base_url: settings::string("APP_FCM_BASE_URL", "https://fcm.googleapis.com"),
            timeout: settings::millis("APP_FCM_TIMEOUT_MS", 10_000)?,
        };
        s.send_url()?;
        Ok(s)
    }

    fn send_url(&self) -> Result<Url, SettingsError> {
        let id = &self.project_id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':' || c == '.')
        {
            return Err(SettingsError::invalid(
                "APP_FCM_PROJECT_ID",
                "must be a project id (letters, digits, `-`)",
            ));
        }
        crate::api_url(
            &self.base_url,
            &format!("/v1/projects/{id}/messages:send"),
            "APP_FCM_BASE_URL",
        )
    }
}

/// Delivers [`notify_templates::Rendered::Push`] through FCM HTTP v1. Share it (`Arc`).
pub struct FcmProvider {
    client: reqwest::Client,
    url: Url,
    tokens: Arc<TokenSource>,
}

impl FcmProvider {
    pub fn new(settings: &FcmSettings) -> Result<Self, SettingsError> {
        let tokens = TokenSource::new(settings.key.clone(), FCM_SCOPE, None, settings.timeout)?;
        Self::with_tokens(settings, Arc::new(tokens))
    }

    /// [`FcmProvider::new`] with a given token source (tests: an injected clock).
    pub fn with_tokens(settings: &FcmSettings, tokens: Arc<TokenSource>) -> Result<Self, SettingsError> {
        Ok(Self {
            client: http::client(settings.timeout, "APP_FCM_TIMEOUT_MS")?,
            url: settings.send_url()?,
            tokens,
        })
    }

    /// Whether FCM can take this device: one registered with `fcm`; when the delivery does
    /// not name the device's provider, any token but a Web Push subscription or a
    /// OneSignal subscription id (a UUID, which no FCM registration token is). The `http`
    /// stand-in takes the same devices.
    pub fn accepts(delivery: &Delivery<'_>) -> bool {
        crate::chain::accepts_named(delivery, "fcm", |message| {
            !WebPushSubscription::looks_like(message.target) && uuid::Uuid::parse_str(message.target).is_err()
        })
    }

    async fn post(
        &self,
        body: &Value,
        message: &OutgoingMessage<'_>,
    ) -> Result<(StatusCode, HeaderMap, String), ProviderFailure> {
        let token = self.tokens.access_token().await?;
        let mut request = self
            .client
            .post(self.url.clone())
            .bearer_auth(token.expose_secret())
            .header("x-correlation-id", crate::header_safe(message.correlation_id, 200))
            .json(body);
        if let Some(traceparent) = message.traceparent {
            request = request.header("traceparent", crate::header_safe(traceparent, 200));
        }
        let response = request.send().await.map_err(|e| http::request_failed("FCM", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        Ok((status, headers, response.text().await.unwrap_or_default()))
    }
}

/// The v1 `message` for one device.
pub fn message_json(token: &str, message: &OutgoingMessage<'_>, content: &PushContent) -> Value {
    let image = content.image_url.as_deref();
    let link = content.link_url.as_deref();
    let ttl: Option<u64> = content.ttl_seconds.as_deref().and_then(|t| t.parse().ok());
    let badge: Option<u64> = content.badge.as_deref().and_then(|b| b.parse().ok());
    let collapse = content.collapse_key.as_deref();
    let sound = content.sound.as_deref();

    let mut notification = Map::new();
    notification.insert("title".into(), json!(content.title));
    notification.insert("body".into(), json!(content.body));
    if let Some(image) = image {
        notification.insert("image".into(), json!(image));
    }
    // FCM data values are strings only.
    let mut data = BTreeMap::from([
        ("notification_id", message.notification_id.to_string()),
        ("correlation_id", message.correlation_id.to_string()),
    ]);
    if let Some(link) = link {
        data.insert("link", link.to_string());
    }
    let mut out = Map::new();
    out.insert("token".into(), json!(token));
    out.insert("notification".into(), Value::Object(notification));
    out.insert("data".into(), json!(data));

    let platform = message.platform;
    if matches!(platform, None | Some("android")) {
        let mut android_notification = Map::new();
        if let Some(sound) = sound {
            android_notification.insert("sound".into(), json!(sound));
        }
        if let Some(key) = collapse {
            android_notification.insert("tag".into(), json!(key));
        }
        let mut android = Map::new();
        android.insert("priority".into(), json!("normal"));
        if let Some(key) = collapse {
            android.insert("collapse_key".into(), json!(key));
        }
        if let Some(ttl) = ttl {
            android.insert("ttl".into(), json!(format!("{ttl}s")));
        }
        if !android_notification.is_empty() {
            android.insert("notification".into(), Value::Object(android_notification));
        }
        out.insert("android".into(), Value::Object(android));
    }
    if matches!(platform, None | Some("ios")) {
        // 5: deliver with power considerations (there is no priority on the rendered push).
        let mut headers = Map::from_iter([("apns-priority".to_string(), json!("5"))]);
        if let Some(key) = collapse {
            headers.insert("apns-collapse-id".into(), json!(key));
        }
        if let Some(ttl) = ttl {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let expiry = if ttl == 0 { 0 } else { now + ttl };
            headers.insert("apns-expiration".into(), json!(expiry.to_string()));
        }
        let mut aps = Map::new();
        if let Some(badge) = badge {
            aps.insert("badge".into(), json!(badge));
        }
        if let Some(sound) = sound {
            aps.insert("sound".into(), json!(sound));
        }
        let mut apns = Map::new();
        if image.is_some() {
            // iOS shows an image only through a notification service extension.
            aps.insert("mutable-content".into(), json!(1));
            apns.insert("fcm_options".into(), json!({"image": image}));
        }
        apns.insert("headers".into(), Value::Object(headers));
        apns.insert("payload".into(), json!({"aps": aps}));
        out.insert("apns".into(), Value::Object(apns));
    }
    if matches!(platform, None | Some("web")) {
        let mut headers = Map::from_iter([("Urgency".to_string(), json!("normal"))]);
        if let Some(ttl) = ttl {
            headers.insert("TTL".into(), json!(ttl.to_string()));
        }
        if let Some(key) = collapse {
            headers.insert("Topic".into(), json!(key));
        }
        let mut webpush = Map::from_iter([("headers".to_string(), Value::Object(headers))]);
        // FCM refuses a webpush link that is not https, and that would fail the message.
        if let Some(link) = link.filter(|l| l.starts_with("https://")) {
            webpush.insert("fcm_options".into(), json!({"link": link}));
        }
        out.insert("webpush".into(), Value::Object(webpush));
    }
    json!({ "message": out })
}

#[async_trait]
impl Provider for FcmProvider {
    fn name(&self) -> &'static str {
        "fcm"
    }

    #[tracing::instrument(name = "fcm_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let message = &delivery.message;
        let content = push::content(message)?;
        let token = DeviceToken::parse(message.target)
            .map_err(|e| ProviderFailure::recipient(format!("malformed device token: {e}")))?;
        let body = message_json(token.as_str(), message, content);
        let (mut status, mut headers, mut text) = self.post(&body, message).await?;
        if status == StatusCode::UNAUTHORIZED && error_code(&text).as_deref() != Some("THIRD_PARTY_AUTH_ERROR") {
            // The token may have been revoked or expired early: one new token, one retry.
            self.tokens.invalidate().await;
            (status, headers, text) = self.post(&body, message).await?;
        }
        if status.is_success() {
            return Ok(ProviderReceipt {
                provider_message_id: http::json_str(&text, "name"),
                provider: Some("fcm"),
            });
        }
        Err(classify(status, &headers, &text))
    }
}

/// The FCM error code of an error body: `error.details[].errorCode` (the
/// `google.firebase.fcm.v1.FcmError` detail), else `error.status`.
fn error_code(body: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).ok()?;
    let error = json.get("error")?;
    error
        .get("details")
        .and_then(Value::as_array)
        .and_then(|details| details.iter().find_map(|d| d.get("errorCode").and_then(Value::as_str)))
        .or_else(|| error.get("status").and_then(Value::as_str))
        .map(str::to_string)
}

/// `error.message`, else the start of the body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|j| j.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// Whether an `INVALID_ARGUMENT` is about the registration token (rather than the
/// message): a field violation on `message.token`, or FCM's message naming the token.
fn about_the_token(body: &str, message: &str) -> bool {
    let on_token_field = serde_json::from_str::<Value>(body).ok().is_some_and(|j| {
        j.pointer("/error/details")
            .and_then(Value::as_array)
            .is_some_and(|details| {
                details.iter().any(|d| {
                    d.get("fieldViolations").and_then(Value::as_array).is_some_and(|v| {
                        v.iter()
                            .any(|f| f.get("field").and_then(Value::as_str) == Some("message.token"))
                    })
                })
            })
    });
    on_token_field || message.to_ascii_lowercase().contains("registration token")
}

/// Classifies a refusal from FCM's documented error codes:
///
/// | code (HTTP) | class |
/// |---|---|
/// | `UNREGISTERED` (404) | recipient, gone (remove the token) |
/// | `INVALID_ARGUMENT` (400) about the token | recipient, gone (not a token FCM knows) |
/// | `INVALID_ARGUMENT` (400) about the message | permanent |
/// | `SENDER_ID_MISMATCH` (403) | recipient + alert (the token is another project's) |
/// | `THIRD_PARTY_AUTH_ERROR` (401) | transient + alert (APNs/web credentials in Firebase) |
/// | `QUOTA_EXCEEDED` (429) | transient, `Retry-After` else 60 s |
/// | `UNAVAILABLE` (503), `INTERNAL` (500), other 5xx | transient, `Retry-After` |
/// | 401, 403 otherwise | transient + alert (our service account) |
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> ProviderFailure {
    let code = error_code(body).unwrap_or_default();
    let message = error_message(body);
    let what = format!("FCM answered {} {code}: {message}", status.as_u16());
    match code.as_str() {
        "UNREGISTERED" => return push::gone("fcm", format!("{} UNREGISTERED", status.as_u16())),
        "SENDER_ID_MISMATCH" => {
            return ProviderFailure {
                alert: true,
                ..ProviderFailure::recipient(format!("{what} (the token belongs to another Firebase project)"))
            }
        }
        "THIRD_PARTY_AUTH_ERROR" => {
            return ProviderFailure::alert(format!("{what} (check the APNs key or web credentials in Firebase)"))
        }
        "QUOTA_EXCEEDED" => {
            let wait = http::retry_after(headers).unwrap_or(QUOTA_BACKOFF);
            return ProviderFailure::transient(what).with_retry_after(Some(wait));
        }
        // Firebase's advice: remove tokens FCM calls invalid, as unregistered ones.
        "INVALID_ARGUMENT" if about_the_token(body, &message) => return push::gone("fcm", what),
        _ => {}
    }
    if status == StatusCode::NOT_FOUND {
        // A 404 without FCM's `UNREGISTERED` code is not about the token: FCM names an
        // unknown token with the code. A wrong project id or base URL answers 404 for every
        // token, and treating that as "gone" would delete every device: ours to fix.
        return ProviderFailure::alert(format!(
            "{what} (no UNREGISTERED code: check APP_FCM_PROJECT_ID and APP_FCM_BASE_URL)"
        ));
    }
    http::common_class("FCM", status, headers, &format!("{code}: {message}"))
        .unwrap_or_else(|| ProviderFailure::permanent(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_worker::provider::FailureKind;

    #[test]
    fn a_404_without_the_unregistered_code_is_ours_to_fix_and_removes_no_device() {
        let body = json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})
            .to_string();

        let failure = classify(StatusCode::NOT_FOUND, &HeaderMap::new(), &body);

        assert_eq!(failure.kind, FailureKind::Transient);
        assert!(failure.alert, "{failure:?}");
        assert!(!failure.is_gone(), "{failure:?}");
        let unregistered = classify(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            &fcm_error(404, "UNREGISTERED", "gone"),
        );
        assert!(unregistered.is_gone(), "{unregistered:?}");
    }

    fn fcm_error(status: u16, code: &str, message: &str) -> String {
        json!({"error": {"code": status, "message": message, "status": "X",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}})
        .to_string()
    }

    #[test]
    fn an_invalid_argument_about_the_message_refuses_the_message_not_the_device() {
        let body = json!({"error": {"code": 400, "message": "Invalid value at 'message.data[0].value'", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.data[0].value", "description": "bad"}]}]}})
        .to_string();

        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &body).kind,
            FailureKind::Permanent
        );
    }

    #[test]
    fn an_invalid_registration_token_is_gone_and_a_token_of_another_project_is_not() {
        let body = fcm_error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        );
        assert!(classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &body).is_gone());

        let f = classify(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            &fcm_error(403, "SENDER_ID_MISMATCH", "mismatch"),
        );

        assert_eq!(f.kind, FailureKind::Recipient);
        assert!(f.alert && !f.is_gone());
    }
}
