//! A provider's rate limit, shared by every worker instance: a token bucket in Redis
//! ([`notify_kit::rate_limit::TokenBucket`], refilled and taken in one Lua script, timed by
//! the Redis server's clock so that instances with skewed clocks still share one bucket).
//!
//! The bucket holds at most `burst` tokens and refills at `per_second`; with `burst = 1`
//! (the default) grants are spaced by `1 / per_second`, so no 1-second window ever holds
//! more than `per_second` grants. An optional daily quota (UTC day) counts grants.
//!
//! **When Redis is unavailable the limiter lets the message through** (fails open), with a
//! warning and `provider_rate_limiter_errors_total`: failing closed would turn a Redis
//! outage into an email outage, every message deferred and its retries spent, while the
//! limit only protects us from the provider's own throttling, which still answers `429`
//! and is honoured as a transient failure with its `Retry-After`.

use std::time::Duration;

use notify_kit::rate_limit::{BucketLimit, Grant, TokenBucket};
use notify_kit::redis_conn::RedisFailure;
use notify_kit::settings::SecretUrl;

/// One provider's limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// Messages per second (`APP_{PROVIDER}_RATE_PER_SEC`; > 0, fractions allowed).
    pub per_second: f64,
    /// Tokens the bucket holds (`APP_{PROVIDER}_RATE_BURST`, default 1): how many may go
    /// at once after a quiet period.
    pub burst: u32,
    /// Messages per UTC day (`APP_{PROVIDER}_DAILY_QUOTA`), if the provider has a quota.
    pub daily_quota: Option<u64>,
    /// How long a send may wait for a token (`APP_{PROVIDER}_RATE_MAX_WAIT_MS`, default
    /// 1000); beyond that the provider is skipped for this message, with the wait as its
    /// retry-after.
    pub max_wait: Duration,
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A token was taken at this time of the Redis server (ms since the epoch); `None` when
    /// Redis could not be asked (fail open).
    Granted(Option<u64>),
    /// No token before this wait.
    Wait(Duration),
    /// The daily quota is spent; the next day starts after this wait.
    QuotaSpent(Duration),
}

/// One provider's bucket in Redis. Cheap to share; instances with the same `key` (in any
/// process) share the bucket.
pub struct RateLimiter {
    bucket: TokenBucket,
    key: String,
    limit: RateLimit,
}

impl RateLimiter {
    /// A limiter for the bucket `{prefix}:{provider}`. Connects lazily.
    pub fn new(
        redis_url: &SecretUrl,
        prefix: &str,
        provider: &str,
        limit: RateLimit,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            bucket: TokenBucket::new(redis_url.expose(), timeout)?,
            key: format!("{prefix}:{provider}"),
            limit,
        })
    }

    /// The configured limit.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Takes a token now if there is one; never waits.
    pub async fn try_take(&self) -> Take {
        match self.call_script().await {
            Ok(take) => take,
            Err(e) => self.failed_open(&e.to_string()).await,
        }
    }

    /// Takes a token, waiting for it up to [`RateLimit::max_wait`] in all; `Err(wait)`
    /// when the next token (or the next day of the quota) is further away than that.
    pub async fn acquire(&self) -> Result<Take, Duration> {
        let deadline = tokio::time::Instant::now() + self.limit.max_wait;
        loop {
            match self.try_take().await {
                granted @ Take::Granted(_) => return Ok(granted),
                Take::QuotaSpent(wait) => return Err(wait),
                Take::Wait(wait) => {
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(wait);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn call_script(&self) -> Result<Take, RedisFailure> {
        let limit = BucketLimit {
            per_second: self.limit.per_second,
            burst: self.limit.burst,
            daily_quota: self.limit.daily_quota,
        };
        Ok(match self.bucket.take(&self.key, &limit).await? {
            Grant::Granted { at_ms, .. } => Take::Granted(Some(at_ms)),
            Grant::QuotaSpent(wait) => Take::QuotaSpent(wait),
            Grant::Empty { retry_after, .. } => Take::Wait(retry_after),
        })
    }

    async fn failed_open(&self, error: &str) -> Take {
        tracing::warn!(bucket = %self.key, error, "rate limiter unavailable: sending without the shared limit");
        metrics::counter!("provider_rate_limiter_errors_total", "bucket" => self.key.clone()).increment(1);
        Take::Granted(None)
    }
}
