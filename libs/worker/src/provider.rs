//! The provider boundary: where a delivery attempt's failure is classified, once.
//!
//! A provider implements [`Provider::deliver`], which answers with a [`ProviderFailure`]:
//! the class (transient, permanent for the message, permanent for this recipient), the
//! provider's `Retry-After` when it gave one, and whether the failure needs an operator
//! (credentials, configuration). [`Provider::send`] is the older, coarser view of the same
//! call ([`ProviderError`]: transient or permanent), kept so callers written against it
//! compile unchanged.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use notify_templates::Rendered;
use uuid::Uuid;

/// One message to one target (an email address, or one device token).
#[derive(Debug, Clone)]
pub struct OutgoingMessage<'a> {
    pub notification_id: Uuid,
    pub correlation_id: &'a str,
    /// The W3C trace context to pass on, if the provider's protocol carries one.
    pub traceparent: Option<&'a str>,
    /// Email address (email) or device token (push).
    pub target: &'a str,
    /// Platform of a push target (`android`, `ios`, `web`); `None` for email.
    pub platform: Option<&'a str>,
    /// Recipient's display name, when known.
    pub recipient_name: Option<&'a str>,
    /// Rendered content: `Rendered::Email` for email providers, `Rendered::Push` for push.
    pub content: &'a Rendered,
}

/// What [`Provider::deliver`] sends: the message, and what only the richer path carries.
/// (A separate struct rather than new fields of [`OutgoingMessage`], so that code building
/// an `OutgoingMessage` literal keeps compiling.)
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub message: OutgoingMessage<'a>,
    /// The recipient's one-click unsubscribe link (email): providers add `List-Unsubscribe`
    /// and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058) when it is set.
    pub unsubscribe_url: Option<&'a str>,
    /// The provider the device was registered with (push: `fcm`, `webpush`, `onesignal`, as
    /// user-svc stores it). A provider chain sends the device only to members of that name;
    /// `None` (email, or a caller that does not know) leaves the choice to the token's shape.
    pub provider: Option<&'a str>,
}

impl<'a> From<OutgoingMessage<'a>> for Delivery<'a> {
    fn from(message: OutgoingMessage<'a>) -> Self {
        Self {
            message,
            unsubscribe_url: None,
            provider: None,
        }
    }
}

/// How a provider failed, coarsely: what [`Provider::send`] answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying later: timeout, connection refused, 4xx-throttle (421/451/452, HTTP
    /// 429), 5xx from an HTTP API.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help: invalid address, mailbox does not exist (SMTP 5xx), unregistered
    /// or malformed device token, content the provider refuses.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl ProviderError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

/// The class of a [`ProviderFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Worth retrying later (and, in a chain, worth trying the next provider now): timeout,
    /// connection refused, throttling, 5xx, refused credentials.
    Transient,
    /// Retrying cannot help, for the whole message: content the provider refuses (too
    /// large, malformed), wrong content type. Every other target of the message would fail
    /// the same way.
    Permanent,
    /// Retrying cannot help for this recipient only: invalid address, mailbox does not
    /// exist, unregistered device token. Other targets of the same message may succeed.
    Recipient,
}

/// How a provider failed, classified once at the provider boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ProviderFailure {
    pub kind: FailureKind,
    /// What happened, for logs and the status event; never holds a secret.
    pub message: String,
    /// When the provider said to come back (`Retry-After`, a rate-limit reset, or our own
    /// rate limiter's wait); only on transient failures.
    pub retry_after: Option<Duration>,
    /// The failure is ours to fix (credentials refused, sender not allowed, account
    /// suspended): transient for the channel, and worth an alert.
    pub alert: bool,
    /// The device is gone for good (FCM `UNREGISTERED`, Web Push `404`/`410`, OneSignal
    /// `invalid_player_ids`): a [`FailureKind::Recipient`] failure after which the worker
    /// removes the device from user-svc. Only [`ProviderFailure::gone`] sets it.
    pub gone: bool,
}

