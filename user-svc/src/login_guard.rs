//! What stands between `POST /api/v1/auth/login` and the password hash: failure lockouts per
//! account and per client address, and a bounded admission to the Argon2 threads.
//!
//! - **Lockout with a growing delay.** Every failed login counts against the account (the
//!   normalised email, hashed: unknown addresses count too, so a lockout reveals nothing) and
//!   against the client address, in Redis, for `failure_window`. From the
//!   `max_failures_per_account`-th failure on (`max_failures_per_address`-th for an address)
//!   the account (address) is locked for `lockout_base`, doubled at every further failure up
//!   to `lockout_max`; a locked login answers `429` with `Retry-After` before any hashing. A
//!   successful login clears the account's failures.
//! - **Fails closed.** When Redis cannot be asked, logins answer `503` with `Retry-After`:
//!   without the counters a password could be guessed at the full hashing rate. (The API
//!   limiter of the gateway fails open instead; see `docs/security.md`.)
//! - **Bounded hashing queue.** At most `max_concurrent` logins hash (or wait for a hashing
//!   thread) at once; at most `max_waiting` more wait up to `queue_timeout` for their turn;
//!   the rest answer `503` with `Retry-After` at once. One account has at most
//!   `max_concurrent_per_account` of those places. So a login flood holds at most
//!   `max_concurrent` jobs in the hashing queue (a flood on one account far fewer), and a
//!   sign-up (which hashes too) waits behind at most that many.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use actix_web::HttpRequest;
use notify_kit::{
    error::RateQuota,
    redis_conn::{RedisConnection, RedisFailure},
    settings::{self, SecretUrl, SettingsError},
    ApiError,
};
use redis::Script;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The login guard's settings (`APP_LOGIN_*`).
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Where the counters live (`APP_REDIS_URL`).
    pub redis_url: SecretUrl,
    /// Bound on one Redis call (`APP_REDIS_TIMEOUT_MS`).
    pub redis_timeout: Duration,
    /// Key prefix (`APP_CACHE_PREFIX` followed by `login:`).
    pub prefix: String,
    /// `APP_LOGIN_MAX_FAILURES_PER_ACCOUNT` (default 5): failures before the account locks.
    pub max_failures_per_account: u32,
    /// `APP_LOGIN_MAX_FAILURES_PER_ADDRESS` (default 50): failures before the address locks.
    pub max_failures_per_address: u32,
    /// `APP_LOGIN_FAILURE_WINDOW_SECS` (default 3600): how long a failure counts.
    pub failure_window: Duration,
    /// `APP_LOGIN_LOCKOUT_BASE_MS` (default 1000): the first lock; doubled per further failure.
    pub lockout_base: Duration,
    /// `APP_LOGIN_LOCKOUT_MAX_MS` (default 900000 = 15 min): the longest lock.
    pub lockout_max: Duration,
    /// `APP_LOGIN_MAX_CONCURRENT` (default: the hashing threads, i.e. the CPUs): logins
    /// hashing or queued for a hashing thread at once.
    pub max_concurrent: usize,
    /// `APP_LOGIN_MAX_CONCURRENT_PER_ACCOUNT` (default 1): logins of one account in progress at
    /// once; more answer `503` at once, so a flood on one account takes few hashing places.
    pub max_concurrent_per_account: usize,
    /// `APP_LOGIN_MAX_WAITING` (default 64): logins waiting for one of those places.
    pub max_waiting: usize,
    /// `APP_LOGIN_QUEUE_TIMEOUT_MS` (default 2000): how long a login waits for a place.
    pub queue_timeout: Duration,
    /// `APP_TRUSTED_PROXY_HOPS` (default 0): proxies in front of user-svc that append the
    /// client's address to `X-Forwarded-For`; 0 takes the TCP peer's address (the header can
    /// be forged by anyone and is then ignored).
    pub trusted_proxy_hops: usize,
}

impl LoginSettings {
    /// The defaults above, with the counters in the Redis at `redis_url` under `prefix`.
    pub fn new(redis_url: SecretUrl, redis_timeout: Duration, prefix: &str) -> Self {
        Self {
            redis_url,
            redis_timeout,
            prefix: format!("{prefix}login:"),
            max_failures_per_account: 5,
            max_failures_per_address: 50,
            failure_window: Duration::from_secs(3600),
            lockout_base: Duration::from_secs(1),
            lockout_max: Duration::from_secs(900),
            max_concurrent: std::thread::available_parallelism().map_or(2, usize::from),
            max_concurrent_per_account: 1,
            max_waiting: 64,
            queue_timeout: Duration::from_secs(2),
            trusted_proxy_hops: 0,
        }
    }

