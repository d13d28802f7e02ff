//! The delivery providers of the workers, each implementing
//! [`notify_worker::provider::Provider`] and classifying every failure once, as transient
//! (retry later) or permanent (dead-letter now):
//!
//! - [`SmtpProvider`] (`smtp`): email over SMTP with lettre, pooled, with a deterministic
//!   `Message-ID` per notification. Settings: [`SmtpSettings`] (`APP_SMTP_*`).
//! - [`HttpPushProvider`] (`fcm`): push over an FCM-HTTP-v1-like JSON API. Settings:
//!   [`PushSettings`] (`APP_PUSH_*`).

pub mod push;
pub mod smtp;

pub use push::{DeviceToken, HttpPushProvider, InvalidDeviceToken, PushSettings};
pub use smtp::{SmtpProvider, SmtpSettings, SmtpTls};

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
