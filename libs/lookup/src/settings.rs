//! Configuration from `APP_*` variables.

use std::time::Duration;

use notify_kit::settings::{self, SecretUrl, SettingsError};

/// The Redis cache: read by the lookups and by the services that invalidate it.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `APP_REDIS_URL` (default `redis://127.0.0.1:6379`). May hold a password: never logged.
    pub redis_url: SecretUrl,
    /// `APP_CACHE_PREFIX`: prepended to every key (default empty; tests use their own).
    pub prefix: String,
    /// `APP_DIRECTORY_CACHE_TTL_SECS`: how long an entry lives (default 30; 0 disables
    /// caching of lookups).
    pub ttl: Duration,
    /// `APP_REDIS_TIMEOUT_MS`: bound on each Redis command and on connecting (default 250),
    /// after which the cache is skipped.
    pub op_timeout: Duration,
}

impl CacheSettings {
    /// Reads the variables above.
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            redis_url: settings::secret_url("APP_REDIS_URL", "redis://127.0.0.1:6379")?,
            prefix: settings::string("APP_CACHE_PREFIX", ""),
            ttl: Duration::from_secs(settings::parse("APP_DIRECTORY_CACHE_TTL_SECS", 30)?),
            op_timeout: settings::millis("APP_REDIS_TIMEOUT_MS", 250)?,
        })
    }
}

/// Where the looked-up services are, for the workers and the gateway.
#[derive(Debug, Clone)]
pub struct LookupSettings {
    /// `APP_USER_SVC_URL` (default `http://127.0.0.1:8082`).
    pub user_svc_url: String,
    /// `APP_TEMPLATE_SVC_URL` (default `http://127.0.0.1:8083`).
    pub template_svc_url: String,
    /// `APP_DIRECTORY_TIMEOUT_MS`: per-request timeout (default 2000).
    pub timeout: Duration,
    /// The cache (see [`CacheSettings`]).
    pub cache: CacheSettings,
}

impl LookupSettings {
    /// Reads the variables above.
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            user_svc_url: settings::string("APP_USER_SVC_URL", "http://127.0.0.1:8082"),
            template_svc_url: settings::string("APP_TEMPLATE_SVC_URL", "http://127.0.0.1:8083"),
            timeout: settings::millis("APP_DIRECTORY_TIMEOUT_MS", 2000)?,
            cache: CacheSettings::from_env()?,
        })
    }
}
