//! The sender every email provider uses, from `APP_EMAIL_FROM` and
//! `APP_EMAIL_MESSAGE_ID_DOMAIN` (falling back to the SMTP provider's older
//! `APP_SMTP_FROM` / `APP_SMTP_MESSAGE_ID_DOMAIN`).

use lettre::message::Mailbox;
use notify_kit::settings::{self, SettingsError};

const DEFAULT_FROM: &str = "Notifications <no-reply@notify.local>";
const DEFAULT_DOMAIN: &str = "notify.local";

/// Who the email is from, and the domain of its `Message-ID`. One per channel, so that a
/// message redelivered through another provider keeps its `Message-ID`.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// `APP_EMAIL_FROM` (or `APP_SMTP_FROM`): `Name <address>` or a bare address (default
    /// `Notifications <no-reply@notify.local>`).
    pub mailbox: Mailbox,
    /// `APP_EMAIL_MESSAGE_ID_DOMAIN` (or `APP_SMTP_MESSAGE_ID_DOMAIN`; default
    /// `notify.local`): the right-hand side of every `Message-ID`. Keep it stable.
    pub message_id_domain: String,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self::parse(DEFAULT_FROM, DEFAULT_DOMAIN).unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl SenderSettings {
    /// Reads and validates the sender.
    pub fn from_env() -> Result<Self, SettingsError> {
        let from = settings::string("APP_EMAIL_FROM", &settings::string("APP_SMTP_FROM", DEFAULT_FROM));
        let domain = settings::string(
            "APP_EMAIL_MESSAGE_ID_DOMAIN",
            &settings::string("APP_SMTP_MESSAGE_ID_DOMAIN", DEFAULT_DOMAIN),
        );
        Self::parse(&from, &domain)
    }

    /// A sender from its two values, validated: the address parses, the domain is a
    /// plain host name.
    pub fn parse(from: &str, message_id_domain: &str) -> Result<Self, SettingsError> {
        let mailbox = from
            .parse::<Mailbox>()
            .map_err(|e| SettingsError::invalid("APP_EMAIL_FROM", e))?;
        if !crate::is_host_name(message_id_domain) {
            return Err(SettingsError::invalid(
                "APP_EMAIL_MESSAGE_ID_DOMAIN",
                "must be a host name (letters, digits, `.` and `-`)",
            ));
        }
        Ok(Self {
            mailbox,
            message_id_domain: message_id_domain.to_string(),
        })
    }
}
