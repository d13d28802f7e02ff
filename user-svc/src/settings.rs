//! user-svc configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_kit::{
    auth::AuthSettings,
    settings,
    settings::{SecretUrl, SettingsError},
};
use notify_lookup::CacheSettings;

use crate::{
    domain::DeviceDefaults, login_guard::LoginSettings, password::HashingParams, unsubscribe::UnsubscribeSettings,
};

/// Everything user-svc reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_HOST` (default `127.0.0.1`).
    pub host: String,
    /// `APP_PORT` (default 8082; 0 picks a free port).
    pub port: u16,
    /// `APP_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/notify_users`).
    /// May hold a password: never logged.
    pub database_url: SecretUrl,
    /// `APP_DATABASE_MAX_CONNECTIONS` (default 16).
    pub database_max_connections: u32,
    /// `APP_RUN_MIGRATIONS` (default true): create the database if missing and migrate it.
    pub run_migrations: bool,
    /// `APP_MAX_BODY_BYTES`: largest accepted request body (default 65536).
    pub max_body_bytes: usize,
    /// `APP_HTTP_WORKERS`: actix worker threads (default: number of CPUs).
    pub http_workers: usize,
    /// `APP_OPEN_REGISTRATION` (default false): when true, anyone may create a user without
    /// a token (public sign-up); otherwise creating needs a service token with `users:write`.
    pub open_registration: bool,
    /// `APP_USER_TOKEN_TTL_SECS`: lifetime of login tokens (default 900 = 15 min).
    pub user_token_ttl: Duration,
    /// Argon2id cost: `APP_PASSWORD_HASH_MEMORY_KIB` (default 19456),
    /// `APP_PASSWORD_HASH_ITERATIONS` (default 2), `APP_PASSWORD_HASH_PARALLELISM` (default 1),
    /// the OWASP baseline.
    pub password_hashing: HashingParams,
    /// JWT keys (`APP_JWT_*`); user-svc also signs, so it needs `APP_JWT_HS256_SECRET` or
    /// `APP_JWT_RS256_PRIVATE_KEY(_FILE)` besides the public key.
    pub auth: AuthSettings,
    /// The lookup cache to invalidate (`APP_REDIS_URL`, `APP_CACHE_PREFIX`,
    /// `APP_REDIS_TIMEOUT_MS`).
    pub cache: CacheSettings,
    /// `APP_PUSH_DEFAULT_PROVIDERS`: the push provider of a device registered without one,
    /// as `platform=provider` pairs (default `android=fcm,ios=fcm,web=webpush`; platforms
    /// left out keep theirs).
    pub device_defaults: DeviceDefaults,
    /// One-click unsubscribe links (`APP_UNSUBSCRIBE_SECRET`, `APP_UNSUBSCRIBE_TTL_DAYS`,
    /// `APP_PUBLIC_BASE_URL`; see [`UnsubscribeSettings`]).
    pub unsubscribe: UnsubscribeSettings,
    /// Login lockouts and the bounded hashing queue (`APP_LOGIN_*`, see
    /// [`crate::login_guard`]).
    pub login: LoginSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let cache = CacheSettings::from_env()?;
        Ok(Self {
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", 8082)?,
            database_url: settings::secret_url("APP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify_users")?,
            database_max_connections: settings::parse("APP_DATABASE_MAX_CONNECTIONS", 16)?,
            run_migrations: settings::parse("APP_RUN_MIGRATIONS", true)?,
            max_body_bytes: settings::parse("APP_MAX_BODY_BYTES", 64 * 1024)?,
            http_workers: settings::parse(
                "APP_HTTP_WORKERS",
                std::thread::available_parallelism().map_or(2, usize::from),
            )?,
            open_registration: settings::parse("APP_OPEN_REGISTRATION", false)?,
            user_token_ttl: Duration::from_secs(settings::parse("APP_USER_TOKEN_TTL_SECS", 900)?),
            password_hashing: HashingParams {
                memory_kib: settings::parse("APP_PASSWORD_HASH_MEMORY_KIB", 19_456)?,
                iterations: settings::parse("APP_PASSWORD_HASH_ITERATIONS", 2)?,
                parallelism: settings::parse("APP_PASSWORD_HASH_PARALLELISM", 1)?,
            },
            auth: AuthSettings::from_env()?,
            login: LoginSettings::from_env(cache.redis_url.clone(), cache.op_timeout, &cache.prefix)?,
            cache,
            device_defaults: DeviceDefaults::parse(&settings::string("APP_PUSH_DEFAULT_PROVIDERS", ""))?,
            unsubscribe: UnsubscribeSettings::from_env()?,
        })
    }
}
