//! Gateway configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_kit::{
    auth::AuthSettings,
    settings,
    settings::{SecretUrl, SettingsError},
};
use notify_lookup::LookupSettings;

use crate::rate_limits::RateLimitSettings;

/// Everything the gateway reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_HOST` (default `127.0.0.1`).
    pub host: String,
    /// `APP_PORT` (default 8080; 0 picks a free port).
    pub port: u16,
    /// `APP_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/notify`). May hold a password: never logged.
    pub database_url: SecretUrl,
    /// `APP_DATABASE_MAX_CONNECTIONS` (default 16).
    pub database_max_connections: u32,
    /// `APP_RUN_MIGRATIONS` (default true).
    pub run_migrations: bool,
    /// `APP_IDEMPOTENCY_TTL_SECS`: how long a `request_id` is remembered (default 86400).
    pub idempotency_ttl: Duration,
    /// `APP_MAX_BODY_BYTES`: largest accepted request body (default 65536).
    pub max_body_bytes: usize,
    /// `APP_HTTP_WORKERS`: actix worker threads (default: number of CPUs).
    pub http_workers: usize,
    /// JWT verification (`APP_JWT_*`).
    pub auth: AuthSettings,
    /// Where user-svc and template-svc are (`APP_USER_SVC_URL`, `APP_TEMPLATE_SVC_URL`, cache
    /// `APP_REDIS_URL`…), to reject unknown users and templates up front. `None` when
    /// `APP_VALIDATE_REFERENCES=false`.
    pub lookup: Option<LookupSettings>,
    /// Per-caller and per-recipient limits (`APP_RATE_LIMIT_*`, see [`crate::rate_limits`]);
    /// `None` when `APP_RATE_LIMIT_ENABLED=false`.
    pub rate_limits: Option<RateLimitSettings>,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", 8080)?,
            database_url: settings::secret_url("APP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify")?,
            database_max_connections: settings::parse("APP_DATABASE_MAX_CONNECTIONS", 16)?,
            run_migrations: settings::parse("APP_RUN_MIGRATIONS", true)?,
            idempotency_ttl: Duration::from_secs(settings::parse("APP_IDEMPOTENCY_TTL_SECS", 86_400)?),
            max_body_bytes: settings::parse("APP_MAX_BODY_BYTES", 64 * 1024)?,
            http_workers: settings::parse(
                "APP_HTTP_WORKERS",
                std::thread::available_parallelism().map_or(2, usize::from),
            )?,
            auth: AuthSettings::from_env()?,
            lookup: if settings::parse("APP_VALIDATE_REFERENCES", true)? {
                Some(LookupSettings::from_env()?)
            } else {
                None
            },
            rate_limits: RateLimitSettings::from_env()?,
        })
    }
}
