//! Token buckets in Redis, shared by every instance of a service: refilled and taken in one
//! Lua script (atomic), timed by the Redis server's clock so that instances with skewed
//! clocks still share one bucket. The providers' send limits (`notify-providers`) and the
//! gateway's API limits are both built on [`TokenBucket`].
//!
//! A bucket holds at most `burst` tokens and refills at `per_second`; with `burst = 1` grants
//! are spaced by `1 / per_second`. An optional daily quota (UTC day) counts grants.
//!
//! What to do when Redis cannot be asked (fail open or closed) is the caller's choice: this
//! module only reports the [`RedisFailure`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use crate::redis_conn::{RedisConnection, RedisFailure};

/// Refill by elapsed time, then take one token (and one unit of the daily quota).
/// KEYS: bucket hash, daily counter. ARGV: per_second, burst, daily quota (0 = none).
/// Returns {code, wait_ms, now_ms, milli_tokens_left}: code 1 granted, 0 bucket empty (wait =
/// until the next token), -1 daily quota spent (wait = until the end of the UTC day).
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
    return {-1, 86400000 - (now % 86400000), now, 0}
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
  return {0, math.ceil((1 - tokens) * 1000 / rate), now, math.floor(tokens * 1000)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', ts)
redis.call('PEXPIRE', KEYS[1], ttl)
if quota > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], 86400000 - (now % 86400000) + 3600000)
end
return {1, 0, now, math.floor((tokens - 1) * 1000)}
";

/// The shape of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    /// Tokens added per second (> 0, fractions allowed).
    pub per_second: f64,
    /// Tokens the bucket holds at most (≥ 1): how many may go at once after a quiet period.
    pub burst: u32,
    /// Grants per UTC day, if any.
    pub daily_quota: Option<u64>,
}

impl BucketLimit {
    /// A bucket of `burst` tokens refilled at `per_second`, without a daily quota.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            daily_quota: None,
        }
    }

    /// How long an empty bucket with `tokens_left` takes to be full again.
    fn time_to_full(&self, tokens_left: f64) -> Duration {
        let missing = (f64::from(self.burst) - tokens_left).max(0.0);
        Duration::from_secs_f64(missing / self.per_second)
    }
}

/// What the bucket answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A token was taken at `at_ms` (the Redis server's clock, ms since the epoch); `remaining`
    /// whole tokens are left and the bucket is full again after `reset`.
    Granted {
        at_ms: u64,
        remaining: u32,
        reset: Duration,
    },
    /// No token: the next one comes after `retry_after`; the bucket is full after `reset`.
    Empty { retry_after: Duration, reset: Duration },
    /// The daily quota is spent; the next day starts after this wait.
    QuotaSpent(Duration),
}

/// The token-bucket script on one Redis connection; each call names its bucket, so one
/// `TokenBucket` serves any number of buckets (one per caller, per user…). Cheap to clone.
#[derive(Clone)]
pub struct TokenBucket {
    conn: RedisConnection,
    script: Script,
}

impl TokenBucket {
    /// Buckets in the Redis at `url` (not contacted until the first take); every call is
    /// bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self::on(RedisConnection::new(url, timeout)?))
    }

    /// Buckets on an existing connection.
    pub fn on(conn: RedisConnection) -> Self {
        Self {
            conn,
            script: Script::new(TAKE),
        }
    }

    /// Takes one token from the bucket `key` (its keys are `{key}:bucket` and, with a daily
    /// quota, `{key}:day:{n}`); never waits.
    pub async fn take(&self, key: &str, limit: &BucketLimit) -> Result<Grant, RedisFailure> {
        let day = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 86_400;
        let script = &self.script;
        let (bucket, daily) = (format!("{key}:bucket"), format!("{key}:day:{day}"));
        let (code, wait_ms, now_ms, milli_tokens): (i64, u64, u64, i64) = self
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
        let tokens_left = (milli_tokens.max(0) as f64) / 1000.0;
        let reset = limit.time_to_full(tokens_left);
        Ok(match code {
            1 => Grant::Granted {
                at_ms: now_ms,
                remaining: tokens_left.floor() as u32,
                reset,
            },
            -1 => Grant::QuotaSpent(Duration::from_millis(wait_ms)),
            _ => Grant::Empty {
                retry_after: Duration::from_millis(wait_ms.max(1)),
                reset,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_bucket_is_full_after_burst_over_rate() {
        let limit = BucketLimit::new(2.0, 10);
        assert_eq!(limit.time_to_full(0.0), Duration::from_secs(5));
        assert_eq!(limit.time_to_full(10.0), Duration::ZERO);
        assert_eq!(limit.time_to_full(12.0), Duration::ZERO);
    }
}