impl ProviderFailure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            alert: false,
            gone: false,
        }
    }

    /// A failure worth retrying later.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Transient, message)
    }

    /// A refusal of the whole message.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, message)
    }

    /// A refusal of this recipient.
    pub fn recipient(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Recipient, message)
    }

    /// A refusal of this device because the provider says it no longer exists (the app
    /// was uninstalled, the subscription expired or was revoked): the device is removed.
    pub fn gone(message: impl Into<String>) -> Self {
        Self {
            gone: true,
            ..Self::recipient(message)
        }
    }

    /// Whether the device is gone for good: the flag [`ProviderFailure::gone`] sets, and
    /// nothing else (the message is for people, never parsed).
    pub fn is_gone(&self) -> bool {
        self.kind == FailureKind::Recipient && self.gone
    }

    /// A transient failure that an operator must fix (refused credentials, configuration).
    pub fn alert(message: impl Into<String>) -> Self {
        Self {
            alert: true,
            ..Self::transient(message)
        }
    }

    /// The same failure, with the provider's `Retry-After` (ignored unless transient).
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        if self.kind == FailureKind::Transient {
            self.retry_after = retry_after;
        }
        self
    }

    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }
}

impl From<ProviderFailure> for ProviderError {
    /// The coarse view: a recipient refusal is permanent.
    fn from(f: ProviderFailure) -> Self {
        match f.kind {
            FailureKind::Transient => Self::Transient(f.message),
            FailureKind::Permanent | FailureKind::Recipient => Self::Permanent(f.message),
        }
    }
}

/// What the provider said when it accepted the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderReceipt {
    /// Provider's own id of the message (SMTP queue id, FCM message name), if any.
    pub provider_message_id: Option<String>,
    /// Which provider delivered it, when the caller cannot tell from
    /// [`Provider::name`]: a provider chain names the member that took the message.
    pub provider: Option<&'static str>,
}

/// A delivery provider (SMTP, SendGrid, FCM, a chain of them…). Implementations classify
/// every failure once ([`ProviderFailure`]); nothing above them looks at protocol details.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Short stable name for metrics and status events (`smtp`, `fcm`, …).
    fn name(&self) -> &'static str;

    /// Sends one message. Must be idempotent-friendly: for email, the `Message-ID` is derived
    /// from the notification id (see [`message_id`]).
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure>;

    /// [`Provider::deliver`] without an unsubscribe link, with the coarse error.
    async fn send(&self, message: &OutgoingMessage<'_>) -> Result<ProviderReceipt, ProviderError> {
        self.deliver(&Delivery::from(message.clone()))
            .await
            .map_err(ProviderError::from)
    }

    /// `Some(t)`: nothing can be sent before `t` (every circuit of a chain is open), so a
    /// consumer may pause instead of spending attempts. `None`: try now.
    fn unavailable_until(&self) -> Option<Instant> {
        None
    }
}

/// The deterministic `Message-ID` of a notification's email: `<{notification_id}@{domain}>`.
/// A redelivered email carries the same id, so receiving systems can drop the duplicate.
pub fn message_id(notification_id: Uuid, domain: &str) -> String {
    format!("<{notification_id}@{domain}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_view_keeps_transient_and_folds_recipient_into_permanent() {
        assert_eq!(
            ProviderError::from(ProviderFailure::alert("key refused")),
            ProviderError::Transient("key refused".into())
        );
        assert_eq!(
            ProviderError::from(ProviderFailure::recipient("no such mailbox")),
            ProviderError::Permanent("no such mailbox".into())
        );
        assert_eq!(
            ProviderError::from(ProviderFailure::permanent("too large")),
            ProviderError::Permanent("too large".into())
        );
    }

    #[test]
    fn a_gone_device_is_a_recipient_failure_and_says_so() {
        let gone = ProviderFailure::gone("webpush: 410 Gone");
        assert_eq!(gone.kind, FailureKind::Recipient);
        assert!(gone.is_gone());
        assert!(!ProviderFailure::recipient("INVALID_ARGUMENT: bad payload").is_gone());
        assert!(!ProviderFailure::permanent("push provider answered 404: NOT_FOUND").is_gone());
        assert!(!ProviderFailure::transient("UNREGISTERED?").is_gone());
        // Only the flag counts: a message that reads like a gone device is not one.
        assert!(!ProviderFailure::recipient("push provider answered 410: Gone").is_gone());
        assert!(!ProviderFailure::recipient("fcm: UNREGISTERED").is_gone());
    }

    #[test]
    fn only_a_transient_failure_carries_a_retry_after() {
        let wait = Some(Duration::from_secs(5));

        assert_eq!(
            ProviderFailure::transient("429").with_retry_after(wait).retry_after,
            wait
        );
        assert_eq!(
            ProviderFailure::permanent("400").with_retry_after(wait).retry_after,
            None
        );
    }
}
