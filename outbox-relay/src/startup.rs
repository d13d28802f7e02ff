//! Wiring: database, registry, producer, the relay loop, the `LISTEN` task, the retention
//! sweep and the health/metrics endpoint.

use std::{net::TcpListener, str::FromStr, sync::Arc, time::Duration};

use actix_web::{dev::Server, get, web, HttpResponse};
use anyhow::Context;
use notify_kit::health::{check, HealthReport};
use notify_schemas::registry::SchemaRegistry;
use notify_store::{outbox, OUTBOX_CHANNEL};
use sqlx::{
    postgres::{PgConnectOptions, PgListener},
    PgPool,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    encoder::Encoder,
    publisher::{KafkaPublisher, Publisher},
    relay::Relay,
    settings::Settings,
};

/// A relay ready to run.
pub struct Application {
    port: u16,
    server: Server,
    relay: Relay,
    pool: PgPool,
    settings: Settings,
}

struct HealthState {
    pool: PgPool,
    publisher: Arc<dyn Publisher>,
    registry: SchemaRegistry,
}

impl Application {
    /// Connects and binds. `publisher` replaces the Kafka publisher (tests delay acks with it).
    pub async fn build(settings: Settings, publisher: Option<Arc<dyn Publisher>>) -> anyhow::Result<Self> {
        notify_kit::metrics::install();
        register_metrics();
        let connect = PgConnectOptions::from_str(settings.database_url.expose())
            .with_context(|| format!("invalid APP_DATABASE_URL {}", settings.database_url))?;
        let pool = notify_store::connect(settings.database_url.expose(), 4)
            .await
            .with_context(|| format!("database {}", settings.database_url))?;
        notify_store::migrate(&pool).await?;
        notify_kit::metrics::report_db_pool({
            let pool = pool.clone();
            move || (!pool.is_closed()).then(|| (pool.size(), pool.num_idle()))
        });

        let publisher: Arc<dyn Publisher> = match publisher {
            Some(p) => p,
            None => Arc::new(
                KafkaPublisher::new(&settings.kafka, &settings.relay).context("failed to create the Kafka producer")?,
            ),
        };
        let registry = SchemaRegistry::new(&settings.schema_registry_url)?;
        let encoder = Encoder::new(registry.clone());
        if let Err(e) = encoder.warm_up().await {
            tracing::warn!(error = %e, "schemas not loaded at start; will retry per batch");
        }
        let relay = Relay::new(
            connect,
            settings.relay.clone(),
            settings.kafka.topics(),
            encoder,
            publisher.clone(),
            Arc::new(Notify::new()),
        );

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let health = web::Data::new(HealthState {
            pool: pool.clone(),
            publisher,
            registry,
        });
        let server = notify_kit::http::ops_server(listener, move |cfg| {
            cfg.app_data(health.clone()).service(health_endpoint);
        })?;
        Ok(Self {
            port,
            server,
            relay,
            pool,
            settings,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs everything until `stop` is cancelled, then finishes the batch in hand and exits.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Self {
            server,
            relay,
            pool,
            settings,
            ..
        } = self;
        let server_handle = server.handle();
        let server_task = tokio::spawn(server);
        tokio::spawn(ensure_topics(settings.clone(), stop.clone()));
        let listener = tokio::spawn(listen(pool.clone(), relay.wake.clone(), stop.clone()));
        tokio::spawn(report_backlog(pool.clone(), stop.clone()));
        let sweeper = tokio::spawn(sweep(pool, settings.relay.retention, stop.clone()));
        relay.run(stop.clone()).await;
        stop.cancel();
        let _ = listener.await;
        let _ = sweeper.await;
        server_handle.stop(true).await;
        let _ = server_task.await;
        tracing::info!("outbox-relay stopped");
        Ok(())
    }
}

/// Creates the platform's topics, retrying while the broker is unreachable.
async fn ensure_topics(settings: Settings, stop: CancellationToken) {
    let names = settings.kafka.topics().all();
    let mut delay = Duration::from_millis(500);
    while !stop.is_cancelled() {
        match notify_kafka::ensure_topics(&settings.kafka, &names).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "cannot create topics yet; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// `LISTEN`s for outbox commits and wakes the relay; reconnects on failure (the relay's
/// poll interval covers notifications lost meanwhile).
async fn listen(pool: PgPool, wake: Arc<Notify>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; polling meanwhile");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(OUTBOX_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed");
            continue;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                msg = listener.try_recv() => match msg {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection was lost and re-established: we may have missed
                    // notifications, so wake the relay once.
                    Ok(None) => wake.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        break;
                    }
                }
            }
        }
    }
}

/// Deletes published rows older than `retention`, every minute.
async fn sweep(pool: PgPool, retention: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        loop {
            match outbox::delete_published(&pool, retention, 10_000).await {
                Ok(10_000) => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(deleted = n, "published outbox rows removed");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox sweep failed; will retry");
                    break;
                }
            }
        }
    }
}

/// Publishes the outbox backlog gauges every 10 s (the outbox-age alert and panels read them).
async fn report_backlog(pool: PgPool, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match outbox::backlog(&pool).await {
            Ok(b) => {
                metrics::gauge!("outbox_pending_rows").set(b.pending as f64);
                metrics::gauge!("outbox_oldest_pending_age_seconds").set(b.oldest_age_secs);
                metrics::gauge!("outbox_parked_rows").set(b.parked as f64);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox backlog"),
        }
    }
}

/// Describes the relay's metrics and registers its counters at 0: the failure counters exist
/// before the first failure (dashboards show 0, and `increase()` sees the first one).
fn register_metrics() {
    metrics::describe_counter!(
        "relay_published_total",
        "Outbox rows published (acknowledged by the broker)."
    );
    metrics::describe_counter!(
        "relay_publish_failures_total",
        "Outbox rows whose publish failed (retried after a back-off)."
    );
    metrics::describe_counter!(
        "relay_parked_total",
        "Outbox rows parked after APP_RELAY_MAX_ATTEMPTS permanent failures."
    );
    metrics::describe_counter!(
        "relay_held_back_total",
        "Outbox rows held back behind an unpublished earlier row of their key."
    );
    metrics::describe_histogram!("relay_batch_seconds", "Duration of one claim, publish and mark batch.");
    metrics::describe_gauge!("relay_owned_shards", "Outbox shards this relay holds.");
    metrics::describe_gauge!("outbox_pending_rows", "Unpublished, unparked outbox rows.");
    metrics::describe_gauge!(
        "outbox_oldest_pending_age_seconds",
        "Age of the oldest unpublished, unparked outbox row."
    );
    metrics::describe_gauge!("outbox_parked_rows", "Parked outbox rows.");
    for name in [
        "relay_published_total",
        "relay_publish_failures_total",
        "relay_parked_total",
        "relay_held_back_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

#[get("/health")]
async fn health_endpoint(state: web::Data<HealthState>) -> HttpResponse {
    let timeout = Duration::from_secs(3);
    let postgres = check("postgres", true, timeout, async {
        sqlx::query("SELECT 1").execute(&state.pool).await.map(|_| ())
    });
    let kafka = check("kafka", true, timeout, state.publisher.ping());
    let registry = check("schema_registry", false, timeout, state.registry.ping());
    let (postgres, kafka, registry) = tokio::join!(postgres, kafka, registry);
    HealthReport::new(
        "outbox-relay",
        env!("CARGO_PKG_VERSION"),
        vec![postgres, kafka, registry],
    )
    .into_response()
}
