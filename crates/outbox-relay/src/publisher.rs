//! Producing records to Kafka and waiting for the broker's acknowledgements.

use std::time::Duration;

use async_trait::async_trait;
use notify_kafka::KafkaSettings;
use rdkafka::{
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
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl KafkaPublisher {
    pub fn new(kafka: &KafkaSettings, relay: &RelaySettings) -> anyhow::Result<Self> {
        let producer: FutureProducer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", relay.linger_ms.to_string())
            .set("message.timeout.ms", relay.message_timeout_ms.to_string())
            .set("compression.type", &relay.compression)
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .create()?;
        Ok(Self { producer })
    }

    /// Enqueues one record, waiting (in place, so order is kept) while the local queue is full.
    async fn enqueue(&self, r: &OutgoingRecord) -> Result<DeliveryFuture, KafkaError> {
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
            match self.producer.send_result(record) {
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
        // Enqueue everything first, in order, then await every acknowledgement.
        let mut pending = Vec::with_capacity(records.len());
        for r in &records {
            pending.push(self.enqueue(r).await);
        }
        let mut results = Vec::with_capacity(records.len());
        for p in pending {
            results.push(match p {
                Err(e) => Err(to_publish_error(&e)),
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(to_publish_error(&e)),
                    Err(_cancelled) => Err(PublishError {
                        message: "producer dropped the delivery report".into(),
                        permanent: false,
                    }),
                },
            });
        }
        results
    }

    async fn ping(&self) -> Result<(), String> {
        let producer = self.producer.clone();
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
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
