//! The `http` push provider: an FCM-HTTP-v1-like JSON API with a static bearer key, one `POST`
//! per device token. A stand-in for local stacks (Compose's push mock), not a real provider;
//! the real ones are [`crate::fcm`], [`crate::webpush`] and [`crate::onesignal`]. Also the
//! shared push helpers ([`DeviceToken`], [`gone`]).
//!
//! ```json
//! {"message": {
//!   "token": "<device token>",
//!   "notification": {"title": "…", "body": "…", "image": "https://…"},
//!   "data": {"notification_id": "…", "correlation_id": "…", "link": "…"},
//!   "webpush": {"fcm_options": {"link": "https://…"}},                       // web, https links
//!   "apns": {"payload": {"aps": {"mutable-content": 1}}, "fcm_options": {"image": "…"}}  // iOS images
//! }}
//! ```

use std::{collections::BTreeMap, fmt, time::Duration};

use async_trait::async_trait;
use notify_kit::settings::{self, SettingsError};
use notify_templates::{PushContent, Rendered};
use notify_worker::provider::{Delivery, OutgoingMessage, Provider, ProviderFailure, ProviderReceipt};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// The rendered push of `message`, or a permanent failure when a push provider was given
/// an email.
pub(crate) fn content<'a>(message: &'a OutgoingMessage<'_>) -> Result<&'a PushContent, ProviderFailure> {
    match message.content {
        Rendered::Push(content) => Ok(content),
        Rendered::Email(_) => Err(ProviderFailure::permanent(
            "wrong content: the push provider was given an email",
        )),
    }
}

/// A push provider's "this device is gone" (FCM `UNREGISTERED`, Web Push 404/410, OneSignal
/// `invalid_player_ids`, the `http` provider's 410 / `UNREGISTERED`):
/// [`ProviderFailure::gone`], which the worker reads with [`ProviderFailure::is_gone`] and
/// answers by removing the device. Other recipient failures (a malformed token, a token of
/// another sender) refuse this delivery only.
pub fn gone(provider: &str, detail: impl fmt::Display) -> ProviderFailure {
    ProviderFailure::gone(format!("{provider} says the device is no longer registered ({detail})"))
}

/// Settings of [`HttpPushProvider`]. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// `APP_PUSH_PROVIDER_URL`: the send endpoint (default
    /// `http://127.0.0.1:8099/v1/messages:send`).
    pub url: String,
    /// `APP_PUSH_PROVIDER_KEY`: sent as `Authorization: Bearer …` (optional, secret).
    pub api_key: Option<SecretString>,
    /// `APP_PUSH_TIMEOUT_MS`: limit of one request, connection to response body (default
    /// 5000).
    pub timeout: Duration,
}

impl Default for PushSettings {
    /// The documented defaults: a local stand-in on 127.0.0.1:8099, no key, 5 s.
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8099/v1/messages:send".into(),
            api_key: None,
            timeout: Duration::from_millis(5_000),
        }
    }
}

impl PushSettings {
    /// Reads `APP_PUSH_*`, falling back to the defaults, and validates the result.
    pub fn from_env() -> Result<Self, SettingsError> {
        let s = Self {
            url: settings::string("APP_PUSH_PROVIDER_URL", &Self::default().url),
            api_key: settings::secret("APP_PUSH_PROVIDER_KEY"),
            timeout: settings::millis("APP_PUSH_TIMEOUT_MS", 5_000)?,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the URL (absolute `http`/`https`) and the timeout (> 0).
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.parsed_url()?;
        if self.timeout.is_zero() {
            return Err(SettingsError::invalid("APP_PUSH_TIMEOUT_MS", "must be > 0"));
        }
        Ok(())
    }

    fn parsed_url(&self) -> Result<Url, SettingsError> {
        let url = Url::parse(&self.url).map_err(|e| SettingsError::invalid("APP_PUSH_PROVIDER_URL", e))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SettingsError::invalid(
                "APP_PUSH_PROVIDER_URL",
                "must be an http or https URL",
            ));
        }
        Ok(url)
    }
}

/// A device token as the provider expects it: non-empty, at most 4096 characters, no white
/// space or control characters. Valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

/// Why a device token is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDeviceToken {
    #[error("the device token is empty")]
    Empty,
    #[error("the device token is {0} characters long (at most {max})", max = DeviceToken::MAX_LEN)]
    TooLong(usize),
    #[error("the device token contains white space or a control character")]
    ForbiddenCharacter,
}

impl DeviceToken {
    /// The longest token accepted, in characters.
    pub const MAX_LEN: usize = 4096;

