//! The API's rate limits: a token bucket per caller (the token's subject) and one per
//! recipient user, in Redis ([`notify_kit::rate_limit::TokenBucket`]) so that every gateway
//! instance shares them. Over a limit the request answers `429` with `Retry-After` and the
//! `RateLimit-*` headers ([`ApiError::RateLimited`]).
//!
//! **When Redis cannot be asked the limiter lets the request through** (fails open), with a
//! warning and `api_rate_limiter_errors_total{scope}`: a Redis outage must not become an API
//! outage, and the database behind the gateway still bounds what one caller can do.
//!
//! Settings (`APP_RATE_LIMIT_*`, per caller class and per caller):
//!
//! | variable | default | what |
//! |---|---|---|
//! | `APP_RATE_LIMIT_ENABLED` | `true` | `false` turns every API limit off |
//! | `APP_RATE_LIMIT_SERVICE_PER_SEC` / `_BURST` | 200 / 400 | each service token's subject |
//! | `APP_RATE_LIMIT_USER_PER_SEC` / `_BURST` | 5 / 20 | each end-user token's subject |
//! | `APP_RATE_LIMIT_CALLERS` | empty | per-subject overrides: `billing=1000/2000,marketing=50/100` (per second / burst) |
//! | `APP_RATE_LIMIT_RECIPIENT_PER_SEC` / `_BURST` | 1 / 30 | notifications to one user, whoever sends them |
//! | `APP_RATE_LIMIT_PREFIX` | `notify:ratelimit` | key prefix (`{prefix}:api:…`), the same on every instance |
//! | `APP_REDIS_URL`, `APP_REDIS_TIMEOUT_MS` | `redis://127.0.0.1:6379`, 250 | where the buckets live |

use std::{collections::HashMap, time::Duration};

use notify_kit::{
    auth::{Caller, TokenUse},
    error::RateQuota,
    rate_limit::{BucketLimit, Grant, TokenBucket},
    settings::{self, SecretUrl, SettingsError},
    ApiError,
};
use notify_schemas::ids::UserId;

/// The API's limits, from `APP_RATE_LIMIT_*`.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Where the buckets live (`APP_REDIS_URL`). May hold a password: never logged.
    pub redis_url: SecretUrl,
    /// Bound on one call to Redis (`APP_REDIS_TIMEOUT_MS`).
    pub redis_timeout: Duration,
    /// Key prefix (`APP_RATE_LIMIT_PREFIX`).
    pub prefix: String,
    /// Each service caller (`APP_RATE_LIMIT_SERVICE_*`).
    pub service: BucketLimit,
    /// Each end-user caller (`APP_RATE_LIMIT_USER_*`).
    pub user: BucketLimit,
    /// Per-subject overrides of the class limits (`APP_RATE_LIMIT_CALLERS`).
    pub callers: HashMap<String, BucketLimit>,
    /// Notifications to one recipient (`APP_RATE_LIMIT_RECIPIENT_*`).
    pub recipient: BucketLimit,
}

impl RateLimitSettings {
    /// Reads the limits; `None` when `APP_RATE_LIMIT_ENABLED=false`.
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        if !settings::parse("APP_RATE_LIMIT_ENABLED", true)? {
            return Ok(None);
        }
        let callers = match settings::optional("APP_RATE_LIMIT_CALLERS") {
            None => HashMap::new(),
            Some(v) => parse_callers(&v).map_err(|e| SettingsError::invalid("APP_RATE_LIMIT_CALLERS", e))?,
        };
        Ok(Some(Self {
            redis_url: settings::secret_url("APP_REDIS_URL", "redis://127.0.0.1:6379")?,
            redis_timeout: settings::millis("APP_REDIS_TIMEOUT_MS", 250)?,
            prefix: settings::string("APP_RATE_LIMIT_PREFIX", "notify:ratelimit"),
            service: bucket_from_env("SERVICE", 200.0, 400)?,
            user: bucket_from_env("USER", 5.0, 20)?,
            callers,
            recipient: bucket_from_env("RECIPIENT", 1.0, 30)?,
        }))
    }
}

fn bucket_from_env(scope: &str, per_second: f64, burst: u32) -> Result<BucketLimit, SettingsError> {
    let rate_var = format!("APP_RATE_LIMIT_{scope}_PER_SEC");
    let per_second: f64 = settings::parse(&rate_var, per_second)?;
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(SettingsError::invalid(&rate_var, "must be > 0"));
    }
    let burst = settings::positive(&format!("APP_RATE_LIMIT_{scope}_BURST"), burst as usize)?;
    let burst =
        u32::try_from(burst).map_err(|e| SettingsError::invalid(&format!("APP_RATE_LIMIT_{scope}_BURST"), e))?;
    Ok(BucketLimit::new(per_second, burst))
}

