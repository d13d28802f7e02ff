//! The ingest service: the entry point of internal producers, who publish Avro
//! `NotificationRequest`s to `notifications.requests` instead of calling the HTTP API.
//!
//! It consumes the topic (consumer group `ingest`) and treats each record as the gateway
//! treats a `POST /api/v1/notifications/`, with the gateway's own code (`notify_intake`):
//!
//! 1. **identity** ([`request::Handler`]): the producer is the subject of the signed token in
//!    the `x-producer-token` header (audience `notify-ingest`, scope `notifications:produce`),
//!    judged as of the record's timestamp; a header naming a producer is not identity;
//! 2. **decode**: Confluent wire format, the writer schema fetched by id and resolved to this
//!    service's version of the contract (so older and newer producers both decode);
//! 3. **validate** with the API's rules, then check that the user and the template exist;
//! 4. **accept**: the notification, its outbox row and the idempotency record
//!    `(producer, request_id)` in one transaction; a duplicate is a no-op.
//!
//! A request that can never be accepted (no or bad identity, undecodable, another schema,
//! invalid, unknown user or template, `request_id` reused for another request) goes to
//! `notifications.requests.dlt` with the reason in `x-error-class` / `x-error-message`
//! ([`dead_letter`]); the consumer goes on. An outage (PostgreSQL, the registry, user-svc or
//! template-svc, the broker for dead letters) dead-letters nothing: the record is held and
//! tried again with backoff, and the records behind it wait in Kafka.
//!
//! Offsets are committed in receive order, each only once its record is accepted, found a
//! duplicate or dead-lettered ([`notify_kafka::ordered`]): a crash re-reads the records
//! whose outcome was not durable, and the idempotency record makes that harmless.

pub mod dead_letter;
pub mod request;
pub mod settings;

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::{dev::Server, get, web, HttpResponse};
use anyhow::Context;
use notify_intake::References;
use notify_kit::{
    auth::{JwtIssuer, JwtVerifier},
    health::{check, HealthReport},
};
use notify_schemas::{registry::SchemaRegistry, NOTIFICATION_REQUEST};
use notify_store::outbox::RelayWaker;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{Message, OwnedMessage},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;

use crate::{
    dead_letter::DeadLetters,
    request::{Handler, Outcome},
};

/// An ingest service ready to run.
pub struct Ingest {
    port: u16,
    server: Server,
    consumer: Arc<StreamConsumer>,
    handler: Arc<Handler>,
    dead_letters: Arc<DeadLetters>,
    concurrency: usize,
}

struct HealthState {
    pool: PgPool,
}

impl Ingest {
    /// Connects to PostgreSQL (runs migrations), creates the topics it reads and writes,
    /// subscribes, and binds the ops listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        notify_kit::metrics::install();
        let pool_size = u32::try_from(settings.concurrency + 2).unwrap_or(u32::MAX);
        let pool = notify_store::connect(settings.database_url.expose(), pool_size)
            .await
            .with_context(|| format!("database {}", settings.database_url))?;
        notify_store::migrate(&pool).await?;
        notify_kit::metrics::report_db_pool({
            let pool = pool.clone();
            move || (!pool.is_closed()).then(|| (pool.size(), pool.num_idle()))
        });
        let topics = settings.kafka.topics();
        let (requests, dlt) = (topics.producer_requests(), topics.producer_requests_dlt());
        notify_kafka::ensure_topics(&settings.kafka, &[requests.clone(), dlt.clone()]).await?;

        let mut producer_auth = settings.auth.clone();
        producer_auth.audience = settings.producer_audience.clone();
        let verifier = JwtVerifier::new(&producer_auth).context("invalid JWT key material")?;
        let issuer = JwtIssuer::new(&settings.auth)
            .context("cannot sign the ingest service's token for user-svc/template-svc")?;
        let references = References::new(&settings.lookup, issuer, "ingest")?;
        let registry = SchemaRegistry::new(&settings.schema_registry_url)?;
        let reader = notify_schemas::parse_schema(&NOTIFICATION_REQUEST)
            .map_err(|e| anyhow::anyhow!("the compiled-in request contract does not parse: {e}"))?;
        let handler = Arc::new(Handler {
            verifier,
            registry,
            reader: Arc::new(reader),
            references,
            pool: pool.clone(),
            idempotency_ttl: settings.idempotency_ttl,
            waker: RelayWaker::spawn(pool.clone(), Duration::from_millis(2)),
            max_record_bytes: settings.max_record_bytes,
        });
        let dead_letters = Arc::new(DeadLetters::new(&settings.kafka, dlt, settings.group_id.clone())?);

