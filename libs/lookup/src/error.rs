//! Lookup failures, classified once for the callers' retry decision.

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The service could not be reached, timed out, or answered 5xx or 429: retry later.
    #[error("{service} is unavailable: {reason}")]
    Unavailable { service: &'static str, reason: String },
    /// The service refused the credentials (401/403), or no token could be made: a
    /// configuration problem that retrying does not fix.
    #[error("{service} refused the credentials: {reason}")]
    Unauthorized { service: &'static str, reason: String },
    /// The request or the answer does not follow the contract (an unexpected 4xx, a body
    /// that does not decode).
    #[error("invalid exchange with {service}: {reason}")]
    Invalid { service: &'static str, reason: String },
}

impl LookupError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
