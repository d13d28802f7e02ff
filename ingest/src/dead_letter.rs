//! `notifications.requests.dlt`: the requests the ingest service can never accept, each with
//! its value and key intact and the reason in headers (the names of the workers' dead letters,
//! `notify_schemas::headers`), so an operator sees why and the producer team can fix and
//! republish.

use std::time::Duration;

use anyhow::Context;
use notify_kafka::{headers, KafkaSettings};
use notify_schemas::headers::ErrorClass;
use rdkafka::{
    message::{Header, Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
};

/// Why a request is dead-lettered.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// `poison` (cannot be decoded as a request) or `permanent` (decoded, but can never be
    /// accepted).
    pub class: ErrorClass,
    /// What is wrong, for people: e.g. `invalid request: user_id: must be a UUID`.
    pub reason: String,
    /// The verified producer, when the identity check passed.
    pub producer: Option<String>,
}

impl Rejection {
    pub fn poison(reason: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Poison,
            reason: reason.into(),
            producer: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            reason: reason.into(),
            producer: None,
        }
    }

    pub fn by(mut self, producer: &str) -> Self {
        self.producer = Some(producer.to_string());
        self
    }
}

/// Header naming the verified producer of a dead-lettered request.
pub const PRODUCER: &str = "x-producer";

/// Writes dead letters (idempotent producer, every write acknowledged by all replicas).
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    group: String,
}

impl DeadLetters {
    pub fn new(kafka: &KafkaSettings, topic: String, group: String) -> anyhow::Result<Self> {
        let producer: FutureProducer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "30000")
            .create()
            .context("failed to create the dead-letter producer")?;
        Ok(Self { producer, topic, group })
    }

    /// Writes `msg` to the dead-letter topic with `why`, and waits for the broker's ack.
    pub async fn send(&self, msg: &OwnedMessage, why: &Rejection) -> anyhow::Result<()> {
        let mut out = OwnedHeaders::new();
        if let Some(original) = msg.headers() {
            for h in original.iter() {
                // The producer token is a credential: it stays out of the dead letter (whoever
                // reads dead letters does not get to publish as the producer).
                if h.key == headers::PRODUCER_TOKEN || is_reason_header(h.key) {
                    continue;
                }
                out = out.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let now = chrono::Utc::now().timestamp_millis().to_string();
        let reason: String = why.reason.chars().take(1024).collect();
        for (key, value) in [
            (headers::ERROR_CLASS, why.class.as_str()),
            (headers::ERROR_MESSAGE, reason.as_str()),
            (headers::ORIGINAL_TOPIC, msg.topic()),
            (headers::ORIGINAL_PARTITION, partition.as_str()),
            (headers::ORIGINAL_OFFSET, offset.as_str()),
            (headers::CONSUMER_GROUP, self.group.as_str()),
            (headers::DEAD_LETTERED_AT, now.as_str()),
        ] {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
        if let Some(p) = &why.producer {
            out = out.insert(Header {
                key: PRODUCER,
                value: Some(p.as_str()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(out);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        if let Some(value) = msg.payload() {
            record = record.payload(value);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| {
                anyhow::Error::new(e).context(format!("the broker refused the dead letter on {}", self.topic))
            })?;
        Ok(())
    }
}

/// The headers this service sets on a dead letter (a producer's own values are dropped, so
/// a record cannot pre-write its reason).
fn is_reason_header(key: &str) -> bool {
    [
        headers::ERROR_CLASS,
        headers::ERROR_MESSAGE,
        headers::ORIGINAL_TOPIC,
        headers::ORIGINAL_PARTITION,
        headers::ORIGINAL_OFFSET,
        headers::CONSUMER_GROUP,
        headers::DEAD_LETTERED_AT,
        PRODUCER,
    ]
    .contains(&key)
}
