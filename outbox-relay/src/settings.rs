//! Relay configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_kafka::KafkaSettings;
use notify_kit::{
    settings,
    settings::{SecretUrl, SettingsError},
};

/// Everything the relay reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_HOST` / `APP_PORT` of the health and metrics endpoint (default 127.0.0.1:8090).
    pub host: String,
    pub port: u16,
    /// `APP_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/notify`).
    pub database_url: SecretUrl,
    /// `APP_KAFKA_*`, see [`KafkaSettings`].
    pub kafka: KafkaSettings,
    /// `APP_SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8081`).
    pub schema_registry_url: String,
    pub relay: RelaySettings,
}

/// Tuning of the relay loop.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed per batch (`APP_RELAY_BATCH_SIZE`, default 1000).
    pub batch_size: i64,
    /// Fallback poll when no `NOTIFY` arrives (`APP_RELAY_POLL_INTERVAL_MS`, default 1000).
    pub poll_interval: Duration,
    /// How often shard ownership is rebalanced (`APP_RELAY_REBALANCE_INTERVAL_MS`, default 2000).
    pub rebalance_interval: Duration,
    /// Permanent failures of a row before it is parked (`APP_RELAY_MAX_ATTEMPTS`, default 5).
    pub max_attempts: i32,
    /// First retry delay of a failed row (`APP_RELAY_RETRY_BASE_MS`, default 500).
    pub retry_base: Duration,
    /// Longest retry delay (`APP_RELAY_RETRY_MAX_MS`, default 30000).
    pub retry_max: Duration,
    /// How long published rows are kept (`APP_RELAY_RETENTION_SECS`, default 86400).
    pub retention: Duration,
    /// Producer `linger.ms` (`APP_RELAY_LINGER_MS`, default 5).
    pub linger_ms: u32,
    /// Producer `message.timeout.ms`: how long one publish may take (`APP_RELAY_MESSAGE_TIMEOUT_MS`, default 30000).
    pub message_timeout_ms: u32,
    /// Producer `compression.type` (`APP_RELAY_COMPRESSION`, default `none`).
    pub compression: String,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let kafka = KafkaSettings::from_env()?;
        Ok(Self {
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", 8090)?,
            database_url: settings::secret_url("APP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify")?,
            kafka,
            schema_registry_url: settings::string("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            relay: RelaySettings {
                batch_size: settings::parse("APP_RELAY_BATCH_SIZE", 1000)?,
                poll_interval: settings::millis("APP_RELAY_POLL_INTERVAL_MS", 1000)?,
                rebalance_interval: settings::millis("APP_RELAY_REBALANCE_INTERVAL_MS", 2000)?,
                max_attempts: settings::parse("APP_RELAY_MAX_ATTEMPTS", 5)?,
                retry_base: settings::millis("APP_RELAY_RETRY_BASE_MS", 500)?,
                retry_max: settings::millis("APP_RELAY_RETRY_MAX_MS", 30_000)?,
                retention: Duration::from_secs(settings::parse("APP_RELAY_RETENTION_SECS", 86_400)?),
                linger_ms: settings::parse("APP_RELAY_LINGER_MS", 5)?,
                message_timeout_ms: settings::parse("APP_RELAY_MESSAGE_TIMEOUT_MS", 30_000)?,
                compression: settings::string("APP_RELAY_COMPRESSION", "none"),
            },
        })
    }
}

impl RelaySettings {
    /// Defaults suited to tests: short delays.
    pub fn for_tests() -> Self {
        Self {
            batch_size: 200,
            poll_interval: Duration::from_millis(200),
            rebalance_interval: Duration::from_millis(300),
            max_attempts: 3,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
            retention: Duration::from_secs(86_400),
            linger_ms: 5,
            message_timeout_ms: 5_000,
            compression: "none".into(),
        }
    }
}
