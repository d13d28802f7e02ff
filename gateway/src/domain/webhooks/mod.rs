//! Provider webhooks (SendGrid's Event Webhook, Mailgun's webhooks): verifying their
//! signatures and turning their events into what the platform records. Pure: the routes
//! (`routes/webhooks.rs`) do the I/O.
//!
//! | provider event | [`EventKind`] | status event | suppression |
//! |---|---|---|---|
//! | SendGrid `delivered`, Mailgun `delivered` | `Delivered` | `delivered` | – |
//! | SendGrid `bounce` (`type` `bounce`), Mailgun `failed` (`severity` `permanent`) | `HardBounce` | `bounced` | `hard_bounce` |
//! | SendGrid `dropped` | `Dropped` | `failed` | – |
//! | SendGrid `bounce` (`type` `blocked`), SendGrid `deferred`, Mailgun `failed` (`severity` `temporary`) | `SoftBounce` | `sent` with the diagnostic (history only) | – |
//! | SendGrid `spamreport`, Mailgun `complained` | `Complaint` | `delivered` with `complaint` (history) | `complaint` |
//! | SendGrid `unsubscribe`/`group_unsubscribe`, Mailgun `unsubscribed` | `Unsubscribe` | `delivered` with `unsubscribed` (history) | `unsubscribe` |
//! | anything else (`processed`, `open`, `click`, `accepted`…) | – | – | – |
//!
//! Why these statuses (see `libs/store/src/state_machine.rs`): `bounced` is reachable from
//! `sent` and from `delivered` (a bounce after acceptance) and is final. A drop means the
//! provider never sent the message, so it is `failed` (reachable from `sent`), not a bounce.
//! A soft bounce is the provider still retrying: a `sent` event, which the state machine
//! records in the history without moving a notification that is already `sent` or
//! `delivered`. A complaint or an unsubscribe proves the message arrived: a `delivered`
//! event, recorded (with what happened as its error text) and moving a `sent` notification
//! to `delivered`; the consequence lives in the suppression list.

pub mod mailgun;
pub mod sendgrid;

use chrono::{DateTime, Utc};
use notify_lookup::SuppressionReason;
use notify_schemas::{ids::NotificationId, DeliveryStatus};

/// The longest provider diagnostic kept.
pub const MAX_DETAIL_CHARS: usize = 1000;
/// The longest recipient address accepted (RFC 5321 path limit, with room).
pub const MAX_RECIPIENT_CHARS: usize = 320;

/// Which provider sent an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    SendGrid,
    Mailgun,
}

impl Provider {
    /// `sendgrid` or `mailgun`: the metric label, the status event's `provider` and the
    /// suppression's `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendGrid => "sendgrid",
            Self::Mailgun => "mailgun",
        }
    }
}

/// What a provider event means for a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Delivered,
    HardBounce,
    SoftBounce,
    Dropped,
    Complaint,
    Unsubscribe,
}

impl EventKind {
    /// The status event it becomes (see the module's table).
    pub fn status(self) -> DeliveryStatus {
        match self {
            Self::Delivered | Self::Complaint | Self::Unsubscribe => DeliveryStatus::Delivered,
            Self::HardBounce => DeliveryStatus::Bounced,
            Self::SoftBounce => DeliveryStatus::Sent,
            Self::Dropped => DeliveryStatus::Failed,
        }
    }

    /// The suppression it causes, if any.
    pub fn suppression(self) -> Option<SuppressionReason> {
        match self {
            Self::HardBounce => Some(SuppressionReason::HardBounce),
            Self::Complaint => Some(SuppressionReason::Complaint),
            Self::Unsubscribe => Some(SuppressionReason::Unsubscribe),
            Self::Delivered | Self::SoftBounce | Self::Dropped => None,
        }
    }

    /// The history's error text: what happened, then the provider's diagnostic.
    pub fn error(self, detail: Option<&str>) -> Option<String> {
        let what = match self {
            Self::Delivered => return None,
            Self::HardBounce => "hard bounce",
            Self::SoftBounce => "soft bounce (the provider retries)",
            Self::Dropped => "dropped by the provider",
            Self::Complaint => "complaint: the recipient marked it as spam",
            Self::Unsubscribe => "unsubscribed at the provider",
        };
        Some(match detail {
            Some(d) if !d.is_empty() => format!("{what}: {d}"),
            _ => what.to_string(),
        })
    }
}

