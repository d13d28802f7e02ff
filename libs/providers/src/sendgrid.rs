//! Email through SendGrid's v3 Mail Send API: `POST {base}/v3/mail/send` with a bearer API
//! key; `202 Accepted` means queued, with the message's id in `X-Message-Id`.
//!
//! Our headers travel in the JSON `headers` object; the notification id also goes in
//! `custom_args`, which SendGrid's Event Webhook returns with every event.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use notify_kit::settings::{self, SettingsError};
use notify_worker::provider::{Delivery, Provider, ProviderFailure, ProviderReceipt};
use reqwest::{header::HeaderMap, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::{
    email::{Email, SenderSettings},
    http,
};

/// Settings of [`SendGridProvider`], from `APP_SENDGRID_*`. `Debug` hides the key.
#[derive(Debug, Clone)]
pub struct SendGridSettings {
    /// `APP_SENDGRID_API_KEY` (required, secret): a key with the "Mail Send" permission.
    pub api_key: SecretString,
    /// `APP_SENDGRID_BASE_URL` (default `https://api.sendgrid.com`; the EU subuser region
    /// is `https://api.eu.sendgrid.com`).
    pub base_url: String,
    /// `APP_SENDGRID_TIMEOUT_MS`: limit of one request (default 10000).
    pub timeout: Duration,
    /// `APP_EMAIL_FROM`, `APP_EMAIL_MESSAGE_ID_DOMAIN` (shared by every email provider).
    pub sender: SenderSettings,
}

impl SendGridSettings {
    /// Reads `APP_SENDGRID_*` and the sender; the key is required and must not be blank.
    pub fn from_env() -> Result<Self, SettingsError> {
        let s = Self {
            api_key: settings::secret("APP_SENDGRID_API_KEY").ok_or_else(|| SettingsError::Missing {
                name: "APP_SENDGRID_API_KEY".into(),
            })?,
            base_url: settings::string("APP_SENDGRID_BASE_URL", "https://api.sendgrid.com"),
            timeout: settings::millis("APP_SENDGRID_TIMEOUT_MS", 10_000)?,
            sender: SenderSettings::from_env()?,
        };
        s.send_url()?;
        Ok(s)
    }

    fn send_url(&self) -> Result<Url, SettingsError> {
        crate::api_url(&self.base_url, "/v3/mail/send", "APP_SENDGRID_BASE_URL")
    }
}

/// Delivers email through SendGrid. Share it (`Arc`).
pub struct SendGridProvider {
    client: reqwest::Client,
    url: Url,
    api_key: SecretString,
    sender: SenderSettings,
}

impl SendGridProvider {
    pub fn new(settings: &SendGridSettings) -> Result<Self, SettingsError> {
        Ok(Self {
            client: http::client(settings.timeout, "APP_SENDGRID_TIMEOUT_MS")?,
            url: settings.send_url()?,
            api_key: settings.api_key.clone(),
            sender: settings.sender.clone(),
        })
    }
}

#[derive(Serialize)]
struct MailSend<'a> {
    personalizations: [Personalization<'a>; 1],
    from: Address<'a>,
    subject: &'a str,
    content: Vec<Content<'a>>,
    headers: BTreeMap<&'a str, &'a str>,
    custom_args: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
struct Personalization<'a> {
    to: [Address<'a>; 1],
}

#[derive(Serialize)]
struct Address<'a> {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

fn request_body<'a>(email: &'a Email, notification_id: &'a str) -> MailSend<'a> {
    let address = |m: &'a lettre::message::Mailbox| Address {
        email: m.email.to_string(),
        name: m.name.as_deref(),
    };
    // text/plain must come first (SendGrid refuses another order).
    let mut content = vec![Content {
        kind: "text/plain",
        value: &email.text,
    }];
    if let Some(html) = &email.html {
        content.push(Content {
            kind: "text/html",
            value: html,
        });
    }
    let mut headers: BTreeMap<&str, &str> = email.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    headers.insert("Message-ID", &email.message_id);
    MailSend {
        personalizations: [Personalization {
            to: [address(&email.to)],
        }],
        from: address(&email.from),
        subject: &email.subject,
        content,
        headers,
        custom_args: BTreeMap::from([("notification_id", notification_id)]),
    }
}

#[async_trait]
impl Provider for SendGridProvider {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    #[tracing::instrument(name = "sendgrid_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let email = Email::compose(delivery, &self.sender)?;
        let notification_id = delivery.message.notification_id.to_string();
        let response = self
            .client
            .post(self.url.clone())
            .bearer_auth(self.api_key.expose_secret())
            .json(&request_body(&email, &notification_id))
            .send()
            .await
            .map_err(|e| http::request_failed("SendGrid", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            let id = headers
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Ok(ProviderReceipt {
                provider_message_id: id,
                provider: Some("sendgrid"),
            });
        }
        let body = response.text().await.unwrap_or_default();
        Err(classify(status, &headers, &body))
    }
}

/// Classifies a refusal from SendGrid's documented answers: 400 naming a recipient field
/// refuses the recipient, any other 400 the message; 401 (bad key) and 403 (sender not
/// verified, temporary block) are ours to fix; 413 too large; 429 with `X-RateLimit-Reset`.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> ProviderFailure {
    let (detail, recipient_field) = error_detail(body);
    if let Some(failure) = http::common_class("SendGrid", status, headers, &detail) {
        return failure;
    }
    let what = format!("SendGrid answered {}: {detail}", status.as_u16());
    if status == StatusCode::BAD_REQUEST && recipient_field {
        ProviderFailure::recipient(what)
    } else {
        ProviderFailure::permanent(what)
    }
}

/// The `errors[].message` (with their `field`) of a SendGrid error body, and whether one
/// of them is about a recipient (`personalizations.N.to…`).
fn error_detail(body: &str) -> (String, bool) {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let errors = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    if errors.is_empty() {
        return (body.chars().take(300).collect(), false);
    }
    let field = |e: &serde_json::Value| e.get("field").and_then(|f| f.as_str()).unwrap_or("").to_string();
    let recipient = errors.iter().any(|e| {
        let f = field(e);
        f.starts_with("personalizations") && (f.contains(".to") || f.contains(".email"))
    });
    let text = errors
        .iter()
        .map(|e| {
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            match field(e) {
                f if f.is_empty() => message.to_string(),
                f => format!("{f}: {message}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    (text, recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_recipient_field_refuses_the_recipient_only() {
        let body = r#"{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email","help":null}]}"#;
        let f = classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
        assert_eq!(f.kind, notify_worker::provider::FailureKind::Recipient);
        assert!(f
            .message
            .contains("personalizations.0.to.0.email: Does not contain a valid address."));
    }

    #[test]
    fn another_bad_request_refuses_the_message() {
        let body = r#"{"errors":[{"message":"The subject is required.","field":"subject"}]}"#;
        let f = classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
        assert_eq!(f.kind, notify_worker::provider::FailureKind::Permanent);
    }
}
