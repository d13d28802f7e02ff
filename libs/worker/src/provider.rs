//! The provider boundary: where a delivery attempt's failure is classified, once.

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

/// How a provider failed.
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

/// What the provider said when it accepted the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderReceipt {
    /// Provider's own id of the message (SMTP queue id, FCM message name), if any.
    pub provider_message_id: Option<String>,
}

/// A delivery provider (SMTP, FCM, …). Implementations classify every failure as
/// [`ProviderError::Transient`] or [`ProviderError::Permanent`]; nothing above them looks at
/// protocol details.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Short stable name for metrics and status events (`smtp`, `fcm`, …).
    fn name(&self) -> &'static str;

    /// Sends one message. Must be idempotent-friendly: for email, the `Message-ID` is derived
    /// from the notification id (see [`message_id`]).
    async fn send(&self, message: &OutgoingMessage<'_>) -> Result<ProviderReceipt, ProviderError>;
}

/// The deterministic `Message-ID` of a notification's email: `<{notification_id}@{domain}>`.
/// A redelivered email carries the same id, so receiving systems can drop the duplicate.
pub fn message_id(notification_id: Uuid, domain: &str) -> String {
    format!("<{notification_id}@{domain}>")
}
