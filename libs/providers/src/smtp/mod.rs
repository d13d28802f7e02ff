//! Email over SMTP with lettre (Tokio), pooled connections.
//!
//! One message per notification and recipient, `multipart/alternative` (text and HTML),
//! with a `Message-ID` derived from the notification id, so a redelivery carries the same
//! id and the receiving side can drop the duplicate.

mod pool;
mod settings;

use std::time::Duration;

use async_trait::async_trait;
use lettre::{
    message::{
        header::{HeaderName, HeaderValue},
        Mailbox, MultiPart, SinglePart,
    },
    transport::smtp::{authentication::Credentials, client::TlsParameters, response::Response},
    Address, Message,
};
use notify_kit::settings::SettingsError;
use notify_templates::{EmailContent, Rendered};
use notify_worker::provider::{message_id, OutgoingMessage, Provider, ProviderError, ProviderReceipt};
use secrecy::ExposeSecret;

pub use settings::{SmtpSettings, SmtpTls};

use crate::header_safe;
use pool::{ConnectionPool, Endpoint, Failure, Security};

/// Delivers [`Rendered::Email`] over SMTP. Share it (`Arc`): the pool is per provider.
pub struct SmtpProvider {
    pool: ConnectionPool,
    from: Mailbox,
    message_id_domain: String,
    timeout: Duration,
}

impl SmtpProvider {
    /// Validates the settings and prepares the pool. Connects lazily (on the first send),
    /// so a server that is down does not stop the worker from starting.
    pub fn new(settings: &SmtpSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        let security = match settings.tls {
            SmtpTls::None => Security::Plain,
            SmtpTls::StartTls => Security::StartTls(tls_parameters(&settings.host)?),
            SmtpTls::Tls => Security::Wrapper(tls_parameters(&settings.host)?),
        };
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.expose_secret().to_string())),
            _ => None,
        };
        let endpoint = Endpoint {
            host: settings.host.clone(),
            port: settings.port,
            security,
            credentials,
            timeout: settings.timeout,
        };
        Ok(Self {
            pool: ConnectionPool::new(endpoint, settings.pool_size as usize),
            from: settings.sender()?,
            message_id_domain: settings.message_id_domain.clone(),
            timeout: settings.timeout,
        })
    }

    /// The message as it will be sent; a recipient that is not an address is permanent.
    fn build_message(&self, message: &OutgoingMessage<'_>, content: &EmailContent) -> Result<Message, ProviderError> {
        let address = message
            .target
            .trim()
            .parse::<Address>()
            .map_err(|e| ProviderError::Permanent(format!("invalid recipient address: {e}")))?;
        let name = message
            .recipient_name
            .map(|n| header_safe(n, 200))
            .filter(|n| !n.is_empty());
        let mut builder = Message::builder()
            .message_id(Some(message_id(message.notification_id, &self.message_id_domain)))
            .from(self.from.clone())
            .to(Mailbox::new(name, address))
            .subject(header_safe(&content.subject, 998))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Notification-Id"),
                message.notification_id.to_string(),
            ));
        let correlation_id = header_safe(message.correlation_id, 200);
        if !correlation_id.is_empty() {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Correlation-Id"),
                correlation_id,
            ));
        }
        let built = if content.html_body.trim().is_empty() {
            builder.singlepart(SinglePart::plain(content.text_body.clone()))
        } else {
            builder.multipart(MultiPart::alternative_plain_html(
                content.text_body.clone(),
                content.html_body.clone(),
            ))
        };
        built.map_err(|e| ProviderError::Permanent(format!("cannot build the email: {e}")))
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, SettingsError> {
    TlsParameters::new(host.to_string())
        .map_err(|e| SettingsError::invalid("APP_SMTP_TLS", format!("cannot set up TLS: {e}")))
}

#[async_trait]
impl Provider for SmtpProvider {
    fn name(&self) -> &'static str {
        "smtp"
    }

    #[tracing::instrument(name = "smtp_send", skip_all, fields(notification_id = %message.notification_id))]
    async fn send(&self, message: &OutgoingMessage<'_>) -> Result<ProviderReceipt, ProviderError> {
        let Rendered::Email(content) = message.content else {
            return Err(ProviderError::Permanent(
                "wrong content: the SMTP provider was given a push notification".into(),
            ));
        };
        let email = self.build_message(message, content)?;
        match self.pool.send(email.envelope(), &email.formatted()).await {
            Ok(response) => Ok(receipt(&response)),
            Err(Failure::Smtp(e)) => Err(classify(&e)),
            Err(Failure::TimedOut) => Err(ProviderError::Transient(format!(
                "SMTP server did not take the message within {:?}",
                self.timeout
            ))),
        }
    }
}

/// The server's answer to the message (often its queue id), as the provider message id.
fn receipt(response: &Response) -> ProviderReceipt {
    let text = response.message().collect::<Vec<_>>().join(" ");
    ProviderReceipt {
        provider_message_id: Some(text.trim().to_string()).filter(|t| !t.is_empty()),
    }
}

/// Authentication refused: our configuration, not the message, is wrong (RFC 4954).
const AUTH_FAILURES: [&str; 4] = ["530", "534", "535", "538"];

/// Classifies an SMTP failure, once: 4xx and every network trouble is transient, 5xx is
/// permanent, except authentication failures, which are configuration problems retried so
/// that nothing is lost while someone fixes the credentials.
fn classify(err: &lettre::transport::smtp::Error) -> ProviderError {
    if let Some(code) = err.status() {
        let code = code.to_string();
        if AUTH_FAILURES.contains(&code.as_str()) {
            tracing::error!(code, error = %err, "the SMTP server refused our credentials: check APP_SMTP_USERNAME / APP_SMTP_PASSWORD");
            return ProviderError::Transient(format!("SMTP authentication failed: {err}"));
        }
        return if err.is_permanent() {
            ProviderError::Permanent(format!("SMTP server refused the message: {err}"))
        } else {
            ProviderError::Transient(format!("SMTP server deferred the message: {err}"))
        };
    }
    if err.is_timeout() {
        return ProviderError::Transient(format!("SMTP timeout: {err}"));
    }
    let text = err.to_string();
    // lettre refuses, before sending, a non-ASCII address to a server without SMTPUTF8:
    // the same message to the same server will always fail.
    if err.is_client() && text.contains("non-ascii") {
        return ProviderError::Permanent(format!("SMTP server cannot take this message: {text}"));
    }
    if err.is_client() || err.is_tls() {
        // STARTTLS or the auth mechanism unsupported, TLS handshake refused: configuration.
        tracing::error!(error = %err, "SMTP connection set-up failed: check APP_SMTP_TLS and the server");
    }
    ProviderError::Transient(format!("SMTP connection failed: {text}"))
}
