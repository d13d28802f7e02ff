//! What a template holds, per channel.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Push,
}

impl Channel {
    /// `email` or `push`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Push => "push",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(Self::Email),
            "push" => Ok(Self::Push),
            _ => Err("must be `email` or `push`".into()),
        }
    }
}

/// An email template (or a rendered email): every field is a minijinja template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailContent {
    /// Subject line; variables are not escaped.
    pub subject: String,
    /// Plain-text body; variables are not escaped.
    pub text_body: String,
    /// HTML body; variables are HTML-escaped (mark trusted markup with `|safe`).
    pub html_body: String,
}

/// A push template (or a rendered push notification). No field is escaped.
///
/// Rendering checks what the platforms act on ([`crate::render()`]): `image_url` must be an
/// `https` URL, `link_url` an `https` URL or an app deep link (never `javascript:`,
/// `data:`, `http:`…), `badge` a count, `ttl_seconds` at most 28 days, `collapse_key` at
/// most 32 URL-safe characters (Web Push's `Topic`). The optional fields are additive:
/// content stored without them reads back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushContent {
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Where a tap leads (deep link or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_url: Option<String>,
    /// Sound to play (`default`, or a sound file bundled with the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// The app icon's badge count (iOS; a decimal count once rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    /// Notifications with the same key replace each other on the device (Android
    /// `collapse_key`, APNs `apns-collapse-id`, Web Push `Topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// How long the push service keeps the notification for an offline device, in seconds
    /// (a decimal count once rendered; default: the provider's, 4 weeks for FCM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<String>,
}

/// A template's content for one language, keyed by its channel: serialised as the
/// channel's fields plus `"channel": "email" | "push"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum TemplateContent {
    Email(EmailContent),
    Push(PushContent),
}

impl TemplateContent {
    /// The channel this content is for.
    pub fn channel(&self) -> Channel {
        match self {
            Self::Email(_) => Channel::Email,
            Self::Push(_) => Channel::Push,
        }
    }

    /// Each templated field with its name, in a fixed order (absent optional fields are
    /// left out).
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Email(c) => vec![
                ("subject", c.subject.as_str()),
                ("text_body", c.text_body.as_str()),
                ("html_body", c.html_body.as_str()),
            ],
            Self::Push(c) => {
                let mut fields = vec![("title", c.title.as_str()), ("body", c.body.as_str())];
                let optional = [
                    ("image_url", &c.image_url),
                    ("link_url", &c.link_url),
                    ("sound", &c.sound),
                    ("badge", &c.badge),
                    ("collapse_key", &c.collapse_key),
                    ("ttl_seconds", &c.ttl_seconds),
                ];
                fields.extend(
                    optional
                        .into_iter()
                        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v))),
                );
                fields
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_is_tagged_with_its_channel() {
        let push = TemplateContent::Push(PushContent {
            title: "Hi".into(),
            body: "There".into(),
            link_url: Some("https://x.test".into()),
            ..PushContent::default()
        });
        let v = serde_json::to_value(&push).unwrap();
        assert_eq!(
            v,
            json!({"channel": "push", "title": "Hi", "body": "There", "link_url": "https://x.test"})
        );
        assert_eq!(serde_json::from_value::<TemplateContent>(v).unwrap(), push);
        assert_eq!(push.channel(), Channel::Push);
    }

    #[test]
    fn channels_parse_from_their_names_only() {
        assert_eq!("email".parse::<Channel>().unwrap(), Channel::Email);
        assert!("Email".parse::<Channel>().is_err());
        assert!("sms".parse::<Channel>().is_err());
    }
}
