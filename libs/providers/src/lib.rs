//! The delivery providers of the workers, each implementing
//! [`notify_worker::provider::Provider`] and classifying every failure once (transient,
//! permanent for the message, permanent for the recipient; alert when it is ours to fix),
//! and what they share:
//!
//! - email: [`SmtpProvider`] (`smtp`, with STARTTLS/TLS, login and DKIM),
//!   [`SendGridProvider`] (`sendgrid`), [`MailgunProvider`] (`mailgun`), [`GmailProvider`]
//!   (`gmail`), all sending the same [`email::Email`];
//! - push: [`FcmProvider`] (`fcm`, FCM HTTP v1), [`WebPushProvider`] (`webpush`, RFC 8291
//!   encryption and VAPID), [`OneSignalProvider`] (`onesignal`); [`HttpPushProvider`]
//!   (`http`), an FCM-like JSON API with a static key kept as a local stand-in;
//!   a device that must be removed fails with `ProviderFailure::gone` ([`push::gone`]);
//! - [`chain::ProviderChain`]: ordered providers with failover, a [`breaker`] and a shared
//!   [`rate_limit`] per member, itself a provider; [`build_email_chain`] and
//!   [`build_push_chain`] build each channel's from `APP_EMAIL_PROVIDERS` /
//!   `APP_PUSH_PROVIDERS`;
//! - [`google_auth::TokenSource`]: OAuth2 tokens from a Google service-account key (Gmail,
//!   FCM).

pub mod breaker;
pub mod chain;
pub mod email;
pub mod fcm;
pub mod gmail;
pub mod google_auth;
pub mod http;
pub mod mailgun;
pub mod onesignal;
pub mod push;
pub mod rate_limit;
pub mod sendgrid;
pub mod smtp;
pub mod webpush;

pub use chain::{build_email_chain, build_push_chain, EmailChainSettings, ProviderChain, PushChainSettings};
pub use fcm::{FcmProvider, FcmSettings};
pub use gmail::{GmailProvider, GmailSettings};
pub use mailgun::{MailgunProvider, MailgunSettings};
pub use onesignal::{OneSignalProvider, OneSignalSettings};
pub use push::{DeviceToken, HttpPushProvider, InvalidDeviceToken, PushSettings};
pub use sendgrid::{SendGridProvider, SendGridSettings};
pub use smtp::{DkimSettings, SmtpProvider, SmtpSettings, SmtpTls};
pub use webpush::{WebPushProvider, WebPushSettings, WebPushSubscription};

/// A plain host name: letters, digits, `.` and `-`, not empty (a Message-ID domain, a DKIM
/// selector or domain, a Mailgun sending domain).
pub(crate) fn is_host_name(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `{base}{path}` as an http(s) URL; `var` names the base's variable in the error.
pub(crate) fn api_url(base: &str, path: &str, var: &str) -> Result<reqwest::Url, notify_kit::settings::SettingsError> {
    let url = reqwest::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| notify_kit::settings::SettingsError::invalid(var, e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(notify_kit::settings::SettingsError::invalid(
            var,
            "must be an http(s) URL",
        ));
    }
    Ok(url)
}

/// `value` made safe for one header line: control characters (CR and LF among them) become
/// spaces, and it is cut to `max_chars`. Values we pass on (correlation ids, names) come
/// from callers and must not be able to add headers.
pub(crate) fn header_safe(value: &str, max_chars: usize) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::header_safe;

    #[test]
    fn header_values_cannot_break_the_line() {
        assert_eq!(header_safe("abc\r\nBcc: x@y", 100), "abc  Bcc: x@y");
        assert_eq!(header_safe("abcdef", 3), "abc");
    }
}
