//! Producing records to Kafka and waiting for the broker's acknowledgements.

use std::{collections::HashSet, sync::RwLock, time::Duration};

use async_trait::async_trait;
use notify_kafka::KafkaSettings;
use rdkafka::{
    config::ClientConfig,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer},
};

use crate::settings::RelaySettings;

/// A record ready to produce.
#[derive(Debug, Clone)]
pub struct OutgoingRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Why a record was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PublishError {
    pub message: String,
    /// Retrying cannot help (e.g. the record is larger than the broker accepts).
    pub permanent: bool,
}

/// Produces a batch in order and reports, per record and in the same order, whether the
/// broker acknowledged it.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    async fn publish(&self, records: Vec<OutgoingRecord>) -> Vec<Result<(), PublishError>>;

    /// Whether the broker answers (for `/health`).
    async fn ping(&self) -> Result<(), String>;
}

/// The Kafka publisher: an idempotent producer (`enable.idempotence=true`, `acks=all`), so
/// retries inside the client neither duplicate nor reorder records of a partition.
///
/// After a batch in which the broker failed records, the producer is replaced by a fresh one
/// (a new producer id): once sends time out, the old producer's sequence numbers have gaps
/// that a restarted broker may refuse forever.
pub struct KafkaPublisher {
    config: ClientConfig,
    producer: RwLock<FutureProducer>,
}

impl KafkaPublisher {
    pub fn new(kafka: &KafkaSettings, relay: &RelaySettings) -> anyhow::Result<Self> {
        let mut config = kafka.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", relay.linger_ms.to_string())
            .set("message.timeout.ms", relay.message_timeout_ms.to_string())
            .set("compression.type", &relay.compression)
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000");
        let producer = config.create()?;
        Ok(Self {
            config,
            producer: RwLock::new(producer),
        })
    }

    fn producer(&self) -> FutureProducer {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the producer with a fresh one (nothing is in flight when this is called).
    fn reset(&self) {
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!("replacing the Kafka producer after broker-side failures");
                match self.producer.write() {
                    Ok(mut p) => *p = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot create a new Kafka producer"),
        }
    }

    /// Enqueues one record, waiting (in place, so order is kept) while the local queue is full.
    async fn enqueue(producer: &FutureProducer, r: &OutgoingRecord) -> Result<DeliveryFuture, KafkaError> {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let record = FutureRecord::to(&r.topic)
                .key(&r.key)
                .payload(&r.payload)
                .headers(headers);
            match producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

/// Errors retrying cannot fix.
fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
        )
    )
}

fn to_publish_error(e: &KafkaError) -> PublishError {
    PublishError {
        message: e.to_string(),
        permanent: is_permanent(e),
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, records: Vec<OutgoingRecord>) -> Vec<Result<(), PublishError>> {
        // Enqueue everything first, in order, then await every acknowledgement. A record
        // refused locally (e.g. too large) stops the rest of its key from being sent at all,
        // so they are neither reordered nor duplicated.
        let producer = self.producer();
        let mut pending = Vec::with_capacity(records.len());
        let mut refused_keys: HashSet<&str> = HashSet::new();
        for r in &records {
            if refused_keys.contains(r.key.as_str()) {
                pending.push(Err(None));
                continue;
            }
            let p = Self::enqueue(&producer, r).await;
            if p.is_err() {
                refused_keys.insert(&r.key);
            }
            pending.push(p.map_err(Some));
        }
        let mut results = Vec::with_capacity(records.len());
        let mut broker_failed = false;
        for p in pending {
            results.push(match p {
                Err(None) => Err(PublishError {
                    message: "not sent: an earlier record of this key was refused".into(),
                    permanent: false,
                }),
                Err(Some(e)) => Err(to_publish_error(&e)),
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => {
                        broker_failed = true;
                        Err(to_publish_error(&e))
                    }
                    Err(_cancelled) => Err(PublishError {
                        message: "producer dropped the delivery report".into(),
                        permanent: false,
                    }),
                },
            });
        }
        if broker_failed {
            self.reset();
        }
        results
    }

    async fn ping(&self) -> Result<(), String> {
        let producer = self.producer();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

impl Drop for KafkaPublisher {
    fn drop(&mut self) {
        let _ = self.producer().flush(Duration::from_secs(5));
    }
}
