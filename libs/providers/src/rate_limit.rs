//! A provider's rate limit, shared by every worker instance: a token bucket in Redis,
//! refilled and taken in one Lua script (atomic), timed by the Redis server's clock so
//! that instances with skewed clocks still share one bucket.
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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify_kit::redis_conn::{RedisConnection, RedisFailure};
use notify_kit::settings::SecretUrl;
use redis::Script;

/// Refill by elapsed time, then take one token (and one unit of the daily quota).
/// KEYS: bucket hash, daily counter. ARGV: per_second, burst, daily quota (0 = none).
/// Returns {1, 0, now_ms} granted; {0, wait_ms, now_ms} bucket empty; {-1, wait_ms, now_ms}
/// daily quota spent (wait = until the end of the UTC day).
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local ttl = math.ceil(burst * 1000 / rate) + 1000
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= quota then
    return {-1, 86400000 - (now % 86400000), now}
  end
end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
if tokens < 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', ts)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {0, math.ceil((1 - tokens) * 1000 / rate), now}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', ts)
redis.call('PEXPIRE', KEYS[1], ttl)
if quota > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], 86400000 - (now % 86400000) + 3600000)
end
return {1, 0, now}
";

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
    conn: RedisConnection,
    key: String,
    limit: RateLimit,
    script: Script,
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
            conn: RedisConnection::new(redis_url.expose(), timeout)?,
            key: format!("{prefix}:{provider}"),
            limit,
            script: Script::new(TAKE),
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
        let day = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 86_400;
        let (script, limit) = (&self.script, &self.limit);
        let (bucket, daily) = (format!("{}:bucket", self.key), format!("{}:day:{day}", self.key));
        let (code, wait_ms, now_ms): (i64, u64, u64) = self
            .conn
            .run(|mut conn| async move {
                script
                    .key(bucket)
                    .key(daily)
                    .arg(limit.per_second)
                    .arg(limit.burst)
                    .arg(limit.daily_quota.unwrap_or(0))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match code {
            1 => Take::Granted(Some(now_ms)),
            -1 => Take::QuotaSpent(Duration::from_millis(wait_ms)),
            _ => Take::Wait(Duration::from_millis(wait_ms.max(1))),
        })
    }

    async fn failed_open(&self, error: &str) -> Take {
        tracing::warn!(bucket = %self.key, error, "rate limiter unavailable: sending without the shared limit");
        metrics::counter!("provider_rate_limiter_errors_total", "bucket" => self.key.clone()).increment(1);
        Take::Granted(None)
    }
}