    /// Reads `APP_LOGIN_*` and `APP_TRUSTED_PROXY_HOPS` over [`LoginSettings::new`].
    pub fn from_env(redis_url: SecretUrl, redis_timeout: Duration, prefix: &str) -> Result<Self, SettingsError> {
        let d = Self::new(redis_url, redis_timeout, prefix);
        let count = |name: &str, default: u32| -> Result<u32, SettingsError> {
            u32::try_from(settings::positive(name, default as usize)?).map_err(|e| SettingsError::invalid(name, e))
        };
        Ok(Self {
            max_failures_per_account: count("APP_LOGIN_MAX_FAILURES_PER_ACCOUNT", d.max_failures_per_account)?,
            max_failures_per_address: count("APP_LOGIN_MAX_FAILURES_PER_ADDRESS", d.max_failures_per_address)?,
            failure_window: Duration::from_secs(settings::parse(
                "APP_LOGIN_FAILURE_WINDOW_SECS",
                d.failure_window.as_secs(),
            )?),
            lockout_base: settings::millis("APP_LOGIN_LOCKOUT_BASE_MS", d.lockout_base.as_millis() as u64)?,
            lockout_max: settings::millis("APP_LOGIN_LOCKOUT_MAX_MS", d.lockout_max.as_millis() as u64)?,
            max_concurrent: settings::positive("APP_LOGIN_MAX_CONCURRENT", d.max_concurrent)?,
            max_concurrent_per_account: settings::positive(
                "APP_LOGIN_MAX_CONCURRENT_PER_ACCOUNT",
                d.max_concurrent_per_account,
            )?,
            max_waiting: settings::parse("APP_LOGIN_MAX_WAITING", d.max_waiting)?,
            queue_timeout: settings::millis("APP_LOGIN_QUEUE_TIMEOUT_MS", d.queue_timeout.as_millis() as u64)?,
            trusted_proxy_hops: settings::parse("APP_TRUSTED_PROXY_HOPS", d.trusted_proxy_hops)?,
            ..d
        })
    }
}

/// The longer remaining lock of the two keys, in ms (0: neither is locked).
/// KEYS: account lock, address lock.
const LOCKED: &str = r"
local a = redis.call('PTTL', KEYS[1])
local b = redis.call('PTTL', KEYS[2])
return math.max(a, b, 0)
";

/// Counts one failure on each of two subjects and locks those over their threshold.
/// KEYS: account failures, account lock, address failures, address lock.
/// ARGV: window_ms, account threshold, address threshold, base_ms, max_ms.
/// Returns the longer lock set, in ms (0: none).
const FAILED: &str = r"
local window = tonumber(ARGV[1])
local base = tonumber(ARGV[4])
local max = tonumber(ARGV[5])
local longest = 0
for i = 0, 1 do
  local n = redis.call('INCR', KEYS[1 + i * 2])
  redis.call('PEXPIRE', KEYS[1 + i * 2], window)
  local threshold = tonumber(ARGV[2 + i])
  if n >= threshold then
    local lock = math.min(max, base * 2 ^ math.min(n - threshold, 40))
    redis.call('SET', KEYS[2 + i * 2], n, 'PX', math.max(1, math.floor(lock)))
    longest = math.max(longest, lock)
  end
end
return math.floor(longest)
";

/// The login guard. Cheap to clone.
#[derive(Clone)]
pub struct LoginGuard {
    inner: Arc<Inner>,
}

struct Inner {
    conn: RedisConnection,
    locked: Script,
    failed: Script,
    settings: LoginSettings,
    hashing: Semaphore,
    waiting: AtomicUsize,
    /// Logins in progress per account (this instance).
    in_flight: Mutex<HashMap<String, usize>>,
}

/// The keys of one login attempt.
pub struct Attempt {
    account: String,
    address: String,
}

/// A place among the logins allowed to hash; released when dropped.
pub struct Admission<'a> {
    _permit: SemaphorePermit<'a>,
    _account: InFlight<'a>,
}

/// One login of an account in progress; counted down when dropped.
struct InFlight<'a> {
    inner: &'a Inner,
    account: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.account);
            }
        }
    }
}

