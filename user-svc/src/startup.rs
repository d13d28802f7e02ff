//! Building and running user-svc: `Application::build` binds (port 0 in tests) and
//! `run_until_stopped` serves until SIGTERM.

use std::net::TcpListener;

use actix_web::{
    dev::{Server, ServerHandle},
    middleware, web, App, HttpServer,
};
use anyhow::Context;
use notify_kit::{
    auth::{JwtIssuer, JwtVerifier},
    http::HttpApplication,
};
use notify_lookup::Cache;

use crate::{
    db,
    password::Passwords,
    routes::{self, AppState},
    settings::Settings,
    unsubscribe::UnsubscribeLinks,
};

/// A bound, not yet running, user-svc.
pub struct Application {
    port: u16,
    server: Server,
}

impl HttpApplication for Application {
    type Settings = Settings;

    /// Creates and migrates the database if asked, checks the keys and binds the listener.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.expose();
        if settings.run_migrations {
            db::create_if_missing(url)
                .await
                .with_context(|| format!("database {}", settings.database_url))?;
        }
        let pool = db::connect(url, settings.database_max_connections)
            .await
            .with_context(|| format!("database {}", settings.database_url))?;
        if settings.run_migrations {
            db::migrate(&pool).await?;
        }
        notify_kit::metrics::report_db_pool({
            let pool = pool.clone();
            move || (!pool.is_closed()).then(|| (pool.size(), pool.num_idle()))
        });
        let verifier = JwtVerifier::new(&settings.auth).context("invalid JWT key material")?;
        let issuer = JwtIssuer::new(&settings.auth)
            .context("user-svc signs login tokens: set APP_JWT_HS256_SECRET or APP_JWT_RS256_PRIVATE_KEY(_FILE)")?;
        let passwords = Passwords::new(settings.password_hashing)?;
        let cache = Cache::new(&settings.cache).context("invalid APP_REDIS_URL")?;
        let links = UnsubscribeLinks::new(&settings.unsubscribe).context("invalid unsubscribe link settings")?;
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let state = AppState {
            pool,
            passwords,
            issuer,
            user_token_ttl: settings.user_token_ttl,
            open_registration: settings.open_registration,
            cache,
            device_defaults: settings.device_defaults,
            links,
            login_guard: crate::login_guard::LoginGuard::new(settings.login.clone())
                .context("invalid APP_REDIS_URL")?,
        };
        notify_kit::metrics::install();
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
        Ok(Self { port, server })
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (actix handles the signals and drains in-flight requests).
    async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("HTTP server failed")
    }
}
