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
    message::dkim::DkimConfig,
    transport::smtp::{authentication::Credentials, client::TlsParameters, response::Response},
    Message,
};
use notify_kit::settings::SettingsError;
use notify_worker::provider::{Delivery, Provider, ProviderFailure, ProviderReceipt};
use secrecy::ExposeSecret;

pub use settings::{DkimSettings, SmtpSettings, SmtpTls};

use crate::email::{Email, SenderSettings};
use pool::{ConnectionPool, Endpoint, Failure, Security};

/// Delivers [`Rendered::Email`] over SMTP. Share it (`Arc`): the pool is per provider.
pub struct SmtpProvider {
    pool: ConnectionPool,
    sender: SenderSettings,
    dkim: Option<DkimConfig>,
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
            sender: settings.sender()?,
            dkim: settings.dkim.as_ref().map(DkimSettings::config).transpose()?,
            timeout: settings.timeout,
        })
    }

    /// The message as it will be sent, DKIM-signed when a key is configured.
    fn build_message(&self, delivery: &Delivery<'_>) -> Result<Message, ProviderFailure> {
        let mut email = Email::compose(delivery, &self.sender)?.to_message()?;
        if let Some(dkim) = &self.dkim {
            email.sign(dkim);
        }
        Ok(email)
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

    #[tracing::instrument(name = "smtp_send", skip_all, fields(notification_id = %delivery.message.notification_id))]
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let email = self.build_message(delivery)?;
        match self.pool.send(email.envelope(), &email.formatted()).await {
            Ok(response) => Ok(receipt(&response)),
            Err(Failure::Smtp(e)) => Err(classify(&e)),
            Err(Failure::TimedOut) => Err(ProviderFailure::transient(format!(
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
        provider: Some("smtp"),
    }
}

/// Authentication refused: our configuration, not the message, is wrong (RFC 4954).
const AUTH_FAILURES: [&str; 4] = ["530", "534", "535", "538"];

/// Refusals of the recipient (RFC 5321 §4.2.3: mailbox unavailable, not local, name not
/// allowed); any other 5xx refuses the message itself.
const RECIPIENT_REFUSALS: [&str; 3] = ["550", "551", "553"];

/// Classifies an SMTP failure, once: 4xx and every network trouble is transient; 550, 551
/// and 553 refuse the recipient, other 5xx the message; authentication failures are
/// configuration problems, retried (and alerted) so that nothing is lost while someone
/// fixes the credentials.
fn classify(err: &lettre::transport::smtp::Error) -> ProviderFailure {
    if let Some(code) = err.status() {
        let code = code.to_string();
        if AUTH_FAILURES.contains(&code.as_str()) {
            return ProviderFailure::alert(format!(
                "SMTP authentication failed (check APP_SMTP_USERNAME / APP_SMTP_PASSWORD): {err}"
            ));
        }
        return if !err.is_permanent() {
            ProviderFailure::transient(format!("SMTP server deferred the message: {err}"))
        } else if RECIPIENT_REFUSALS.contains(&code.as_str()) {
            ProviderFailure::recipient(format!("SMTP server refused the recipient: {err}"))
        } else {
            ProviderFailure::permanent(format!("SMTP server refused the message: {err}"))
        };
    }
    if err.is_timeout() {
        return ProviderFailure::transient(format!("SMTP timeout: {err}"));
    }
    let text = err.to_string();
    // lettre refuses, before sending, a non-ASCII address to a server without SMTPUTF8:
    // the same message to the same server will always fail.
    if err.is_client() && text.contains("non-ascii") {
        return ProviderFailure::recipient(format!("SMTP server cannot take this address: {text}"));
    }
    if err.is_client() || err.is_tls() {
        // STARTTLS or the auth mechanism unsupported, TLS handshake refused: configuration.
        return ProviderFailure::alert(format!(
            "SMTP connection set-up failed (check APP_SMTP_TLS and the server): {text}"
        ));
    }
    ProviderFailure::transient(format!("SMTP connection failed: {text}"))
}
