//! The suppression list's values: what is suppressed (a channel and a normalised address),
//! why, and who said so. Parsed once at the edge ([`SuppressionTarget::parse`],
//! [`NewSuppression::parse`]).

use notify_kit::{validate, FieldError};
use notify_schemas::Channel;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::values::EmailAddress;

/// Longest accepted `source`, in characters.
pub const MAX_SOURCE_CHARS: usize = 100;
/// Longest accepted `detail`, in characters (a provider's diagnostic, an operator's note).
pub const MAX_DETAIL_CHARS: usize = 1000;

/// Why an address is suppressed. Each keeps the address suppressed until an operator lifts
/// it; when the same address is suppressed again, the stronger reason wins
/// ([`Reason::strength`]): `complaint` > `unsubscribe` > `hard_bounce` > `manual`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The provider reported a permanent bounce (no such mailbox, domain does not exist).
    HardBounce,
    /// The recipient marked a message as spam.
    Complaint,
    /// The recipient unsubscribed at the provider (its own unsubscribe link or header).
    Unsubscribe,
    /// An operator suppressed it.
    Manual,
}

impl Reason {
    /// Every reason, as spelt in the API and the table.
    pub const ALL: [Reason; 4] = [Self::HardBounce, Self::Complaint, Self::Unsubscribe, Self::Manual];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::Unsubscribe => "unsubscribe",
            Self::Manual => "manual",
        }
    }

    /// Order in which a later reason replaces an earlier one (higher replaces lower).
    pub fn strength(self) -> u8 {
        match self {
            Self::Manual => 1,
            Self::HardBounce => 2,
            Self::Unsubscribe => 3,
            Self::Complaint => 4,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| "must be one of: hard_bounce, complaint, unsubscribe, manual".to_string())
    }
}

/// What is suppressed: a channel and its address, normalised (email: trimmed and
/// lower-cased, whole address; push: the device token as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionTarget {
    pub channel: Channel,
    address: String,
}

impl SuppressionTarget {
    /// The `{channel}/{address}` of a path, each problem reported under `channel` or
    /// `address`.
    pub fn parse(channel: &str, address: &str) -> Result<Self, Vec<FieldError>> {
        let channel: Channel = channel
            .parse()
            .map_err(|_| vec![FieldError::new("channel", "must be `email` or `push`")])?;
        Self::for_channel(channel, address).map_err(|reason| vec![FieldError::new("address", reason)])
    }

    /// `address` checked and normalised as an address of `channel`.
    pub fn for_channel(channel: Channel, address: &str) -> Result<Self, String> {
        let address = match channel {
            Channel::Email => EmailAddress::parse(address)?.as_str().to_lowercase(),
            Channel::Push => push_address(address)?,
        };
        Ok(Self { channel, address })
    }

    /// The normalised address (the table's key with the channel).
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// Request body of `PUT /api/v1/suppressions/{channel}/{address}` (snake_case only; unknown
/// fields are rejected). Checked by [`NewSuppression::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionBody {
    /// `hard_bounce`, `complaint`, `unsubscribe` or `manual`.
    #[schema(value_type = String, example = "hard_bounce")]
    pub reason: Option<Value>,
    /// Who says so, 1 to 100 characters (e.g. `sendgrid`, `mailgun`); default
    /// `operator:<the token's subject>`.
    #[schema(value_type = Option<String>, example = "sendgrid")]
    pub source: Option<Value>,
    /// The provider's diagnostic or a note, at most 1000 characters.
    #[schema(value_type = Option<String>, example = "550 5.1.1 The email account that you tried to reach does not exist")]
    pub detail: Option<Value>,
}

/// A suppression to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuppression {
    pub reason: Reason,
    /// `None`: the caller did not say (the handler names the operator).
    pub source: Option<String>,
    pub detail: Option<String>,
}

