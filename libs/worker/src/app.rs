//! Wiring a worker: registry, directories, ledger, producer, the consume loops and the
//! health/metrics endpoint. `email-worker` and `push-worker` are this plus a provider.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, get, web, HttpResponse};
use anyhow::Context;
use notify_kit::{
    auth::JwtIssuer,
    health::{check, HealthReport},
};
use notify_lookup::{
    Cache, DeviceRegistry, RecipientLookup, TemplateLookup, TokenSource, SCOPE_TEMPLATES_READ,
    SCOPE_USERS_DEVICES_WRITE, SCOPE_USERS_READ,
};
use notify_schemas::{registry::SchemaRegistry, Channel};
use rdkafka::producer::{FutureProducer, Producer};
use tokio_util::sync::CancellationToken;

use crate::{
    consumer::Runtime, devices::DeviceUpkeep, ledger::Ledger, pipeline::Pipeline, provider::Provider,
    settings::Settings, status_events::StatusEncoder,
};

/// A worker ready to run.
pub struct Application {
    port: u16,
    server: Server,
    runtime: Arc<Runtime>,
}

struct HealthState {
    service: &'static str,
    producer: FutureProducer,
    ledger: Ledger,
    registry: SchemaRegistry,
}

impl Application {
    pub async fn build(settings: Settings, provider: Arc<dyn Provider>) -> anyhow::Result<Self> {
        notify_kit::metrics::install();
        crate::metric_series::register(settings.channel, provider.name(), &settings.tiers);
        let registry = SchemaRegistry::new(&settings.schema_registry_url)?;
        let issuer = JwtIssuer::new(&settings.auth).context("cannot sign service tokens")?;
        // The push worker also reports devices used and gone; nothing else writes.
        let scopes: &[&str] = match settings.channel {
            Channel::Push => &[SCOPE_USERS_READ, SCOPE_TEMPLATES_READ, SCOPE_USERS_DEVICES_WRITE],
            Channel::Email => &[SCOPE_USERS_READ, SCOPE_TEMPLATES_READ],
        };
        let tokens = TokenSource::issuer(issuer, settings.service, scopes, Duration::from_secs(600));
        let devices = match settings.channel {
            Channel::Push => DeviceUpkeep::start(DeviceRegistry::new(
                &settings.lookup.user_svc_url,
                tokens.clone(),
                settings.lookup.timeout,
            )?),
            Channel::Email => DeviceUpkeep::disabled(),
        };
        let cache = Cache::new(&settings.lookup.cache).context("invalid cache settings")?;
        let users = RecipientLookup::with_timeout(
            &settings.lookup.user_svc_url,
            tokens.clone(),
            cache.clone(),
            settings.lookup.timeout,
        )?;
        let templates = TemplateLookup::with_timeout(
            &settings.lookup.template_svc_url,
            tokens,
            cache.clone(),
            settings.lookup.timeout,
        )?;
        let ledger = Ledger::connect(
            settings.lookup.cache.redis_url.expose(),
            cache.prefix(),
            settings.ledger_ttl,
        )
        .await
        .context("the delivery ledger (Redis) is required")?;
        let producer_config = || {
            let mut config = settings.kafka.client_config();
            config
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "1")
                .set("message.timeout.ms", "30000");
            config
        };
        let producer: FutureProducer = producer_config()
            .create()
            .context("failed to create the Kafka producer")?;
        // Retry and dead-letter records each in a batch of their own: a delay tier is read
        // again from a record's own offset (seek back until it is due), and a fetch that starts
        // in the middle of a batch made the local broker (tansu) stop answering fetches.
        let retry_producer: FutureProducer = producer_config()
            .set("batch.num.messages", "1")
            .create()
            .context("failed to create the Kafka producer for retry records")?;
        notify_kafka::ensure_topics(&settings.kafka, &settings.kafka.topics().all())
            .await
            .context("failed to create topics")?;

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let health = web::Data::new(HealthState {
            service: settings.service,
            producer: producer.clone(),
            ledger: ledger.clone(),
            registry: registry.clone(),
        });
        let server = notify_kit::http::ops_server(listener, move |cfg| {
            cfg.app_data(health.clone()).service(health_endpoint);
        })?;

        let runtime = Arc::new(Runtime {
            topics: settings.kafka.topics(),
            pipeline: Pipeline {
                channel: settings.channel,
                provider,
                users,
                templates,
                ledger,
                devices,
            },
            status: StatusEncoder::new(registry.clone()),
            registry,
            producer,
            retry_producer,
            settings,
        });
        Ok(Self { port, server, runtime })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Consumes until `stop`, then finishes the record in hand, commits, leaves the groups.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let result = self.runtime.clone().run(stop).await;
        let _ = self.runtime.producer.flush(Duration::from_secs(5));
        let _ = self.runtime.retry_producer.flush(Duration::from_secs(5));
        handle.stop(true).await;
        let _ = server.await;
        tracing::info!(service = self.runtime.settings.service, "worker stopped");
        result
    }
}

#[get("/health")]
async fn health_endpoint(state: web::Data<HealthState>) -> HttpResponse {
    let timeout = Duration::from_secs(3);
    let producer = state.producer.clone();
    let kafka = check("kafka", true, timeout, async move {
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    });
    let ledger = check("redis", true, timeout, state.ledger.ping());
    let registry = check("schema_registry", false, timeout, state.registry.ping());
    let (kafka, ledger, registry) = tokio::join!(kafka, ledger, registry);
    HealthReport::new(state.service, env!("CARGO_PKG_VERSION"), vec![kafka, ledger, registry]).into_response()
}