impl LoginGuard {
    /// A guard on the settings' Redis (contacted on the first login).
    pub fn new(settings: LoginSettings) -> Result<Self, redis::RedisError> {
        notify_kit::metrics::install();
        for outcome in ["locked", "busy", "limiter_unavailable"] {
            metrics::counter!("login_refused_total", "reason" => outcome).increment(0);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                conn: RedisConnection::new(settings.redis_url.expose(), settings.redis_timeout)?,
                locked: Script::new(LOCKED),
                failed: Script::new(FAILED),
                hashing: Semaphore::new(settings.max_concurrent.max(1)),
                waiting: AtomicUsize::new(0),
                in_flight: Mutex::new(HashMap::new()),
                settings,
            }),
        })
    }

    /// The attempt of `email` from the request's client address.
    pub fn attempt(&self, req: &HttpRequest, email: &str) -> Attempt {
        let prefix = &self.inner.settings.prefix;
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        let address = client_address(req, self.inner.settings.trusted_proxy_hops)
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        Attempt {
            account: format!("{prefix}account:{}", hex(&digest)),
            address: format!("{prefix}address:{address}"),
        }
    }

    /// `429` while the account or the address is locked; `503` when Redis cannot say (fails
    /// closed).
    pub async fn check(&self, attempt: &Attempt) -> Result<(), ApiError> {
        let script = &self.inner.locked;
        let (account, address) = (lock_key(&attempt.account), lock_key(&attempt.address));
        let locked_ms: u64 = self
            .inner
            .conn
            .run(|mut conn| async move { script.key(account).key(address).invoke_async(&mut conn).await })
            .await
            .map_err(unavailable)?;
        if locked_ms == 0 {
            return Ok(());
        }
        metrics::counter!("login_refused_total", "reason" => "locked").increment(1);
        let wait = Duration::from_millis(locked_ms);
        Err(ApiError::RateLimited {
            message: "too many failed logins; try again later".into(),
            quota: RateQuota {
                limit: self.inner.settings.max_failures_per_account,
                remaining: 0,
                reset: wait,
                retry_after: wait,
            },
        })
    }

    /// Counts a failed login against the account and the address.
    pub async fn failed(&self, attempt: &Attempt) {
        let s = &self.inner.settings;
        let script = &self.inner.failed;
        let result: Result<u64, RedisFailure> = self
            .inner
            .conn
            .run(|mut conn| async move {
                script
                    .key(format!("{}:failures", attempt.account))
                    .key(lock_key(&attempt.account))
                    .key(format!("{}:failures", attempt.address))
                    .key(lock_key(&attempt.address))
                    .arg(s.failure_window.as_millis() as u64)
                    .arg(s.max_failures_per_account)
                    .arg(s.max_failures_per_address)
                    .arg(s.lockout_base.as_millis() as u64)
                    .arg(s.lockout_max.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(ms) => tracing::warn!(locked_ms = ms, "repeated failed logins: account or address locked"),
            Err(e) => tracing::warn!(error = %e, "could not count a failed login"),
        }
    }

    /// Clears the account's failures after a successful login (the address keeps its own).
    pub async fn succeeded(&self, attempt: &Attempt) {
        let key = format!("{}:failures", attempt.account);
        if let Err(e) = self
            .inner
            .conn
            .run(|mut conn| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut conn).await })
            .await
        {
            tracing::warn!(error = %e, "could not clear the account's failed logins");
        }
    }

    /// A place among the logins allowed to hash, waiting at most the queue timeout; `503`
    /// with `Retry-After` when the account already has its share of logins in progress, when
    /// the queue is full or when the wait runs out.
    pub async fn admit(&self, attempt: &Attempt) -> Result<Admission<'_>, ApiError> {
        let inner = &*self.inner;
        let account = {
            let mut map = inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(attempt.account.clone()).or_insert(0);
            if *n >= inner.settings.max_concurrent_per_account {
                drop(map);
                return Err(busy(
                    inner,
                    "a login for this account is already in progress; try again shortly",
                ));
            }
            *n += 1;
            InFlight {
                inner,
                account: attempt.account.clone(),
            }
        };
        if let Ok(permit) = inner.hashing.try_acquire() {
            return Ok(Admission {
                _permit: permit,
                _account: account,
            });
        }
        let waiting = inner.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = if waiting < inner.settings.max_waiting {
            tokio::time::timeout(inner.settings.queue_timeout, inner.hashing.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        inner.waiting.fetch_sub(1, Ordering::SeqCst);
        match permit {
            Some(permit) => Ok(Admission {
                _permit: permit,
                _account: account,
            }),
            None => Err(busy(inner, "too many logins in progress; try again shortly")),
        }
    }
}

fn busy(inner: &Inner, message: &str) -> ApiError {
    metrics::counter!("login_refused_total", "reason" => "busy").increment(1);
    ApiError::Busy {
        message: message.to_string(),
        retry_after: inner.settings.queue_timeout.max(Duration::from_secs(1)),
    }
}

fn lock_key(subject: &str) -> String {
    format!("{subject}:lock")
}

fn unavailable(e: RedisFailure) -> ApiError {
    tracing::error!(error = %e, "login limiter unavailable: refusing logins (fails closed)");
    metrics::counter!("login_refused_total", "reason" => "limiter_unavailable").increment(1);
    ApiError::Busy {
        message: "login is temporarily unavailable; try again shortly".into(),
        retry_after: Duration::from_secs(5),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The client's address: the TCP peer, or with `hops` trusted proxies in front, the entry
/// of `X-Forwarded-For` the outermost of them appended (the `hops`-th from the right).
pub fn client_address(req: &HttpRequest, hops: usize) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded
        .len()
        .checked_sub(hops)
        .and_then(|i| forwarded[i].parse().ok())
        .or(peer)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn without_trusted_proxies_the_forwarded_header_is_ignored() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.9:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "1.2.3.4"))
            .to_http_request();
        assert_eq!(client_address(&req, 0), Some("10.0.0.9".parse().unwrap()));
    }

    #[test]
    fn behind_one_proxy_the_address_it_appended_counts_not_the_forged_ones() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.9:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 1.2.3.4"))
            .to_http_request();
        assert_eq!(client_address(&req, 1), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(client_address(&req, 2), Some("6.6.6.6".parse().unwrap()));
        assert_eq!(client_address(&req, 3), Some("10.0.0.9".parse().unwrap()));
    }
}
