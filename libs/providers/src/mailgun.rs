//! Email through Mailgun's messages API: `POST {base}/v3/{domain}/messages`, a multipart
//! form, basic auth `api:{key}`; `200` with `{"id": "<…>", "message": "Queued. Thank you."}`.
//!
//! Our headers travel as `h:` fields; the notification id also as the `v:notification_id`
//! variable, which Mailgun's webhooks return with every event.

use std::time::Duration;

use async_trait::async_trait;
use notify_kit::settings::{self, SettingsError};
use notify_worker::provider::{Delivery, Provider, ProviderFailure, ProviderReceipt};
use reqwest::{header::HeaderMap, multipart::Form, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    email::{Email, SenderSettings},
    http,
};

/// Mailgun's two regions.
pub const US_BASE_URL: &str = "https://api.mailgun.net";
pub const EU_BASE_URL: &str = "https://api.eu.mailgun.net";

/// Settings of [`MailgunProvider`], from `APP_MAILGUN_*`. `Debug` hides the key.
#[derive(Debug, Clone)]
pub struct MailgunSettings {
    /// `APP_MAILGUN_API_KEY` (required, secret).
    pub api_key: SecretString,
    /// `APP_MAILGUN_DOMAIN` (required): the sending domain, as configured at Mailgun.
    pub domain: String,
    /// `APP_MAILGUN_REGION`: `us` (default, `https://api.mailgun.net`) or `eu`
    /// (`https://api.eu.mailgun.net`); `APP_MAILGUN_BASE_URL` overrides both (tests).
    pub base_url: String,
    /// `APP_MAILGUN_TIMEOUT_MS`: limit of one request (default 10000).
    pub timeout: Duration,
    /// `APP_EMAIL_FROM`, `APP_EMAIL_MESSAGE_ID_DOMAIN` (shared by every email provider).
    pub sender: SenderSettings,
}

impl MailgunSettings {
    /// Reads `APP_MAILGUN_*` and the sender; key and domain are required.
    pub fn from_env() -> Result<Self, SettingsError> {
        let region_url = match settings::string("APP_MAILGUN_REGION", "us")
            .to_ascii_lowercase()
            .as_str()
        {
            "us" => US_BASE_URL,
            "eu" => EU_BASE_URL,
            other => {
                return Err(SettingsError::invalid(
                    "APP_MAILGUN_REGION",
                    format!("`{other}` is not `us` or `eu`"),
                ))
            }
        };
        let s = Self {
            api_key: settings::secret("APP_MAILGUN_API_KEY").ok_or_else(|| SettingsError::Missing {
                name: "APP_MAILGUN_API_KEY".into(),
            })?,
            domain: settings::required("APP_MAILGUN_DOMAIN")?,
            base_url: settings::string("APP_MAILGUN_BASE_URL", region_url),
            timeout: settings::millis("APP_MAILGUN_TIMEOUT_MS", 10_000)?,
            sender: SenderSettings::from_env()?,
        };
        s.messages_url()?;
        Ok(s)
    }

    fn messages_url(&self) -> Result<Url, SettingsError> {
        if !crate::is_host_name(&self.domain) {
            return Err(SettingsError::invalid("APP_MAILGUN_DOMAIN", "must be a domain name"));
        }
        crate::api_url(
            &self.base_url,
            &format!("/v3/{}/messages", self.domain),
            "APP_MAILGUN_BASE_URL",
        )
    }
}

/// Delivers email through Mailgun. Share it (`Arc`).
pub struct MailgunProvider {
    client: reqwest::Client,
    url: Url,
    api_key: SecretString,
    sender: SenderSettings,
}

impl MailgunProvider {
    pub fn new(settings: &MailgunSettings) -> Result<Self, SettingsError> {
        Ok(Self {
            client: http::client(settings.timeout, "APP_MAILGUN_TIMEOUT_MS")?,
            url: settings.messages_url()?,
            api_key: settings.api_key.clone(),
            sender: settings.sender.clone(),
        })
    }
}

/// The form fields of one email.
fn form_fields(email: &Email, notification_id: &str) -> Vec<(String, String)> {
    let mut fields = vec![
        ("from".to_string(), email.from.to_string()),
        ("to".to_string(), email.to.to_string()),
        ("subject".to_string(), email.subject.clone()),
        ("text".to_string(), email.text.clone()),
    ];
    if let Some(html) = &email.html {
        fields.push(("html".into(), html.clone()));
    }
    fields.push(("h:Message-Id".into(), email.message_id.clone()));
    for (name, value) in &email.headers {
        fields.push((format!("h:{name}"), value.clone()));
    }
    fields.push(("v:notification_id".into(), notification_id.to_string()));
    fields
}

#[async_trait]
impl Provider for MailgunProvider {
    fn name(&self) -> &'static str {
        "mailgun"
    }

    #[tracing::instrument(name = "mailgun_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let email = Email::compose(delivery, &self.sender)?;
        let form = form_fields(&email, &delivery.message.notification_id.to_string())
            .into_iter()
            .fold(Form::new(), |form, (name, value)| form.text(name, value));
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth("api", Some(self.api_key.expose_secret()))
            .multipart(form)
            .send()
            .await
            .map_err(|e| http::request_failed("Mailgun", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(ProviderReceipt {
                provider_message_id: http::json_str(&body, "id"),
                provider: Some("mailgun"),
            });
        }
        Err(classify(status, &headers, &body))
    }
}

/// Classifies a refusal from Mailgun's documented answers: 400 about the `to` parameter
/// refuses the recipient, any other 400 the message; 401/403 (key), 402 (account) and 404
/// (unknown sending domain) are ours to fix; 413 too large; 429 and 5xx transient.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> ProviderFailure {
    let detail = http::json_str(body, "message").unwrap_or_else(|| body.chars().take(300).collect());
    if let Some(failure) = http::common_class("Mailgun", status, headers, &detail) {
        return failure;
    }
    let what = format!("Mailgun answered {}: {detail}", status.as_u16());
    match status.as_u16() {
        402 | 404 => ProviderFailure::alert(what),
        400 if detail.to_ascii_lowercase().contains("'to'") => ProviderFailure::recipient(what),
        _ => ProviderFailure::permanent(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_worker::provider::FailureKind;

    #[test]
    fn a_bad_to_parameter_refuses_the_recipient_only() {
        let body = r#"{"message": "'to' parameter is not a valid address. please check documentation"}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), body).kind,
            FailureKind::Recipient
        );
        let other = r#"{"message": "Need at least one of 'text' or 'html' parameters specified"}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), other).kind,
            FailureKind::Permanent
        );
    }

    #[test]
    fn an_unknown_domain_is_ours_to_fix() {
        let f = classify(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            r#"{"message": "Domain not found: x.test"}"#,
        );
        assert!(f.is_transient() && f.alert);
    }
}