/// `subject=per_sec/burst,…`.
fn parse_callers(value: &str) -> Result<HashMap<String, BucketLimit>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (subject, limit) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}`: expected subject=per_second/burst"))?;
            let (rate, burst) = limit
                .split_once('/')
                .ok_or_else(|| format!("`{entry}`: expected subject=per_second/burst"))?;
            let rate: f64 = rate.trim().parse().map_err(|e| format!("`{entry}`: {e}"))?;
            let burst: u32 = burst.trim().parse().map_err(|e| format!("`{entry}`: {e}"))?;
            if !(rate.is_finite() && rate > 0.0) || burst == 0 {
                return Err(format!("`{entry}`: rate and burst must be > 0"));
            }
            Ok((subject.trim().to_string(), BucketLimit::new(rate, burst)))
        })
        .collect()
}

/// The limiter the handlers ask. Cheap to clone.
#[derive(Clone)]
pub struct ApiLimits {
    bucket: TokenBucket,
    settings: std::sync::Arc<RateLimitSettings>,
}

impl ApiLimits {
    /// A limiter on the settings' Redis (contacted on the first request).
    pub fn new(settings: RateLimitSettings) -> Result<Self, redis::RedisError> {
        notify_kit::metrics::install();
        metrics::describe_counter!(
            "api_rate_limiter_errors_total",
            "API rate-limit checks that could not ask Redis and let the request through (fail open), by scope."
        );
        for scope in ["caller", "recipient"] {
            metrics::counter!("api_rate_limiter_errors_total", "scope" => scope).increment(0);
        }
        Ok(Self {
            bucket: TokenBucket::new(settings.redis_url.expose(), settings.redis_timeout)?,
            settings: std::sync::Arc::new(settings),
        })
    }

    /// Takes a token of the caller's bucket: its own limit if it has one, else its class's.
    pub async fn caller(&self, caller: &Caller) -> Result<(), ApiError> {
        let s = &self.settings;
        let limit = s
            .callers
            .get(&caller.subject)
            .copied()
            .unwrap_or(match caller.token_use {
                TokenUse::Service => s.service,
                TokenUse::User => s.user,
            });
        let key = format!("{}:api:caller:{}", s.prefix, caller.subject);
        self.take("caller", &key, &limit, "too many requests from this caller")
            .await
    }

    /// Takes a token of the recipient's bucket (notifications to one user).
    pub async fn recipient(&self, user_id: UserId) -> Result<(), ApiError> {
        let s = &self.settings;
        let key = format!("{}:api:recipient:{user_id}", s.prefix);
        self.take(
            "recipient",
            &key,
            &s.recipient,
            "too many notifications to this user; try again later",
        )
        .await
    }

    async fn take(&self, scope: &'static str, key: &str, limit: &BucketLimit, message: &str) -> Result<(), ApiError> {
        let (retry_after, reset) = match self.bucket.take(key, limit).await {
            Ok(Grant::Granted { .. }) => return Ok(()),
            Ok(Grant::Empty { retry_after, reset }) => (retry_after, reset),
            Ok(Grant::QuotaSpent(wait)) => (wait, wait),
            Err(e) => {
                tracing::warn!(scope, error = %e, "API rate limiter unavailable: request let through without its limit");
                metrics::counter!("api_rate_limiter_errors_total", "scope" => scope).increment(1);
                return Ok(());
            }
        };
        metrics::counter!("api_rate_limited_total", "scope" => scope).increment(1);
        Err(ApiError::RateLimited {
            message: message.to_string(),
            quota: RateQuota {
                limit: limit.burst,
                remaining: 0,
                reset,
                retry_after,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_overrides_parse_per_subject() {
        let callers = parse_callers("billing=1000/2000, marketing=0.5/3").unwrap();
        assert_eq!(callers["billing"], BucketLimit::new(1000.0, 2000));
        assert_eq!(callers["marketing"], BucketLimit::new(0.5, 3));
        assert!(parse_callers("billing=fast").is_err());
        assert!(parse_callers("billing=0/10").is_err());
        assert!(parse_callers("").unwrap().is_empty());
    }
}