        let mut config = settings.kafka.consumer_config(&settings.group_id, 4096);
        if let Some(instance) = &settings.instance_id {
            config.set("group.instance.id", format!("{}/{instance}", settings.group_id));
        }
        let consumer: StreamConsumer = config.create().context("failed to create the consumer")?;
        consumer.subscribe(&[&requests])?;

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(HealthState { pool });
        let server = notify_kit::http::ops_server(listener, move |cfg| {
            cfg.app_data(state.clone()).service(health_endpoint);
        })?;
        Ok(Self {
            port,
            server,
            consumer: Arc::new(consumer),
            handler,
            dead_letters,
            concurrency: settings.concurrency,
        })
    }

    /// The port of `/health` and `/metrics`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Ingests until `stop`: up to `concurrency` records at once (one key's in order),
    /// offsets committed in receive order once settled. On `stop` the records in hand finish
    /// (or stay uncommitted when held), the settled offsets are committed and the consumer
    /// leaves the group.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let consumer = self.consumer;
        let worker = Arc::new(Worker {
            handler: self.handler,
            dead_letters: self.dead_letters,
            held: Arc::new(AtomicI64::new(0)),
        });
        metrics::gauge!("ingest_held_records").set(0.0);
        // Every outcome's series exists from the start, so `increase()` sees the first one.
        for outcome in ["accepted", "duplicate", "dead_lettered"] {
            metrics::counter!("ingest_requests_total", "outcome" => outcome).increment(0);
        }
        notify_kafka::ordered::consume_keyed(consumer, self.concurrency, stop, move |msg, stop| {
            let worker = worker.clone();
            async move { worker.settle(&msg, &stop).await }
        })
        .await;
        handle.stop(true).await;
        let _ = server.await;
        Ok(())
    }
}

/// Settles records: handles each, dead-letters the rejected, holds through outages.
struct Worker {
    handler: Arc<Handler>,
    dead_letters: Arc<DeadLetters>,
    /// Records currently held by an outage (the `ingest_held_records` gauge).
    held: Arc<AtomicI64>,
}

impl Worker {
    /// Handles one record until its outcome is durable (accepted, duplicate, or dead letter
    /// acknowledged), retrying with backoff while a dependency is down. `false` when stopped
    /// first: the record stays uncommitted and is read again.
    async fn settle(&self, msg: &OwnedMessage, stop: &CancellationToken) -> bool {
        let span = tracing::info_span!(
            "ingest_request",
            otel.name = format!("{} process", msg.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = msg.topic(),
            messaging.kafka.partition = msg.partition(),
            messaging.kafka.offset = msg.offset(),
            producer = tracing::field::Empty,
            request_id = tracing::field::Empty,
            notification_id = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let mut backoff = Duration::from_millis(100);
        let mut holding = false;
        let settled = loop {
            let attempt = match self.handler.handle(msg, &span).await {
                Ok(Outcome::Rejected(rejection)) => self
                    .dead_letters
                    .send(msg, &rejection)
                    .await
                    .map(|()| Outcome::Rejected(rejection))
                    .context("failed to dead-letter the request"),
                other => other,
            };
            match attempt {
                Ok(outcome) => {
                    outcome.record(&span);
                    break true;
                }
                Err(e) => {
                    if !holding {
                        holding = true;
                        self.held_by(1);
                    }
                    tracing::warn!(parent: &span, error = format!("{e:#}"), "request held: a dependency is unavailable; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        if holding {
            self.held_by(-1);
        }
        settled
    }

    fn held_by(&self, delta: i64) {
        let now = self.held.fetch_add(delta, Ordering::SeqCst) + delta;
        metrics::gauge!("ingest_held_records").set(now as f64);
    }
}

#[get("/health")]
async fn health_endpoint(state: web::Data<HealthState>) -> HttpResponse {
    let postgres = check("postgres", true, Duration::from_secs(2), async {
        sqlx::query("SELECT 1").execute(&state.pool).await.map(|_| ())
    })
    .await;
    HealthReport::new("ingest", env!("CARGO_PKG_VERSION"), vec![postgres]).into_response()
}
