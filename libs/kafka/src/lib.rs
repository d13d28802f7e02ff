//! Kafka plumbing shared by every service that talks to the broker (the gateway never does).
//!
//! Only features that both Apache Kafka and the local `tansu` broker support are used:
//! idempotent produce, headers, consumer groups with manual commits. No transactions, and
//! topics are created explicitly ([`ensure_topics`]) because auto-creation is off.

pub mod ordered;

use std::time::Duration;

use anyhow::Context;
use notify_kit::settings::{self, SettingsError};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    types::RDKafkaErrorCode,
};

pub use notify_schemas::{
    headers,
    topics::{self, Topics, RETRY_TIERS},
};

/// Broker connection settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `APP_KAFKA_BOOTSTRAP` (default `127.0.0.1:9092`).
    pub bootstrap: String,
    /// Prefix for every topic name (`APP_KAFKA_TOPIC_PREFIX`, default empty); tests use one each.
    pub topic_prefix: String,
    /// Partitions for topics this service creates (`APP_KAFKA_PARTITIONS`, default 6).
    pub partitions: i32,
    /// Replication factor for topics this service creates (`APP_KAFKA_REPLICATION`, default 1).
    pub replication: i32,
}

impl KafkaSettings {
    /// `APP_KAFKA_BOOTSTRAP`, `APP_KAFKA_TOPIC_PREFIX`, `APP_KAFKA_PARTITIONS`,
    /// `APP_KAFKA_REPLICATION`, with the defaults documented on the fields.
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            bootstrap: settings::string("APP_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            topic_prefix: settings::string("APP_KAFKA_TOPIC_PREFIX", ""),
            partitions: settings::parse("APP_KAFKA_PARTITIONS", 6)?,
            replication: settings::parse("APP_KAFKA_REPLICATION", 1)?,
        })
    }

    /// `APP_CONSUMER_GROUP`, by default `name` under the topic prefix, so that deployments (or
    /// tests) sharing a broker under different prefixes never share a group.
    pub fn group_from_env(&self, name: &str) -> String {
        settings::string("APP_CONSUMER_GROUP", &format!("{}{name}", self.topic_prefix))
    }

    pub fn local(prefix: &str) -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            topic_prefix: prefix.into(),
            partitions: 3,
            replication: 1,
        }
    }

    pub fn topics(&self) -> Topics {
        Topics::new(&self.topic_prefix)
    }

    /// The base client configuration every client starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap)
            // IPv4 only: tansu advertises 127.0.0.1 and `localhost` may resolve to ::1.
            .set("broker.address.family", "v4")
            .set("socket.keepalive.enable", "true")
            // Small requests (one status event, one ack) must not wait for Nagle + delayed ACK
            // (~40 ms a round trip on Linux).
            .set("socket.nagle.disable", "true");
        // librdkafka's own debug contexts (e.g. `cgrp,topic`), for diagnosing the broker.
        if let Ok(debug) = std::env::var("APP_KAFKA_DEBUG") {
            if !debug.trim().is_empty() {
                cfg.set("debug", debug.trim());
            }
        }
        cfg
    }
}

impl KafkaSettings {
    /// Consumer configuration shared by every consumer group of the platform: offsets are
    /// committed by the application after the record's outcome is durable, never
    /// automatically; a new group starts from the earliest record; `queued_max_kbytes` bounds
    /// librdkafka's prefetch (its 64 MiB default dominates a service's memory otherwise).
    pub fn consumer_config(&self, group: &str, queued_max_kbytes: u32) -> ClientConfig {
        let mut cfg = self.client_config();
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false")
            // Only offsets the application stores (after a record's outcome is durable) are
            // ever committed, never merely the position of what was handed out.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            // Also the rebalance timeout: how long a rebalance waits for a member that died
            // without leaving the group (SIGKILL) before going on without it.
            .set("max.poll.interval.ms", "20000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "100")
            // A fetch the broker leaves unanswered (seen with tansu under load with retries)
            // is abandoned, and the connection renewed, after 5 s instead of librdkafka's 60 s
            // default, during which the consumer receives nothing.
            .set("socket.timeout.ms", "5000")
            .set("queued.max.messages.kbytes", queued_max_kbytes.to_string());
        cfg
    }
}

/// Creates each topic that does not exist yet, with `partitions` and `replication`.
/// Idempotent: an existing topic is left as it is.
pub async fn ensure_topics(settings: &KafkaSettings, names: &[String]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config()
        .create()
        .context("failed to create the Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, settings.partitions, TopicReplication::Fixed(settings.replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .context("failed to ask the broker to create topics")?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists")
            }
            Err((name, code)) => anyhow::bail!("failed to create topic {name}: {code}"),
        }
    }
    Ok(())
}
