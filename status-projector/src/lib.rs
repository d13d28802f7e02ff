//! The status projector: the only writer of notification statuses after acceptance. It
//! consumes `notifications.status` (consumer group `status-projector`), applies each event
//! through the state machine in `notify_store::state_machine` (idempotent: a redelivered event is a
//! no-op) and commits the offset after the database commit.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, get, web, HttpResponse};
use anyhow::Context;
use chrono::{TimeZone, Utc};
use notify_kafka::{headers, KafkaSettings};
use notify_kit::{
    health::{check, HealthReport},
    settings,
    settings::{SecretUrl, SettingsError},
    tracecontext,
};
use notify_schemas::{registry::SchemaRegistry, wire, DeliveryStatus, NotificationStatusChanged};
use notify_store::state_machine::{apply, Applied, Status, StatusEvent};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{Headers, Message, OwnedMessage},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Configuration (`APP_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_HOST` / `APP_PORT` (default 127.0.0.1:8093) of health and metrics.
    pub host: String,
    pub port: u16,
    /// `APP_DATABASE_URL` (the notification database).
    pub database_url: SecretUrl,
    /// `APP_KAFKA_*`.
    pub kafka: KafkaSettings,
    /// `APP_SCHEMA_REGISTRY_URL`.
    pub schema_registry_url: String,
    /// `APP_CONSUMER_GROUP` (default: the topic prefix + `status-projector`).
    pub group_id: String,
    /// `APP_PROJECTOR_CONCURRENCY`: events applied at once (default 8), spread by
    /// notification id so one notification's events apply in order.
    pub concurrency: usize,
    /// `APP_CONSUMER_INSTANCE_ID`: static group membership (`group.instance.id`), as the
    /// workers have it: a restarted instance takes its old place at once instead of waiting
    /// for the dead member to be expired (which the local broker does not reliably do).
    pub instance_id: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let kafka = KafkaSettings::from_env()?;
        let group_id = kafka.group_from_env("status-projector");
        Ok(Self {
            host: settings::string("APP_HOST", "127.0.0.1"),
            port: settings::parse("APP_PORT", 8093)?,
            database_url: settings::secret_url("APP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify")?,
            kafka,
            schema_registry_url: settings::string("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            group_id,
            concurrency: settings::positive("APP_PROJECTOR_CONCURRENCY", 8)?,
            instance_id: settings::optional("APP_CONSUMER_INSTANCE_ID"),
        })
    }
}

/// Maps a wire status to the state machine's.
fn to_status(s: DeliveryStatus) -> Option<Status> {
    Some(match s {
        DeliveryStatus::Sent => Status::Sent,
        DeliveryStatus::Delivered => Status::Delivered,
        DeliveryStatus::Bounced => Status::Bounced,
        DeliveryStatus::Retrying => Status::Retrying,
        DeliveryStatus::DeadLettered => Status::DeadLettered,
        DeliveryStatus::Skipped => Status::Skipped,
        DeliveryStatus::Failed => Status::Failed,
        // Informational steps the projection does not track.
        DeliveryStatus::Published | DeliveryStatus::Sending => return None,
    })
}

/// Why an event could not be applied.
enum ApplyError {
    /// Skip it (logged): it will never apply.
    Poison(String),
    /// Try again (registry or database down).
    Retry(anyhow::Error),
}

/// A projector ready to run.
pub struct Projector {
    port: u16,
    server: Server,
    pool: PgPool,
    consumer: Arc<StreamConsumer>,
    registry: SchemaRegistry,
    concurrency: usize,
}

struct HealthState {
    pool: PgPool,
}

