//! Worker configuration, from `APP_*` environment variables.

use std::time::Duration;

use notify_lookup::LookupSettings;
use notify_kafka::KafkaSettings;
use notify_kit::{auth::AuthSettings, settings, settings::SettingsError};
use notify_schemas::Channel;

/// One delay tier of the retry path.
#[derive(Debug, Clone)]
pub struct Tier {
    /// Topic suffix: `retry-30s` or `retry-5m`.
    pub name: &'static str,
    /// How long a record waits in this tier before it is attempted again.
    pub delay: Duration,
    /// How many attempts this tier makes before handing over to the next (or the DLT).
    pub attempts: u32,
}

/// Everything a worker reads at start.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
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
    /// `APP_RETRY_30S_DELAY_MS` (30000) / `APP_RETRY_30S_ATTEMPTS` (3), then
    /// `APP_RETRY_5M_DELAY_MS` (300000) / `APP_RETRY_5M_ATTEMPTS` (3).
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

impl WorkerSettings {
    pub fn from_env(service: &'static str, channel: Channel, default_port: u16) -> Result<Self, SettingsError> {
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
                    name: "retry-30s",
                    delay: settings::millis("APP_RETRY_30S_DELAY_MS", 30_000)?,
                    attempts: settings::parse("APP_RETRY_30S_ATTEMPTS", 3)?,
                },
                Tier {
                    name: "retry-5m",
                    delay: settings::millis("APP_RETRY_5M_DELAY_MS", 300_000)?,
                    attempts: settings::parse("APP_RETRY_5M_ATTEMPTS", 3)?,
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

    /// Where a record that failed its `attempt`-th attempt goes next: a tier, or `None` for
    /// the dead-letter topic (retries exhausted).
    pub fn next_tier(&self, attempt: u32) -> Option<&Tier> {
        let mut budget = 0;
        for tier in &self.tiers {
            budget += tier.attempts;
            if attempt <= budget {
                return Some(tier);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(a: u32, b: u32) -> Vec<Tier> {
        vec![
            Tier {
                name: "retry-30s",
                delay: Duration::from_secs(30),
                attempts: a,
            },
            Tier {
                name: "retry-5m",
                delay: Duration::from_secs(300),
                attempts: b,
            },
        ]
    }

    #[test]
    fn failures_climb_the_tiers_then_reach_the_dead_letter_topic() {
        let mut s = WorkerSettings {
            service: "t",
            channel: Channel::Email,
            host: String::new(),
            port: 0,
            kafka: KafkaSettings::local(""),
            schema_registry_url: String::new(),
            group_id: String::new(),
            tiers: tiers(2, 1),
            lookup: LookupSettings {
                user_svc_url: String::new(),
                template_svc_url: String::new(),
                timeout: Duration::from_secs(1),
                cache: notify_lookup::CacheSettings {
                    redis_url: notify_kit::settings::SecretUrl::new("redis://x"),
                    prefix: String::new(),
                    ttl: Duration::ZERO,
                    op_timeout: Duration::ZERO,
                },
            },
            ledger_ttl: Duration::ZERO,
            auth: AuthSettings::hs256("x"),
            queued_max_kbytes: 1,
            concurrency: 1,
            max_in_flight: 1,
            instance_id: None,
        };
        let names: Vec<Option<&str>> = (1..=4).map(|a| s.next_tier(a).map(|t| t.name)).collect();
        assert_eq!(
            names,
            vec![Some("retry-30s"), Some("retry-30s"), Some("retry-5m"), None]
        );
        s.tiers = tiers(0, 0);
        assert!(s.next_tier(1).is_none(), "no retries configured: straight to the DLT");
    }
}
