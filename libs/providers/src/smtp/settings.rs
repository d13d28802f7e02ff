//! The SMTP provider's settings, from `APP_SMTP_*`.

use std::{fmt, str::FromStr, time::Duration};

use lettre::message::{
    dkim::{DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey},
    header::HeaderName,
};
use notify_kit::settings::{self, SettingsError};
use secrecy::{ExposeSecret, SecretString};

use crate::email::SenderSettings;

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
    /// `APP_EMAIL_FROM` (or `APP_SMTP_FROM`): the sender, `Name <address>` or a bare address (default
    /// `Notifications <no-reply@notify.local>`).
    pub from: String,
    /// `APP_EMAIL_MESSAGE_ID_DOMAIN` (or `APP_SMTP_MESSAGE_ID_DOMAIN`): the right-hand side of every `Message-ID` (default
    /// `notify.local`). Keep it stable: changing it changes the ids of redeliveries.
    pub message_id_domain: String,
    /// `APP_SMTP_TIMEOUT_MS`: limit of one send, from taking a connection (connecting,
    /// TLS, login) to the server's answer to the message (default 10000).
    pub timeout: Duration,
    /// `APP_SMTP_POOL_SIZE`: at most this many SMTP sessions at once; idle ones are kept
    /// for reuse (default 8).
    pub pool_size: u32,
    /// `APP_SMTP_ALLOW_PLAINTEXT_AUTH` (default `false`): allow a login with
    /// `APP_SMTP_TLS=none`, which sends the password in clear. Only for a local relay.
    pub allow_plaintext_auth: bool,
    /// DKIM signing (`APP_SMTP_DKIM_*`), when a key is configured.
    pub dkim: Option<DkimSettings>,
}

/// DKIM signing of outgoing mail (rsa-sha256, relaxed/relaxed). `Debug` hides the key.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// `APP_SMTP_DKIM_PRIVATE_KEY`: the RSA private key, PKCS#1 PEM
    /// (`-----BEGIN RSA PRIVATE KEY-----`). Setting it turns signing on.
    pub private_key: SecretString,
    /// `APP_SMTP_DKIM_SELECTOR` (required with a key): the `s=` tag; the public key is
    /// published at `{selector}._domainkey.{domain}`.
    pub selector: String,
    /// `APP_SMTP_DKIM_DOMAIN` (default: the sender address's domain): the `d=` tag.
    pub domain: String,
}

/// Headers covered by the signature. RFC 8058 requires `List-Unsubscribe` and
/// `List-Unsubscribe-Post` to be signed; a name listed without a header in the message
/// stops anyone from adding that header later.
const DKIM_SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "X-Notification-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

impl DkimSettings {
    /// Reads `APP_SMTP_DKIM_*`: `None` without a key; `sender_domain` is the default `d=`.
    fn from_env(sender_domain: &str) -> Result<Option<Self>, SettingsError> {
        let Some(private_key) = settings::secret("APP_SMTP_DKIM_PRIVATE_KEY") else {
            return Ok(None);
        };
        Ok(Some(Self {
            private_key,
            selector: settings::required("APP_SMTP_DKIM_SELECTOR")?,
            domain: settings::string("APP_SMTP_DKIM_DOMAIN", sender_domain),
        }))
    }

    /// The signing configuration; a key that does not parse names its variable.
    pub(super) fn config(&self) -> Result<DkimConfig, SettingsError> {
        let key =
            DkimSigningKey::new(self.private_key.expose_secret().trim(), DkimSigningAlgorithm::Rsa).map_err(|e| {
                SettingsError::invalid(
                    "APP_SMTP_DKIM_PRIVATE_KEY",
                    format!("not an RSA private key in PKCS#1 PEM: {e}"),
                )
            })?;
        if !crate::is_host_name(&self.selector) {
            return Err(SettingsError::invalid(
                "APP_SMTP_DKIM_SELECTOR",
                "must be letters, digits, `.` and `-`",
            ));
        }
        if !crate::is_host_name(&self.domain) {
            return Err(SettingsError::invalid("APP_SMTP_DKIM_DOMAIN", "must be a host name"));
        }
        Ok(DkimConfig::new(
            self.selector.clone(),
            self.domain.clone(),
            key,
            DKIM_SIGNED_HEADERS
                .iter()
                .map(|h| HeaderName::new_from_ascii_str(h))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        ))
    }
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
            allow_plaintext_auth: false,
            dkim: None,
        }
    }
}

