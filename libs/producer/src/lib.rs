//! Publishing notification requests from an internal service (see `schemas/README.md`,
//! "For producer teams").
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use notify_producer::{RequestProducer, ProducerSettings};
//! let producer = RequestProducer::connect(&ProducerSettings::from_env()?).await?;
//! let request = RequestProducer::validate(&serde_json::json!({
//!     "notification_type": "email",
//!     "user_id": "6c1b2a3d-0000-4000-8000-000000000001",
//!     "template_code": "welcome_email",
//!     "variables": {"name": "Ada"},
//!     "request_id": "signup-42",
//! }))
//! .map_err(|errors| anyhow::anyhow!("{errors:?}"))?;
//! producer.send(&request, None).await?;
//! # Ok(()) }
//! ```
//!
//! What it does for the producer:
//! - **validation**: the API's own ([`notify_intake::NotificationRequest::parse`]), so a request
//!   the library sends is one the ingest service accepts, unless its user or template is unknown;
//! - **key**: the recipient's user id, so one user's requests stay in order;
//! - **value**: the Confluent wire format with the id the registry gave the latest version of
//!   `notifications.requests-value` (looked up once, at connect);
//! - **headers**: the producer token (`x-producer-token`, the producer's identity), the
//!   notification type, the request id, the correlation id and a `traceparent`;
//! - **delivery**: an idempotent producer (`enable.idempotence`, `acks=all`); [`RequestProducer::send`]
//!   returns once the broker has the record. Sending the same request again is safe: the
//!   ingest service accepts one per `(producer, request_id)`.

use std::time::Duration;

use anyhow::Context;
use notify_intake::{record_of, NotificationRequest};
use notify_kafka::{headers, KafkaSettings};
use notify_kit::{correlation::CorrelationId, settings, tracecontext, FieldError};
use notify_schemas::{
    registry::{RegisteredSchema, SchemaRegistry},
    wire, IngestRequest, NOTIFICATION_REQUEST,
};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Where to publish and as whom.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// `APP_KAFKA_BOOTSTRAP`, `APP_KAFKA_TOPIC_PREFIX`.
    pub kafka: KafkaSettings,
    /// `APP_SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8081`).
    pub schema_registry_url: String,
    /// `NOTIFY_PRODUCER_TOKEN`: the producer's token (audience `notify-ingest`, scope
    /// `notifications:produce`), issued by the platform team. Never logged.
    pub token: SecretString,
}

impl ProducerSettings {
    /// Reads the variables above.
    pub fn from_env() -> Result<Self, settings::SettingsError> {
        Ok(Self {
            kafka: KafkaSettings::from_env()?,
            schema_registry_url: settings::string("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            token: settings::secret("NOTIFY_PRODUCER_TOKEN").ok_or_else(|| settings::SettingsError::Missing {
                name: "NOTIFY_PRODUCER_TOKEN".into(),
            })?,
        })
    }
}

/// Why a request was not published.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("the request does not encode with the registered schema: {0}")]
    Encode(#[from] wire::WireError),
    #[error("the broker did not take the request: {0}")]
    Broker(#[from] rdkafka::error::KafkaError),
}

/// Where a published request landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub partition: i32,
    pub offset: i64,
}

/// Publishes requests to `notifications.requests`. Cheap to share (`&self` everywhere).
pub struct RequestProducer {
    producer: FutureProducer,
    topic: String,
    schema: RegisteredSchema,
    token: SecretString,
}

impl std::fmt::Debug for RequestProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestProducer")
            .field("topic", &self.topic)
            .field("schema_id", &self.schema.id)
            .finish()
    }
}

impl RequestProducer {
    /// Looks up the registered request schema and creates the Kafka producer.
    pub async fn connect(settings: &ProducerSettings) -> anyhow::Result<Self> {
        let registry = SchemaRegistry::new(&settings.schema_registry_url)?;
        let schema = registry
            .latest(NOTIFICATION_REQUEST.subject)
            .await
            .with_context(|| format!("cannot look up {} in the schema registry", NOTIFICATION_REQUEST.subject))?;
        let producer: FutureProducer = settings
            .kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()
            .context("failed to create the Kafka producer")?;
        Ok(Self {
            producer,
            topic: settings.kafka.topics().producer_requests(),
            schema,
            token: settings.token.clone(),
        })
    }

    /// Validates a request given as the API's JSON body (`notification_type`, `user_id`,
    /// `template_code`, `variables`, `request_id`, `priority`, `metadata`): every problem,
    /// with its field, exactly as the API and the ingest service report it.
    pub fn validate(body: &Value) -> Result<NotificationRequest, Vec<FieldError>> {
        NotificationRequest::parse(body)
    }

    /// Publishes a validated request and waits for the broker's acknowledgement.
    pub async fn send(
        &self,
        request: &NotificationRequest,
        correlation_id: Option<&CorrelationId>,
    ) -> Result<Published, ProduceError> {
        self.send_record(&record_of(request, correlation_id)).await
    }

    /// Publishes a record as it is, *without validation*: for tools and tests that need to
    /// show what the ingest service does with a bad request. Services use [`Self::send`].
    pub async fn send_record(&self, record: &IngestRequest) -> Result<Published, ProduceError> {
        let payload = wire::encode(&self.schema.schema, self.schema.id, record)?;
        let correlation = record
            .correlation_id
            .clone()
            .unwrap_or_else(|| CorrelationId::generate().as_str().to_string());
        let traceparent = tracecontext::new_root();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: headers::PRODUCER_TOKEN,
                value: Some(self.token.expose_secret()),
            })
            .insert(Header {
                key: headers::NOTIFICATION_TYPE,
                value: Some(record.notification_type.as_str()),
            })
            .insert(Header {
                key: headers::REQUEST_ID,
                value: Some(record.request_id.as_str()),
            })
            .insert(Header {
                key: headers::CORRELATION_ID,
                value: Some(correlation.as_str()),
            })
            .insert(Header {
                key: headers::TRACEPARENT,
                value: Some(traceparent.as_str()),
            });
        let (partition, offset) = self
            .producer
            .send(
                FutureRecord::to(&self.topic)
                    .key(record.user_id.as_str())
                    .payload(&payload)
                    .headers(headers),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| ProduceError::Broker(e))?;
        Ok(Published { partition, offset })
    }

    /// The topic requests go to (with the configured prefix).
    pub fn topic(&self) -> &str {
        &self.topic
    }
}