impl Projector {
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
        let topic = settings.kafka.topics().status();
        notify_kafka::ensure_topics(&settings.kafka, std::slice::from_ref(&topic)).await?;
        let mut config = settings.kafka.consumer_config(&settings.group_id, 2048);
        if let Some(instance) = &settings.instance_id {
            config.set("group.instance.id", format!("{}/{instance}", settings.group_id));
        }
        let consumer: StreamConsumer = config.create().context("failed to create the consumer")?;
        consumer.subscribe(&[&topic])?;
        let registry = SchemaRegistry::new(&settings.schema_registry_url)?;
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(HealthState { pool: pool.clone() });
        let server = notify_kit::http::ops_server(listener, move |cfg| {
            cfg.app_data(state.clone()).service(health_endpoint);
        })?;
        Ok(Self {
            port,
            server,
            pool,
            consumer: Arc::new(consumer),
            registry,
            concurrency: settings.concurrency,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Consumes until `stop`.
    /// Applies status events until `stop`: up to `concurrency` at once (one notification's
    /// events in order), offsets committed in order once applied
    /// ([`notify_kafka::ordered`]). An event that cannot be applied yet (database or registry
    /// down) is retried with backoff; one that never can (poison) is logged and skipped.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let consumer = self.consumer;
        let applier = Arc::new(Applier {
            registry: self.registry,
            pool: self.pool,
        });
        notify_kafka::ordered::consume_keyed(consumer, self.concurrency, stop, move |msg, stop| {
            let applier = applier.clone();
            async move { applier.apply_until_done(&msg, &stop).await }
        })
        .await;
        handle.stop(true).await;
        let _ = server.await;
        Ok(())
    }
}

/// A header of `msg` as text.
fn header<'m>(msg: &'m OwnedMessage, name: &str) -> Option<&'m str> {
    msg.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Decodes and applies status events.
struct Applier {
    registry: SchemaRegistry,
    pool: PgPool,
}

impl Applier {
    /// Applies one event, retrying with backoff while it cannot be applied yet, in the span
    /// of its trace. `false` when stopped first (the event stays uncommitted).
    async fn apply_until_done(&self, msg: &OwnedMessage, stop: &CancellationToken) -> bool {
        let span = tracing::info_span!(
                   "apply_status",
                   otel.name = format!("{} process", msg.topic()),
                   otel.kind = "consumer",
                   messaging.system = "kafka",
                   messaging.operation.type = "process",
                   messaging.destination.name = msg.topic(),
                   messaging.kafka.offset = msg.offset(),
                   correlation_id = header(msg, headers::CORRELATION_ID).unwrap_or_default(),
                   notification_id = header(msg, headers::NOTIFICATION_ID).unwrap_or_default(),
                   trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
               );
        tracecontext::adopt(&span, header(msg, headers::TRACEPARENT));
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.apply(msg).instrument(span.clone()).await {
                Ok(applied) => {
                    metrics::counter!("status_events_total", "applied" => format!("{applied:?}")).increment(1);
                    return true;
                }
                Err(ApplyError::Poison(reason)) => {
                    metrics::counter!("status_events_total", "applied" => "Poison").increment(1);
                    tracing::error!(parent: &span, %reason, topic = msg.topic(), offset = msg.offset(), "status event skipped: cannot be applied");
                    return true;
                }
                Err(ApplyError::Retry(e)) => {
                    tracing::warn!(parent: &span, error = format!("{e:#}"), "status event not applied yet; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn apply(&self, msg: &OwnedMessage) -> Result<Applied, ApplyError> {
        let payload = msg.payload().unwrap_or_default();
        let id = wire::schema_id(payload).map_err(|e| ApplyError::Poison(e.to_string()))?;
        let schema = self.registry.schema_by_id(id).await.map_err(|e| {
            if e.is_not_found() {
                ApplyError::Poison(e.to_string())
            } else {
                ApplyError::Retry(e.into())
            }
        })?;
        let ev: NotificationStatusChanged =
            wire::decode(&schema, payload).map_err(|e| ApplyError::Poison(e.to_string()))?;
        let Some(status) = to_status(ev.status) else {
            return Ok(Applied::RecordedOnly);
        };
        let occurred_at = Utc
            .timestamp_millis_opt(ev.occurred_at)
            .single()
            .ok_or_else(|| ApplyError::Poison(format!("bad timestamp {}", ev.occurred_at)))?;
        apply(
            &self.pool,
            &StatusEvent {
                notification_id: ev.notification_id,
                status,
                attempt: ev.attempt,
                occurred_at,
                error: ev.error.as_deref(),
                provider: ev.provider.as_deref(),
                template_version: ev.template_version,
                language: ev.language.as_deref(),
                source: &ev.source,
            },
        )
        .await
        .map_err(|e| ApplyError::Retry(e.into()))
    }
}

#[get("/health")]
async fn health_endpoint(state: web::Data<HealthState>) -> HttpResponse {
    let postgres = check("postgres", true, Duration::from_secs(2), async {
        sqlx::query("SELECT 1").execute(&state.pool).await.map(|_| ())
    })
    .await;
    HealthReport::new("status-projector", env!("CARGO_PKG_VERSION"), vec![postgres]).into_response()
}