/// One event from a provider, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderEvent {
    /// The provider's event name (`bounce`, `failed`…), for logs.
    pub name: String,
    /// What it means; `None` for events the platform does not act on (opens, clicks…).
    pub kind: Option<EventKind>,
    /// Our notification id, from the custom argument the providers echo; `None` when absent
    /// or not a UUID (mail not sent by this platform).
    pub notification_id: Option<NotificationId>,
    /// The recipient address, if given (and not too long).
    pub recipient: Option<String>,
    /// When the provider says it happened.
    pub occurred_at: DateTime<Utc>,
    /// The provider's diagnostic (bounce reason, SMTP answer), cut to [`MAX_DETAIL_CHARS`].
    pub detail: Option<String>,
}

/// An event the provider sent that cannot be read (no timestamp, not an object…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEvent(pub String);

/// Why a signature was refused; the label of `webhook_signature_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is missing")]
    Missing,
    #[error("the signature does not match")]
    Invalid,
    #[error("the signature's timestamp is outside the accepted window")]
    Expired,
    #[error("the signature's token was already used")]
    Replayed,
}

impl SignatureError {
    /// `missing`, `invalid`, `expired` or `replayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
        }
    }
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_DETAIL_CHARS).collect()
}

fn recipient(v: Option<&serde_json::Value>) -> Option<String> {
    v.and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_RECIPIENT_CHARS)
        .map(str::to_string)
}

fn notification_id(v: Option<&serde_json::Value>) -> Option<NotificationId> {
    v.and_then(|v| v.as_str()).and_then(|s| NotificationId::parse(s).ok())
}

/// A Unix time in (possibly fractional) seconds, as a number or a string.
fn unix_time(v: Option<&serde_json::Value>) -> Option<DateTime<Utc>> {
    let secs = match v? {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_a_status_the_state_machine_accepts_after_sent() {
        use notify_store::state_machine::{can_transition, Status};
        for kind in [
            EventKind::Delivered,
            EventKind::HardBounce,
            EventKind::Dropped,
            EventKind::Complaint,
            EventKind::Unsubscribe,
        ] {
            let name = serde_json::to_value(kind.status()).unwrap();
            let to = Status::parse(name.as_str().unwrap()).unwrap();
            assert!(
                can_transition(Status::Sent, 1, to, 1),
                "{kind:?} moves a sent notification"
            );
        }
        // A soft bounce never moves a sent or delivered notification: history only.
        assert!(!can_transition(Status::Sent, 1, Status::Sent, 1));
        assert!(!can_transition(Status::Delivered, 1, Status::Sent, 1));
        // A bounce after delivery is still recorded as bounced.
        assert!(can_transition(Status::Delivered, 1, Status::Bounced, 1));
    }

    #[test]
    fn only_hard_bounces_complaints_and_unsubscribes_suppress() {
        assert_eq!(EventKind::HardBounce.suppression(), Some(SuppressionReason::HardBounce));
        assert_eq!(EventKind::Complaint.suppression(), Some(SuppressionReason::Complaint));
        assert_eq!(
            EventKind::Unsubscribe.suppression(),
            Some(SuppressionReason::Unsubscribe)
        );
        for k in [EventKind::Delivered, EventKind::SoftBounce, EventKind::Dropped] {
            assert_eq!(k.suppression(), None, "{k:?}");
        }
    }

    #[test]
    fn unix_times_come_as_numbers_or_strings() {
        let t = unix_time(Some(&serde_json::json!(1_521_233_123.501))).unwrap();
        assert_eq!(t.timestamp_millis(), 1_521_233_123_501);
        assert_eq!(
            unix_time(Some(&serde_json::json!("1513299569"))).unwrap().timestamp(),
            1_513_299_569
        );
        assert_eq!(unix_time(Some(&serde_json::json!(-1))), None);
        assert_eq!(unix_time(Some(&serde_json::json!(true))), None);
        assert_eq!(unix_time(None), None);
    }
}
