//! The SMTP provider's settings, from `APP_SMTP_*`.

use std::{fmt, str::FromStr, time::Duration};

use lettre::message::Mailbox;
use notify_kit::settings::{self, SettingsError};
use secrecy::SecretString;

/// How the connection to the SMTP server is secured (`APP_SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// `none`: plain text (a local relay or test server).
    #[default]
    None,
    /// `starttls`: plain connection upgraded with STARTTLS, which must succeed (port 587).
    StartTls,
    /// `tls`: TLS from the first byte (implicit TLS, port 465).
    Tls,
}

impl FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            other => Err(format!("`{other}` is not one of `none`, `starttls`, `tls`")),
        }
    }
}

impl fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::StartTls => "starttls",
            Self::Tls => "tls",
        })
    }
}

/// Settings of [`SmtpProvider`]. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `APP_SMTP_HOST` (default `127.0.0.1`); also the name checked in the TLS certificate.
    pub host: String,
    /// `APP_SMTP_PORT` (default `2525`, the local `smtp-sink`).
    pub port: u16,
    /// `APP_SMTP_TLS`: `none` (default), `starttls` or `tls`.
    pub tls: SmtpTls,
    /// `APP_SMTP_USERNAME` (optional; set together with the password).
    pub username: Option<String>,
    /// `APP_SMTP_PASSWORD` (optional, secret).
    pub password: Option<SecretString>,
    /// `APP_SMTP_FROM`: the sender, `Name <address>` or a bare address (default
    /// `Notifications <no-reply@notify.local>`).
    pub from: String,
    /// `APP_SMTP_MESSAGE_ID_DOMAIN`: the right-hand side of every `Message-ID` (default
    /// `notify.local`). Keep it stable: changing it changes the ids of redeliveries.
    pub message_id_domain: String,
    /// `APP_SMTP_TIMEOUT_MS`: limit of one send, from taking a connection (connecting,
    /// TLS, login) to the server's answer to the message (default 10000).
    pub timeout: Duration,
    /// `APP_SMTP_POOL_SIZE`: at most this many SMTP sessions at once; idle ones are kept
    /// for reuse (default 8).
    pub pool_size: u32,
}

impl Default for SmtpSettings {
    /// The documented defaults: the local `smtp-sink` on 127.0.0.1:2525, no TLS, no login.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2525,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Notifications <no-reply@notify.local>".into(),
            message_id_domain: "notify.local".into(),
            timeout: Duration::from_millis(10_000),
            pool_size: 8,
        }
    }
}

impl SmtpSettings {
    /// Reads `APP_SMTP_*`, falling back to the defaults, and validates the result.
    pub fn from_env() -> Result<Self, SettingsError> {
        let d = Self::default();
        let s = Self {
            host: settings::string("APP_SMTP_HOST", &d.host),
            port: settings::parse("APP_SMTP_PORT", d.port)?,
            tls: settings::parse("APP_SMTP_TLS", d.tls)?,
            username: settings::optional("APP_SMTP_USERNAME"),
            password: settings::secret("APP_SMTP_PASSWORD"),
            from: settings::string("APP_SMTP_FROM", &d.from),
            message_id_domain: settings::string("APP_SMTP_MESSAGE_ID_DOMAIN", &d.message_id_domain),
            timeout: settings::millis("APP_SMTP_TIMEOUT_MS", 10_000)?,
            pool_size: settings::parse("APP_SMTP_POOL_SIZE", d.pool_size)?,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks what the types do not: the sender parses, credentials come in pairs, sizes
    /// and durations are positive, the Message-ID domain is a plain host name.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.sender()?;
        if self.host.trim().is_empty() {
            return Err(SettingsError::invalid("APP_SMTP_HOST", "must not be empty"));
        }
        match (&self.username, &self.password) {
            (Some(_), None) => {
                return Err(SettingsError::invalid(
                    "APP_SMTP_PASSWORD",
                    "is required when APP_SMTP_USERNAME is set",
                ))
            }
            (None, Some(_)) => {
                return Err(SettingsError::invalid(
                    "APP_SMTP_USERNAME",
                    "is required when APP_SMTP_PASSWORD is set",
                ))
            }
            _ => {}
        }
        let domain_ok = !self.message_id_domain.is_empty()
            && self
                .message_id_domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !domain_ok {
            return Err(SettingsError::invalid(
                "APP_SMTP_MESSAGE_ID_DOMAIN",
                "must be a host name (letters, digits, `.` and `-`)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(SettingsError::invalid("APP_SMTP_TIMEOUT_MS", "must be > 0"));
        }
        if self.pool_size == 0 {
            return Err(SettingsError::invalid("APP_SMTP_POOL_SIZE", "must be > 0"));
        }
        Ok(())
    }

    pub(super) fn sender(&self) -> Result<Mailbox, SettingsError> {
        self.from
            .parse::<Mailbox>()
            .map_err(|e| SettingsError::invalid("APP_SMTP_FROM", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_modes_parse_from_their_names_only() {
        assert_eq!("none".parse::<SmtpTls>(), Ok(SmtpTls::None));
        assert_eq!("STARTTLS".parse::<SmtpTls>(), Ok(SmtpTls::StartTls));
        assert_eq!("tls".parse::<SmtpTls>(), Ok(SmtpTls::Tls));
        assert!("ssl".parse::<SmtpTls>().is_err());
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(SmtpSettings::default().validate().is_ok());
    }

    #[test]
    fn a_bare_sender_address_is_accepted() {
        let settings = SmtpSettings {
            from: "notifications@notify.local".into(),
            ..SmtpSettings::default()
        };

        assert!(settings.validate().is_ok());
    }

    #[test]
    fn a_malformed_sender_names_its_variable() {
        let settings = SmtpSettings {
            from: "not an address".into(),
            ..SmtpSettings::default()
        };

        let err = settings.validate().unwrap_err();

        assert!(err.to_string().contains("APP_SMTP_FROM"), "{err}");
    }

    #[test]
    fn a_username_without_a_password_is_refused() {
        let settings = SmtpSettings {
            username: Some("user".into()),
            ..SmtpSettings::default()
        };

        let err = settings.validate().unwrap_err();

        assert!(err.to_string().contains("APP_SMTP_PASSWORD"), "{err}");
    }

    #[test]
    fn the_password_does_not_appear_in_debug_output() {
        let settings = SmtpSettings {
            username: Some("user".into()),
            password: Some(SecretString::from("hunter2")),
            ..SmtpSettings::default()
        };

        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