    /// Checks the token's shape (not whether the provider knows it).
    pub fn parse(token: &str) -> Result<Self, InvalidDeviceToken> {
        if token.is_empty() {
            return Err(InvalidDeviceToken::Empty);
        }
        let len = token.chars().count();
        if len > Self::MAX_LEN {
            return Err(InvalidDeviceToken::TooLong(len));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidDeviceToken::ForbiddenCharacter);
        }
        Ok(Self(token.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Delivers [`Rendered::Push`] to an FCM-HTTP-v1-like API. Cheap to share (`Arc`); the
/// HTTP client keeps its connections alive between sends.
pub struct HttpPushProvider {
    client: reqwest::Client,
    url: Url,
    api_key: Option<SecretString>,
}

impl HttpPushProvider {
    /// Builds the HTTP client; the settings are validated first.
    pub fn new(settings: &PushSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Self {
            client: crate::http::client(settings.timeout, "APP_PUSH_TIMEOUT_MS")?,
            url: settings.parsed_url()?,
            api_key: settings.api_key.clone(),
        })
    }
}

#[derive(Serialize)]
struct SendRequest<'a> {
    message: PushMessage<'a>,
}

#[derive(Serialize)]
struct PushMessage<'a> {
    token: &'a str,
    notification: Notification<'a>,
    /// FCM data values are strings only.
    data: BTreeMap<&'static str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webpush: Option<WebPush<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apns: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Notification<'a> {
    title: &'a str,
    body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
}

#[derive(Serialize)]
struct WebPush<'a> {
    fcm_options: WebPushOptions<'a>,
}

#[derive(Serialize)]
struct WebPushOptions<'a> {
    link: &'a str,
}

fn request_body<'a>(
    token: &'a DeviceToken,
    notification_id: &'a str,
    message: &'a OutgoingMessage<'_>,
    content: &'a PushContent,
) -> SendRequest<'a> {
    let image = content.image_url.as_deref().filter(|u| !u.is_empty());
    let link = content.link_url.as_deref().filter(|u| !u.is_empty());
    let mut data = BTreeMap::from([
        ("notification_id", notification_id),
        ("correlation_id", message.correlation_id),
    ]);
    if let Some(link) = link {
        data.insert("link", link);
    }
    // FCM refuses a webpush link that is not https, and that would fail the whole message.
    let webpush = match (message.platform, link) {
        (Some("web"), Some(link)) if link.starts_with("https://") => Some(WebPush {
            fcm_options: WebPushOptions { link },
        }),
        _ => None,
    };
    // iOS shows an image only through a notification service extension.
    let apns = match (message.platform, image) {
        (Some("ios"), Some(image)) => Some(serde_json::json!({
            "payload": {"aps": {"mutable-content": 1}},
            "fcm_options": {"image": image},
        })),
        _ => None,
    };
    SendRequest {
        message: PushMessage {
            token: token.as_str(),
            notification: Notification {
                title: &content.title,
                body: &content.body,
                image,
            },
            data,
            webpush,
            apns,
        },
    }
}

#[async_trait]
impl Provider for HttpPushProvider {
    fn name(&self) -> &'static str {
        "http"
    }

    #[tracing::instrument(name = "push_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let message = &delivery.message;
        let Rendered::Push(content) = message.content else {
            return Err(ProviderFailure::permanent(
                "wrong content: the push provider was given an email",
            ));
        };
        let token = DeviceToken::parse(message.target)
            .map_err(|e| ProviderFailure::recipient(format!("malformed device token: {e}")))?;
        let notification_id = message.notification_id.to_string();
        let body = request_body(&token, &notification_id, message, content);

        let mut request = self
            .client
            .post(self.url.clone())
            .header("x-correlation-id", crate::header_safe(message.correlation_id, 200))
            .json(&body);
        if let Some(traceparent) = message.traceparent {
            request = request.header("traceparent", crate::header_safe(traceparent, 200));
        }
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }

        let response = request
            .send()
            .await
            .map_err(|e| crate::http::request_failed("the push provider", e))?;
        let status = response.status();
        // A timeout while reading the body of a 2xx still means the provider took it.
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(ProviderReceipt {
                provider_message_id: message_name(&text),
                provider: Some("http"),
            })
        } else {
            Err(classify(status, &text))
        }
    }
}

/// The provider's id of an accepted message: FCM's `name`
/// (`projects/…/messages/…`), or `message_id` from simpler APIs.
fn message_name(body: &str) -> Option<String> {
    crate::http::json_str(body, "name").or_else(|| crate::http::json_str(body, "message_id"))
}

/// Classifies a non-2xx answer, once.
fn classify(status: StatusCode, body: &str) -> ProviderFailure {
    let detail = error_detail(body);
    let what = format!("push provider answered {}: {detail}", status.as_u16());
    match status.as_u16() {
        // Our key is wrong or lacks permission: a configuration problem. Retry, so that
        // nothing is lost while someone fixes it.
        401 | 403 => {
            tracing::error!(status = status.as_u16(), %detail, "the push provider refused our credentials: check APP_PUSH_PROVIDER_KEY");
            ProviderFailure::alert(what)
        }
        // The token is unknown or expired: 410, or FCM's `UNREGISTERED` error code (with 404
        // or 400). A bare 404 is not enough: a wrong URL answers 404 for every token, and a
        // removal cannot be undone.
        410 => gone("http", what),
        400 | 404 if unregistered(body) => gone("http", what),
        408 | 429 => ProviderFailure::transient(what),
        // INVALID_ARGUMENT and any other refusal of the request itself: the same request
        // would be refused again.
        400..=499 => ProviderFailure::recipient(what),
        500..=599 => ProviderFailure::transient(what),
        // A redirect that was not followed, or an informational answer: not a refusal.
        _ => ProviderFailure::transient(what),
    }
}

