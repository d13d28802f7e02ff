//! Adding entries to user-svc's suppression list (`PUT /api/v1/suppressions/{channel}/{address}`,
//! scope `suppressions:write`): the provider webhooks report hard bounces, complaints and
//! unsubscribes there. The write is an upsert on (channel, address), so repeating it (a
//! provider redelivering its webhook) changes nothing.

use std::time::Duration;

use serde::Serialize;

use crate::{client::ServiceClient, error::LookupError, token::TokenSource};

const SERVICE: &str = "user-svc";

/// Why an address is suppressed, as user-svc names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// The receiving server refused the address for good.
    HardBounce,
    /// The recipient marked a message as spam.
    Complaint,
    /// The recipient unsubscribed (at the provider, or through the one-click link).
    Unsubscribe,
    /// An operator added it.
    Manual,
}

impl SuppressionReason {
    /// `hard_bounce`, `complaint`, `unsubscribe` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::Unsubscribe => "unsubscribe",
            Self::Manual => "manual",
        }
    }
}

/// The body of the PUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub reason: SuppressionReason,
    /// Who reported it (`sendgrid`, `mailgun`).
    pub source: String,
    /// The provider's diagnostic, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Writes suppression entries into user-svc.
pub struct SuppressionClient {
    client: ServiceClient,
}

impl SuppressionClient {
    /// A client of user-svc at `base_url`, authenticating with `tokens` (which must carry
    /// `suppressions:write`), each request bounded by `timeout`.
    pub fn new(base_url: &str, tokens: TokenSource, timeout: Duration) -> Result<Self, LookupError> {
        Ok(Self {
            client: ServiceClient::new(SERVICE, base_url, tokens, timeout)?,
        })
    }

    /// Suppresses `address` on `channel` (`email`, `push`). Retryable failures (user-svc
    /// down, 5xx, 429) are [`LookupError::Unavailable`].
    pub async fn suppress(&self, channel: &str, address: &str, entry: &Suppression) -> Result<(), LookupError> {
        self.client
            .put(&["api", "v1", "suppressions", channel, address], entry)
            .await
    }
}
