//! Where the lookups get their service token.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use notify_kit::auth::{JwtIssuer, TokenUse};

type Produce = dyn Fn() -> anyhow::Result<String> + Send + Sync;

/// Produces the bearer token for each request. Cheap to clone.
#[derive(Clone)]
pub struct TokenSource {
    produce: Arc<Produce>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource")
    }
}

impl TokenSource {
    /// Calls `f` for every request (it may cache on its own).
    pub fn from_fn(f: impl Fn() -> anyhow::Result<String> + Send + Sync + 'static) -> Self {
        Self { produce: Arc::new(f) }
    }

    /// Always the same token (short-lived processes, tests).
    pub fn fixed(token: impl Into<String>) -> Self {
        let token = token.into();
        Self::from_fn(move || Ok(token.clone()))
    }

    /// Service tokens for `subject` with `scopes`, signed by `issuer`, valid for `ttl`;
    /// one token is reused until half its life has passed.
    pub fn issuer(issuer: JwtIssuer, subject: &str, scopes: &[&str], ttl: Duration) -> Self {
        let subject = subject.to_string();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let current: Mutex<Option<(String, Instant)>> = Mutex::new(None);
        Self::from_fn(move || {
            let mut slot = current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((token, renew_at)) = slot.as_ref() {
                if Instant::now() < *renew_at {
                    return Ok(token.clone());
                }
            }
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let token = issuer.issue(&subject, TokenUse::Service, &scopes, ttl)?;
            *slot = Some((token.clone(), Instant::now() + ttl / 2));
            Ok(token)
        })
    }

    /// The token for the next request.
    pub fn token(&self) -> anyhow::Result<String> {
        (self.produce)()
    }
}
