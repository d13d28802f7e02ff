//! Ingest configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_kafka::KafkaSettings;
use notify_kit::{
    auth::AuthSettings,
    settings,
    settings::{SecretUrl, SettingsError},
};
use notify_lookup::LookupSettings;

/// Everything the ingest service reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_HOST` / `APP_PORT` (default 127.0.0.1:8094) of `/health` and `/metrics`.
    pub host: String,
    pub port: u16,
    /// `APP_DATABASE_URL` (the notification database). May hold a password: never logged.
    pub database_url: SecretUrl,
    /// `APP_KAFKA_*`.
    pub kafka: KafkaSettings,
    /// `APP_SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8081`).
    pub schema_registry_url: String,
    /// `APP_CONSUMER_GROUP` (default: the topic prefix + `ingest`).
    pub group_id: String,
    /// `APP_CONSUMER_INSTANCE_ID`: static group membership (`group.instance.id`), so a
    /// restarted instance takes its partitions back at once (optional; as the workers).
    pub instance_id: Option<String>,
    /// `APP_INGEST_CONCURRENCY`: requests handled at once (default 8), spread by key (the
    /// recipient), so one user's requests are accepted in order.
    pub concurrency: usize,
    /// `APP_INGEST_MAX_RECORD_BYTES`: largest request value accepted (default 65536, the
    /// gateway's body limit); a larger one is dead-lettered.
    pub max_record_bytes: usize,
    /// `APP_IDEMPOTENCY_TTL_SECS`: how long a `(producer, request_id)` is remembered (default
    /// 86400, as the gateway).
    pub idempotency_ttl: Duration,
    /// `APP_JWT_*`: the platform's keys. They verify producer tokens (with
    /// [`Settings::producer_audience`]) and sign the service's own token for user-svc and
    /// template-svc.
    pub auth: AuthSettings,
    /// `APP_INGEST_TOKEN_AUDIENCE`: the `aud` a producer token must carry (default
    /// `notify-ingest`; an API token, `notify-api`, is refused).
    pub producer_audience: String,
    /// Where user-svc and template-svc are (`APP_USER_SVC_URL`, `APP_TEMPLATE_SVC_URL`, the
    /// cache `APP_REDIS_URL`…): requests for unknown users or templates are dead-lettered.
    pub lookup: LookupSettings,
}

impl Settings {
    /// Reads the variables above.
    pub fn from_env() -> Result<Self, SettingsError> {
        let kafka = KafkaSettings::from_env()?;
        let group_id = kafka.group_from_env("ingest");
        Ok(Self {
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", 8094)?,
            database_url: settings::secret_url("APP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify")?,
            kafka,
            schema_registry_url: settings::string("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            group_id,
            instance_id: settings::optional("APP_CONSUMER_INSTANCE_ID"),
            concurrency: settings::positive("APP_INGEST_CONCURRENCY", 8)?,
            max_record_bytes: settings::positive("APP_INGEST_MAX_RECORD_BYTES", 64 * 1024)?,
            idempotency_ttl: Duration::from_secs(settings::parse("APP_IDEMPOTENCY_TTL_SECS", 86_400)?),
            auth: AuthSettings::from_env()?,
            producer_audience: settings::string("APP_INGEST_TOKEN_AUDIENCE", notify_intake::PRODUCER_AUDIENCE),
            lookup: LookupSettings::from_env()?,
        })
    }
}
