//! template-svc configuration, from `APP_*` environment variables.

use notify_kit::{
    auth::AuthSettings,
    settings,
    settings::{SecretUrl, SettingsError},
};
use notify_lookup::CacheSettings;

/// Everything template-svc reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_HOST` (default `127.0.0.1`).
    pub host: String,
    /// `APP_PORT` (default 8083; 0 picks a free port).
    pub port: u16,
    /// `APP_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/notify_templates`).
    /// May hold a password: never logged.
    pub database_url: SecretUrl,
    /// `APP_DATABASE_MAX_CONNECTIONS` (default 16).
    pub database_max_connections: u32,
    /// `APP_RUN_MIGRATIONS` (default true): create the database if missing and migrate it.
    pub run_migrations: bool,
    /// `APP_MAX_BODY_BYTES`: largest accepted request body (default 262144).
    pub max_body_bytes: usize,
    /// `APP_HTTP_WORKERS`: actix worker threads (default: number of CPUs).
    pub http_workers: usize,
    /// JWT verification (`APP_JWT_*`).
    pub auth: AuthSettings,
    /// The lookup cache to invalidate (`APP_REDIS_URL`, `APP_CACHE_PREFIX`,
    /// `APP_REDIS_TIMEOUT_MS`).
    pub cache: CacheSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", 8083)?,
            database_url: settings::secret_url(
                "APP_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/notify_templates",
            )?,
            database_max_connections: settings::parse("APP_DATABASE_MAX_CONNECTIONS", 16)?,
            run_migrations: settings::parse("APP_RUN_MIGRATIONS", true)?,
            max_body_bytes: settings::parse("APP_MAX_BODY_BYTES", 256 * 1024)?,
            http_workers: settings::parse(
                "APP_HTTP_WORKERS",
                std::thread::available_parallelism().map_or(2, usize::from),
            )?,
            auth: AuthSettings::from_env()?,
            cache: CacheSettings::from_env()?,
        })
    }
}