/// Whether an FCM error body names the `UNREGISTERED` error code (in `error.details[]`).
fn unregistered(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j.pointer("/error/details").and_then(|d| d.as_array()).cloned())
        .is_some_and(|details| details.iter().any(|d| d["errorCode"] == "UNREGISTERED"))
}

/// `STATUS: message` from an FCM error body (`{"error": {"status", "message", …}}`), else
/// the start of the body.
fn error_detail(body: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let error = parsed.as_ref().and_then(|j| j.get("error"));
    let field = |k: &str| error.and_then(|e| e.get(k)).and_then(|v| v.as_str());
    match (field("status"), field("message")) {
        (Some(s), Some(m)) => format!("{s}: {m}"),
        (Some(s), None) => s.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => body.chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_unregistered_token_is_permanent() {
        let body = r#"{"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.", "details": [{"errorCode": "UNREGISTERED"}]}}"#;

        let err = classify(StatusCode::NOT_FOUND, body);

        assert!(err.is_gone(), "{err:?}");
        assert!(err.message.contains("NOT_FOUND"), "{err}");
        assert!(classify(StatusCode::GONE, "").is_gone());
    }

    #[test]
    fn a_bare_404_refuses_the_device_but_does_not_remove_it() {
        let err = classify(
            StatusCode::NOT_FOUND,
            r#"{"error": {"status": "NOT_FOUND", "message": "no such path"}}"#,
        );

        assert_eq!(err.kind, notify_worker::provider::FailureKind::Recipient);
        assert!(!err.is_gone(), "{err:?}");
    }

    #[test]
    fn an_invalid_argument_is_permanent() {
        let body = r#"{"error": {"status": "INVALID_ARGUMENT", "message": "bad token"}}"#;

        let err = classify(StatusCode::BAD_REQUEST, body);
        assert!(!err.is_transient() && !err.is_gone(), "{err:?}");
    }

    #[test]
    fn credentials_throttling_and_server_errors_are_transient() {
        for status in [401, 403, 408, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(classify(status, "").is_transient(), "{status}");
        }
    }

    #[test]
    fn the_message_name_is_read_from_fcm_and_simpler_answers() {
        assert_eq!(
            message_name(r#"{"name": "projects/p/messages/1"}"#).as_deref(),
            Some("projects/p/messages/1")
        );
        assert_eq!(message_name(r#"{"message_id": "m1"}"#).as_deref(), Some("m1"));
        assert_eq!(message_name("not json"), None);
    }

    #[test]
    fn tokens_of_the_wrong_shape_are_refused() {
        assert_eq!(DeviceToken::parse(""), Err(InvalidDeviceToken::Empty));
        assert_eq!(
            DeviceToken::parse(&"a".repeat(4097)),
            Err(InvalidDeviceToken::TooLong(4097))
        );
        assert_eq!(
            DeviceToken::parse("abc def"),
            Err(InvalidDeviceToken::ForbiddenCharacter)
        );
        assert_eq!(
            DeviceToken::parse("abc\u{0}"),
            Err(InvalidDeviceToken::ForbiddenCharacter)
        );
        assert!(DeviceToken::parse(&"a".repeat(4096)).is_ok());
    }

    #[test]
    fn a_malformed_url_names_its_variable() {
        let settings = PushSettings {
            url: "not a url".into(),
            ..PushSettings::default()
        };

        let err = settings.validate().unwrap_err();

        assert!(err.to_string().contains("APP_PUSH_PROVIDER_URL"), "{err}");
    }

    proptest! {
        #[test]
        fn tokens_of_visible_characters_are_accepted(token in "[A-Za-z0-9:_\\-.]{1,4096}") {
            prop_assert_eq!(DeviceToken::parse(&token).map(|t| t.to_string()), Ok(token));
        }

        #[test]
        fn a_token_with_white_space_anywhere_is_refused(
            head in "[A-Za-z0-9]{0,50}",
            space in prop::sample::select(vec![' ', '\t', '\n', '\r', '\u{a0}']),
            tail in "[A-Za-z0-9]{0,50}",
        ) {
            let token = format!("{head}{space}{tail}");
            prop_assert_eq!(DeviceToken::parse(&token), Err(InvalidDeviceToken::ForbiddenCharacter));
        }
    }
}
