//! Building and running the gateway: `Application::build` binds (port 0 in tests) and
//! `run_until_stopped` serves until SIGTERM.

use std::{net::TcpListener, time::Duration};

use actix_web::{
    dev::{Server, ServerHandle},
    middleware, web, App, HttpServer,
};
use anyhow::Context;
use notify_kit::{auth::JwtVerifier, http::HttpApplication};
use notify_store::outbox::RelayWaker;
use tokio_util::sync::CancellationToken;

use crate::{
    routes::{self, AppState},
    settings::Settings,
};

/// A bound, not yet running, gateway.
pub struct Application {
    port: u16,
    server: Server,
    sweeper: CancellationToken,
}

impl HttpApplication for Application {
    type Settings = Settings;

    /// Connects to PostgreSQL, runs migrations and binds the listener.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        notify_kit::metrics::install();
        let pool = notify_store::connect(settings.database_url.expose(), settings.database_max_connections)
            .await
            .with_context(|| format!("database {}", settings.database_url))?;
        if settings.run_migrations {
            notify_store::migrate(&pool).await?;
        }
        notify_kit::metrics::report_db_pool({
            let pool = pool.clone();
            move || (!pool.is_closed()).then(|| (pool.size(), pool.num_idle()))
        });
        let verifier = JwtVerifier::new(&settings.auth).context("invalid JWT key material")?;
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let references = match &settings.lookup {
            Some(d) => {
                let issuer = notify_kit::auth::JwtIssuer::new(&settings.auth)
                    .context("cannot sign the gateway's service token for user-svc/template-svc")?;
                Some(std::sync::Arc::new(crate::domain::references::References::new(
                    d, issuer, "gateway",
                )?))
            }
            None => None,
        };
        let webhooks = std::sync::Arc::new(routes::webhooks::Webhooks::new(&settings.webhooks, &settings.auth)?);
        let state = AppState {
            pool: pool.clone(),
            idempotency_ttl: settings.idempotency_ttl,
            references,
            // At most one NOTIFY per 2 ms however many notifications are accepted: the relay
            // takes a whole batch per wake anyway.
            relay_waker: RelayWaker::spawn(pool.clone(), Duration::from_millis(2)),
            webhooks,
            limits: settings
                .rate_limits
                .clone()
                .map(crate::rate_limits::ApiLimits::new)
                .transpose()
                .context("invalid APP_REDIS_URL")?,
        };
        let sweeper = CancellationToken::new();
        tokio::spawn(sweep_idempotency_keys(pool, sweeper.clone()));
        let body_limit = settings.max_body_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(notify_kit::correlation::middleware))
                .wrap(middleware::from_fn(notify_kit::http::trailing_slash))
                .app_data(web::Data::new(state.clone()))
                .app_data(web::Data::new(verifier.clone()))
                .configure(|cfg| notify_kit::http::configure(cfg, body_limit))
                .configure(routes::configure)
                .default_service(web::to(notify_kit::http::not_found))
        })
        .workers(settings.http_workers.max(1))
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self { port, server, sweeper })
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (actix handles the signals and drains in-flight requests).
    async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        self.sweeper.cancel();
        result.context("HTTP server failed")
    }
}

/// Deletes expired idempotency records every minute.
async fn sweep_idempotency_keys(pool: sqlx::PgPool, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match notify_store::notifications::delete_expired_idempotency_keys(&pool, 10_000).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired idempotency records removed"),
            Err(e) => tracing::warn!(error = %e, "idempotency sweep failed; will retry"),
        }
    }
}
