//! Worker configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_kafka::{KafkaSettings, RETRY_TIERS};
use notify_kit::{auth::AuthSettings, settings, settings::SettingsError};
use notify_lookup::LookupSettings;
use notify_schemas::Channel;

/// One delay tier of the retry path: the first or the second. Its delay and attempts are
/// configuration (`APP_RETRY_TIER1_*`, `APP_RETRY_TIER2_*`); its topic keeps the name the
/// topic contract gave it (`retry-30s`, `retry-5m`, from the default delays), whatever delay
/// is configured, because topic names are what producers, consumers, dashboards and
/// `notifyctl` agree on.
#[derive(Debug, Clone)]
pub struct Tier {
    /// Suffix of the tier's topic (`notify_schemas::topics::RETRY_TIERS`): `retry-30s` for
    /// the first tier, `retry-5m` for the second. Also the `tier` label of the metrics.
    pub name: &'static str,
    /// How long a record waits in this tier before it is attempted again.
    pub delay: Duration,
    /// How many attempts this tier makes before handing over to the next (or the DLT).
    pub attempts: u32,
}

/// Everything a worker reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Service name (`email-worker`, `push-worker`): logs, metrics, DLT headers.
    pub service: &'static str,
    pub channel: Channel,
    /// `APP_HOST`/`APP_PORT` of the health and metrics endpoint.
    pub host: String,
    pub port: u16,
    /// `APP_KAFKA_*`.
    pub kafka: KafkaSettings,
    /// `APP_SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8081`).
    pub schema_registry_url: String,
    /// `APP_CONSUMER_GROUP` (default: the topic prefix + the service name). The priority
    /// topic is consumed by `<group>.priority`.
    pub group_id: String,
    /// `APP_RETRY_TIER1_DELAY_MS` (30000) / `APP_RETRY_TIER1_ATTEMPTS` (3), then
    /// `APP_RETRY_TIER2_DELAY_MS` (300000) / `APP_RETRY_TIER2_ATTEMPTS` (3).
    pub tiers: Vec<Tier>,
    /// `APP_USER_SVC_URL`, `APP_TEMPLATE_SVC_URL`, `APP_REDIS_URL`, … (see `notify-lookup`).
    pub lookup: LookupSettings,
    /// `APP_LEDGER_TTL_SECS`: how long a delivery is remembered (default 7 days).
    pub ledger_ttl: Duration,
    /// JWT key material (`APP_JWT_*`) to sign the worker's own service token.
    pub auth: AuthSettings,
    /// `APP_CONSUMER_INSTANCE_ID`: static group membership (`group.instance.id`): a restarted
    /// instance takes its old place in the group at once instead of waiting for the dead
    /// member to time out. Unset: dynamic membership.
    pub instance_id: Option<String>,
    /// `APP_CONSUMER_QUEUED_MAX_KBYTES`: librdkafka prefetch per consumer (default 2048; the
    /// library's 64 MiB default dominates a worker's memory otherwise).
    pub queued_max_kbytes: u32,
    /// `APP_WORKER_CONCURRENCY`: attempts in progress at once per consume loop (default 8).
    /// Records are spread over the slots by key, so one key's records stay in order.
    pub concurrency: usize,
    /// `APP_WORKER_MAX_IN_FLIGHT`: records per consume loop received but not yet committed
    /// (default 512); the loop stops reading while that many are open.
    pub max_in_flight: usize,
}

/// The variables of the retry tiers before they were named by position (a delay named in a
/// variable that sets another delay misleads), and their names now. Setting one is refused,
/// so a deployment that still sets it does not silently run with the default.
const RENAMED: [(&str, &str); 4] = [
    ("APP_RETRY_30S_DELAY_MS", "APP_RETRY_TIER1_DELAY_MS"),
    ("APP_RETRY_30S_ATTEMPTS", "APP_RETRY_TIER1_ATTEMPTS"),
    ("APP_RETRY_5M_DELAY_MS", "APP_RETRY_TIER2_DELAY_MS"),
    ("APP_RETRY_5M_ATTEMPTS", "APP_RETRY_TIER2_ATTEMPTS"),
];

impl Settings {
    pub fn from_env(service: &'static str, channel: Channel, default_port: u16) -> Result<Self, SettingsError> {
        for (old, new) in RENAMED {
            if std::env::var_os(old).is_some() {
                return Err(SettingsError::invalid(
                    old,
                    format!("the variable was renamed to {new}: set that one instead"),
                ));
            }
        }
        let [tier1, tier2] = RETRY_TIERS;
        let kafka = KafkaSettings::from_env()?;
        let group_id = kafka.group_from_env(service);
        Ok(Self {
            service,
            channel,
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", default_port)?,
            kafka,
            schema_registry_url: settings::string("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            group_id,
            tiers: vec![
                Tier {
                    name: tier1,
                    delay: settings::millis("APP_RETRY_TIER1_DELAY_MS", 30_000)?,
                    attempts: settings::parse("APP_RETRY_TIER1_ATTEMPTS", 3)?,
                },
                Tier {
                    name: tier2,
                    delay: settings::millis("APP_RETRY_TIER2_DELAY_MS", 300_000)?,
                    attempts: settings::parse("APP_RETRY_TIER2_ATTEMPTS", 3)?,
                },
            ],
            lookup: LookupSettings::from_env()?,
            ledger_ttl: Duration::from_secs(settings::parse("APP_LEDGER_TTL_SECS", 7 * 86_400)?),
            auth: AuthSettings::from_env()?,
            queued_max_kbytes: settings::parse("APP_CONSUMER_QUEUED_MAX_KBYTES", 2048)?,
            concurrency: settings::positive("APP_WORKER_CONCURRENCY", 8)?,
            max_in_flight: settings::positive("APP_WORKER_MAX_IN_FLIGHT", 512)?,
            instance_id: settings::optional("APP_CONSUMER_INSTANCE_ID"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_variable_under_its_old_name_is_refused_with_the_new_name() {
        // The only test of this process that sets the variable (tests run in threads).
        std::env::set_var("APP_RETRY_5M_ATTEMPTS", "2");
        let err = Settings::from_env("t", Channel::Email, 0).unwrap_err().to_string();
        std::env::remove_var("APP_RETRY_5M_ATTEMPTS");
        assert!(err.contains("APP_RETRY_5M_ATTEMPTS"), "{err}");
        assert!(err.contains("renamed to APP_RETRY_TIER2_ATTEMPTS"), "{err}");
    }
}
