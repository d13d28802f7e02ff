//! What every email provider sends, built once: the sender, the recipient, the subject, the
//! text and HTML parts, and the headers every message carries (the deterministic
//! `Message-ID`, `X-Notification-Id`, `X-Correlation-Id`, and `List-Unsubscribe` with
//! `List-Unsubscribe-Post` (RFC 8058) when the delivery has an unsubscribe link).
//!
//! SMTP and the Gmail API send [`Email::to_message`] (RFC 822); SendGrid and Mailgun send
//! the same parts as JSON fields or form fields.

mod settings;

use lettre::{
    message::{
        header::{HeaderName, HeaderValue},
        Mailbox, MultiPart, SinglePart,
    },
    Address, Message,
};
use notify_templates::{EmailContent, Rendered};
use notify_worker::provider::{message_id, Delivery, ProviderFailure};

pub use settings::SenderSettings;

use crate::header_safe;

/// `List-Unsubscribe-Post`'s only value (RFC 8058 §3.1).
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// One email, ready for any provider.
#[derive(Debug, Clone)]
pub struct Email {
    pub from: Mailbox,
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    /// `None` when the template's HTML body is blank: the message is text only.
    pub html: Option<String>,
    /// `<{notification_id}@{domain}>`, the same on every redelivery and every provider.
    pub message_id: String,
    /// Extra headers in the order they are sent: `X-Notification-Id`, `X-Correlation-Id`
    /// (when set), `List-Unsubscribe` and `List-Unsubscribe-Post` (when there is a link).
    pub headers: Vec<(&'static str, String)>,
}

impl Email {
    /// The email of `delivery` from `sender`. Email content and a parseable address are
    /// required: push content is a permanent failure, a bad address a recipient failure.
    pub fn compose(delivery: &Delivery<'_>, sender: &SenderSettings) -> Result<Self, ProviderFailure> {
        let message = &delivery.message;
        let Rendered::Email(content) = message.content else {
            return Err(ProviderFailure::permanent(
                "wrong content: an email provider was given a push notification",
            ));
        };
        let address = message
            .target
            .trim()
            .parse::<Address>()
            .map_err(|e| ProviderFailure::recipient(format!("invalid recipient address: {e}")))?;
        let name = message
            .recipient_name
            .map(|n| header_safe(n, 200))
            .filter(|n| !n.is_empty());
        let mut headers = vec![("X-Notification-Id", message.notification_id.to_string())];
        let correlation_id = header_safe(message.correlation_id, 200);
        if !correlation_id.is_empty() {
            headers.push(("X-Correlation-Id", correlation_id));
        }
        if let Some(url) = delivery.unsubscribe_url.and_then(unsubscribe_link) {
            headers.push(("List-Unsubscribe", format!("<{url}>")));
            headers.push(("List-Unsubscribe-Post", ONE_CLICK.to_string()));
        }
        let EmailContent {
            subject,
            text_body,
            html_body,
        } = content;
        Ok(Self {
            from: sender.mailbox.clone(),
            to: Mailbox::new(name, address),
            subject: header_safe(subject, 998),
            text: text_body.clone(),
            html: Some(html_body.clone()).filter(|h| !h.trim().is_empty()),
            message_id: message_id(message.notification_id, &sender.message_id_domain),
            headers,
        })
    }

    /// The value of one of [`Email::headers`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The RFC 822 message: `multipart/alternative` (text, HTML), or text only.
    pub fn to_message(&self) -> Result<Message, ProviderFailure> {
        let mut builder = Message::builder()
            .message_id(Some(self.message_id.clone()))
            .from(self.from.clone())
            .to(self.to.clone())
            .subject(self.subject.clone());
        for (name, value) in &self.headers {
            builder = builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(name), value.clone()));
        }
        let built = match &self.html {
            None => builder.singlepart(SinglePart::plain(self.text.clone())),
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(self.text.clone(), html.clone())),
        };
        built.map_err(|e| ProviderFailure::permanent(format!("cannot build the email: {e}")))
    }
}

/// The link if it is an absolute http(s) URL that fits in `<…>` on a header line; else
/// `None` (and a warning: the link comes from our own service, so this is a bug there).
fn unsubscribe_link(url: &str) -> Option<&str> {
    let url = url.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 900
        && url.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    if !ok {
        tracing::warn!("unsubscribe link is not an absolute http(s) URL of visible ASCII: List-Unsubscribe left out");
    }
    ok.then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_worker::provider::{FailureKind, OutgoingMessage};
    use uuid::Uuid;

    fn content() -> Rendered {
        Rendered::Email(EmailContent {
            subject: "Hi".into(),
            text_body: "text".into(),
            html_body: " ".into(),
        })
    }

    fn delivery<'a>(target: &'a str, content: &'a Rendered, unsubscribe_url: Option<&'a str>) -> Delivery<'a> {
        Delivery {
            message: OutgoingMessage {
                notification_id: Uuid::nil(),
                correlation_id: "c\r\nBcc: x@y",
                traceparent: None,
                target,
                platform: None,
                recipient_name: None,
                content,
            },
            unsubscribe_url,
            provider: None,
        }
    }

    #[test]
    fn a_blank_html_body_makes_a_text_only_email() {
        let c = content();
        let email = Email::compose(&delivery("a@b.test", &c, None), &SenderSettings::default()).unwrap();
        assert_eq!(email.html, None);
        assert_eq!(email.header("x-correlation-id"), Some("c  Bcc: x@y"));
        assert_eq!(email.header("List-Unsubscribe"), None);
    }

    #[test]
    fn an_unsubscribe_link_adds_both_rfc_8058_headers() {
        let c = content();
        let d = delivery("a@b.test", &c, Some("https://u.test/unsub?t=1"));
        let email = Email::compose(&d, &SenderSettings::default()).unwrap();
        assert_eq!(email.header("List-Unsubscribe"), Some("<https://u.test/unsub?t=1>"));
        assert_eq!(email.header("List-Unsubscribe-Post"), Some(ONE_CLICK));
    }

    #[test]
    fn a_link_that_could_break_the_header_is_left_out() {
        let c = content();
        for bad in [
            "javascript:x",
            "https://u.test/a>b",
            "https://u.test/\r\nBcc: x",
            "/relative",
        ] {
            let email = Email::compose(&delivery("a@b.test", &c, Some(bad)), &SenderSettings::default()).unwrap();
            assert_eq!(email.header("List-Unsubscribe"), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_address_fails_this_recipient_only() {
        let c = content();
        let err = Email::compose(&delivery("not an address", &c, None), &SenderSettings::default()).unwrap_err();
        assert_eq!(err.kind, FailureKind::Recipient);
    }
}