impl SmtpSettings {
    /// Reads `APP_SMTP_*`, falling back to the defaults, and validates the result.
    pub fn from_env() -> Result<Self, SettingsError> {
        let d = Self::default();
        let from = settings::string("APP_EMAIL_FROM", &settings::string("APP_SMTP_FROM", &d.from));
        let s = Self {
            host: settings::string("APP_SMTP_HOST", &d.host),
            port: settings::parse("APP_SMTP_PORT", d.port)?,
            tls: settings::parse("APP_SMTP_TLS", d.tls)?,
            username: settings::optional("APP_SMTP_USERNAME"),
            password: settings::secret("APP_SMTP_PASSWORD"),
            message_id_domain: settings::string(
                "APP_EMAIL_MESSAGE_ID_DOMAIN",
                &settings::string("APP_SMTP_MESSAGE_ID_DOMAIN", &d.message_id_domain),
            ),
            timeout: settings::millis("APP_SMTP_TIMEOUT_MS", 10_000)?,
            pool_size: settings::parse("APP_SMTP_POOL_SIZE", d.pool_size)?,
            allow_plaintext_auth: settings::parse("APP_SMTP_ALLOW_PLAINTEXT_AUTH", false)?,
            dkim: DkimSettings::from_env(sender_domain(&from))?,
            from,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks what the types do not: the sender parses, credentials come in pairs and only
    /// over TLS (unless allowed), sizes and durations are positive, the Message-ID domain is
    /// a plain host name, the DKIM key parses.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.sender()?;
        if self.username.is_some() && self.tls == SmtpTls::None && !self.allow_plaintext_auth {
            return Err(SettingsError::invalid(
                "APP_SMTP_USERNAME",
                "a login needs APP_SMTP_TLS=starttls or tls (the password would travel in clear); \
                 set APP_SMTP_ALLOW_PLAINTEXT_AUTH=true for a local relay",
            ));
        }
        if let Some(dkim) = &self.dkim {
            dkim.config()?;
        }
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
        if self.timeout.is_zero() {
            return Err(SettingsError::invalid("APP_SMTP_TIMEOUT_MS", "must be > 0"));
        }
        if self.pool_size == 0 {
            return Err(SettingsError::invalid("APP_SMTP_POOL_SIZE", "must be > 0"));
        }
        Ok(())
    }

    pub(super) fn sender(&self) -> Result<SenderSettings, SettingsError> {
        SenderSettings::parse(&self.from, &self.message_id_domain)
    }
}

/// The domain of a sender (`Name <user@domain>` or `user@domain`), the default DKIM `d=`.
fn sender_domain(from: &str) -> &str {
    from.rsplit('@').next().unwrap_or(from).trim_end_matches('>').trim()
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

        assert!(err.to_string().contains("APP_EMAIL_FROM"), "{err}");
    }

    #[test]
    fn a_username_without_a_password_is_refused() {
        let settings = SmtpSettings {
            username: Some("user".into()),
            tls: SmtpTls::StartTls,
            ..SmtpSettings::default()
        };

        let err = settings.validate().unwrap_err();

        assert!(err.to_string().contains("APP_SMTP_PASSWORD"), "{err}");
    }

    #[test]
    fn a_login_without_tls_is_refused_unless_allowed() {
        let plain = SmtpSettings {
            username: Some("user".into()),
            password: Some(SecretString::from("pw")),
            ..SmtpSettings::default()
        };

        let err = plain.validate().unwrap_err();

        assert!(err.to_string().contains("APP_SMTP_TLS"), "{err}");
        let allowed = SmtpSettings {
            allow_plaintext_auth: true,
            ..plain
        };
        assert!(allowed.validate().is_ok());
    }

    #[test]
    fn a_dkim_key_that_is_not_a_key_names_its_variable() {
        let settings = SmtpSettings {
            dkim: Some(DkimSettings {
                private_key: SecretString::from("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----"),
                selector: "s1".into(),
                domain: "notify.local".into(),
            }),
            ..SmtpSettings::default()
        };

        let err = settings.validate().unwrap_err();

        assert!(err.to_string().contains("APP_SMTP_DKIM_PRIVATE_KEY"), "{err}");
        assert!(!format!("{settings:?}").contains("nope"));
    }

    #[test]
    fn the_dkim_domain_defaults_to_the_senders() {
        assert_eq!(
            sender_domain("Notifications <no-reply@mail.example.test>"),
            "mail.example.test"
        );
        assert_eq!(sender_domain("a@b.test"), "b.test");
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
