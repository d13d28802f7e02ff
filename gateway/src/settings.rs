//! Gateway configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_kit::{
    auth::AuthSettings,
    settings,
    settings::{SecretUrl, SettingsError},
};
use notify_lookup::{CacheSettings, LookupSettings};
use secrecy::SecretString;

use crate::domain::webhooks::sendgrid::SendGridVerifier;

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
    /// The provider webhooks (`APP_SENDGRID_WEBHOOK_*`, `APP_MAILGUN_WEBHOOK_*`, `APP_WEBHOOK_*`).
    pub webhooks: WebhookSettings,
    /// Per-caller and per-recipient limits (`APP_RATE_LIMIT_*`, see [`crate::rate_limits`]);
    /// `None` when `APP_RATE_LIMIT_ENABLED=false`.
    pub rate_limits: Option<RateLimitSettings>,
}

/// The provider webhooks (`POST /api/v1/webhooks/{sendgrid,mailgun}`). An endpoint whose key
/// is not set answers 404 (not configured).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `APP_SENDGRID_WEBHOOK_PUBLIC_KEY`: the Signed Event Webhook's verification key as
    /// SendGrid shows it (base64 of the DER SubjectPublicKeyInfo of a P-256 key). Checked at
    /// start.
    pub sendgrid: Option<SendGridVerifier>,
    /// `APP_MAILGUN_WEBHOOK_SIGNING_KEY`: Mailgun's HTTP webhook signing key. Secret.
    /// Refused at start when it fails `notify_kit::settings::check_secret`.
    pub mailgun_signing_key: Option<SecretString>,
    /// `APP_WEBHOOK_MAX_AGE_SECS` (default 300): how far a Mailgun signature's timestamp may
    /// be from now, either way; a token is remembered twice as long.
    pub max_age: Duration,
    /// `APP_WEBHOOK_MAX_BODY_BYTES` (default 1048576): largest webhook body (SendGrid posts
    /// batches of events, well under a megabyte).
    pub max_body_bytes: usize,
    /// `APP_USER_SVC_URL` (default `http://127.0.0.1:8082`): where suppressions are written.
    pub user_svc_url: String,
    /// `APP_DIRECTORY_TIMEOUT_MS` (default 2000): bound on each call to user-svc.
    pub user_svc_timeout: Duration,
    /// Redis for the used Mailgun tokens (`APP_REDIS_URL`, `APP_CACHE_PREFIX`,
    /// `APP_REDIS_TIMEOUT_MS`).
    pub redis: CacheSettings,
}

impl WebhookSettings {
    /// Reads the variables above.
    pub fn from_env() -> Result<Self, SettingsError> {
        const SENDGRID_KEY: &str = "APP_SENDGRID_WEBHOOK_PUBLIC_KEY";
        let sendgrid = settings::optional(SENDGRID_KEY)
            .map(|k| SendGridVerifier::from_base64_der(&k).map_err(|e| SettingsError::invalid(SENDGRID_KEY, e)))
            .transpose()?;
        let max_age: u64 = settings::parse("APP_WEBHOOK_MAX_AGE_SECS", 300)?;
        if max_age == 0 {
            return Err(SettingsError::invalid("APP_WEBHOOK_MAX_AGE_SECS", "must be > 0"));
        }
        Ok(Self {
            sendgrid,
            mailgun_signing_key: settings::strong_secret("APP_MAILGUN_WEBHOOK_SIGNING_KEY")?,
            max_age: Duration::from_secs(max_age),
            max_body_bytes: settings::positive("APP_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)?,
            user_svc_url: settings::string("APP_USER_SVC_URL", "http://127.0.0.1:8082"),
            user_svc_timeout: settings::millis("APP_DIRECTORY_TIMEOUT_MS", 2000)?,
            redis: CacheSettings::from_env()?,
        })
    }

    /// Neither webhook configured (tests start from this).
    pub fn disabled() -> Self {
        Self {
            sendgrid: None,
            mailgun_signing_key: None,
            max_age: Duration::from_secs(300),
            max_body_bytes: 1024 * 1024,
            user_svc_url: "http://127.0.0.1:8082".into(),
            user_svc_timeout: Duration::from_secs(2),
            redis: CacheSettings {
                redis_url: SecretUrl::new("redis://127.0.0.1:6379"),
                prefix: String::new(),
                ttl: Duration::from_secs(30),
                op_timeout: Duration::from_millis(250),
            },
        }
    }
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
            webhooks: WebhookSettings::from_env()?,
            rate_limits: RateLimitSettings::from_env()?,
        })
    }
}