/// A device token as the push providers store it (an FCM token, a OneSignal id, a Web Push
/// subscription's canonical JSON): 1 to 4096 characters, no whitespace or control characters.
fn push_address(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.chars().count() > 4096 {
        return Err("must be a device token of 1 to 4096 characters".into());
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    Ok(raw.to_string())
}

fn parse_source(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if !(1..=MAX_SOURCE_CHARS).contains(&chars) {
        return Err(format!("must be 1 to {MAX_SOURCE_CHARS} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_string())
}

fn parse_detail(raw: &str) -> Result<String, String> {
    if raw.chars().count() > MAX_DETAIL_CHARS {
        return Err(format!("must be at most {MAX_DETAIL_CHARS} characters"));
    }
    if raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err("must not contain control characters other than newlines and tabs".into());
    }
    Ok(raw.to_string())
}

impl NewSuppression {
    /// A whole `PUT` body: `{reason, source?, detail?}`, every problem named.
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<SuppressionBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let reason = validate::string(body.reason.as_ref(), "reason", &mut errors).and_then(|raw| {
            Reason::parse(raw)
                .map_err(|e| errors.push(FieldError::new("reason", e)))
                .ok()
        });
        let source = validate::optional_string(body.source.as_ref(), "source", &mut errors)
            .ok()
            .flatten()
            .and_then(|raw| {
                parse_source(raw)
                    .map_err(|e| errors.push(FieldError::new("source", e)))
                    .ok()
            });
        let detail = validate::optional_string(body.detail.as_ref(), "detail", &mut errors)
            .ok()
            .flatten()
            .and_then(|raw| {
                parse_detail(raw)
                    .map_err(|e| errors.push(FieldError::new("detail", e)))
                    .ok()
            });
        match reason {
            Some(reason) if errors.is_empty() => Ok(Self { reason, source, detail }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn email_targets_are_lower_cased_whole_and_push_tokens_kept() {
        let t = SuppressionTarget::parse("email", " John.Doe+x@Example.COM ").unwrap();
        assert_eq!((t.channel, t.address()), (Channel::Email, "john.doe+x@example.com"));
        let t = SuppressionTarget::parse("push", "fcm:AbC-1").unwrap();
        assert_eq!(t.address(), "fcm:AbC-1");
    }

    #[test]
    fn a_bad_channel_or_address_is_named() {
        assert_eq!(
            fields(&SuppressionTarget::parse("sms", "a@example.com").unwrap_err()),
            ["channel"]
        );
        assert_eq!(
            fields(&SuppressionTarget::parse("email", "not-an-address").unwrap_err()),
            ["address"]
        );
        assert_eq!(
            fields(&SuppressionTarget::parse("push", "a b").unwrap_err()),
            ["address"]
        );
    }

    #[test]
    fn a_body_needs_a_known_reason_and_bounded_fields() {
        let ok = NewSuppression::parse(&json!({"reason": "complaint", "source": " mailgun ", "detail": "spam\r\n"}))
            .unwrap();
        assert_eq!(ok.reason, Reason::Complaint);
        assert_eq!(ok.source.as_deref(), Some("mailgun"));
        let bad = NewSuppression::parse(&json!({
            "reason": "bounced",
            "source": "",
            "detail": "x".repeat(MAX_DETAIL_CHARS + 1),
            "notificationId": "x"
        }))
        .unwrap_err();
        assert_eq!(fields(&bad), ["notificationId", "reason", "source", "detail"]);
        assert_eq!(fields(&NewSuppression::parse(&json!({})).unwrap_err()), ["reason"]);
        assert_eq!(fields(&NewSuppression::parse(&json!([1])).unwrap_err()), ["body"]);
    }

    #[test]
    fn stronger_reasons_rank_higher() {
        let order: Vec<&str> = {
            let mut all = Reason::ALL;
            all.sort_by_key(|r| r.strength());
            all.iter().map(|r| r.as_str()).collect()
        };
        assert_eq!(order, ["manual", "hard_bounce", "unsubscribe", "complaint"]);
    }
}
