//! Test utilities shared by the integration tests of every crate. Tests run against the
//! real PostgreSQL, broker and schema registry (started by `make test`); each test gets its
//! own database and topic prefix so tests run in parallel without seeing each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod kafka;
pub mod openapi;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod servers;
pub mod smtp;
pub mod webhooks;

pub use app::{spawn_app, spawn_app_with, TestApp};

use std::time::{Duration, Instant};

use notify_kit::auth::{AuthSettings, JwtIssuer, TokenUse};
use sqlx::{Connection, PgConnection, PgPool};

/// The HS256 secret every test service uses.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Admin connection URL for creating test databases (`TEST_DATABASE_URL`).
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Broker address (`TEST_KAFKA_BOOTSTRAP`, default `127.0.0.1:9092`).
pub fn kafka_bootstrap() -> String {
    std::env::var("TEST_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Registry address (`TEST_SCHEMA_REGISTRY_URL`, default `http://127.0.0.1:8081`).
pub fn registry_url() -> String {
    std::env::var("TEST_SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into())
}

/// A short unique id (for database names, topic prefixes, request ids).
pub fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A topic prefix of its own for one test, e.g. `t3f9c0a1b2c4d.`.
pub fn topic_prefix() -> String {
    format!("{}.", unique("t"))
}

/// Kafka settings for a test with its own prefix.
pub fn kafka_settings(prefix: &str) -> notify_kafka::KafkaSettings {
    notify_kafka::KafkaSettings {
        bootstrap: kafka_bootstrap(),
        topic_prefix: prefix.to_string(),
        partitions: 3,
        replication: 1,
    }
}

/// A fresh, migrated database.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates `test_<random>` and runs the notification store's migrations in it.
    pub async fn new() -> Self {
        Self::with_migrator(&notify_store::MIGRATOR).await
    }

    /// Creates `test_<random>` and runs `migrator` in it (services with their own database).
    pub async fn with_migrator(migrator: &sqlx::migrate::Migrator) -> Self {
        Self::on(&admin_database_url(), migrator).await
    }

    /// Creates `test_<random>` on the server of `admin` (an admin connection URL, e.g. a
    /// [`postgres::PrivatePostgres`]'s) and runs `migrator` in it.
    pub async fn on(admin: &str, migrator: &sqlx::migrate::Migrator) -> Self {
        let admin = admin.to_string();
        let name = unique("test_");
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (see README)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let pool = notify_store::connect(&url, 10).await.unwrap();
        migrator.run(&pool).await.unwrap();
        Self { name, url, pool }
    }
}

/// Redis URL for tests (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`). Tests keep
/// their keys apart with a prefix of their own ([`unique`]).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// JWT settings every test service shares.
pub fn auth_settings() -> AuthSettings {
    AuthSettings::hs256(JWT_SECRET)
}

/// Issues test tokens.
pub fn issuer() -> JwtIssuer {
    JwtIssuer::new(&auth_settings()).unwrap()
}

/// A service token for `subject` with `scopes`, valid for an hour.
pub fn service_token(subject: &str, scopes: &[&str]) -> String {
    issuer()
        .issue(subject, TokenUse::Service, scopes, Duration::from_secs(3600))
        .unwrap()
}

/// An end-user token (no send scope).
pub fn user_token(user_id: &str) -> String {
    issuer()
        .issue(user_id, TokenUse::User, &[], Duration::from_secs(3600))
        .unwrap()
}

/// Registers the platform's schemas (the deploy step; idempotent).
pub async fn ensure_schemas() {
    ensure_schemas_at(&registry_url()).await;
}

/// Registers the platform's schemas in the registry at `url` (idempotent).
pub async fn ensure_schemas_at(url: &str) {
    let registry = notify_schemas::registry::SchemaRegistry::new(url).unwrap();
    registry
        .register_all(notify_schemas::CONTRACTS, "BACKWARD")
        .await
        .expect("the schema registry must be running on 127.0.0.1:8081 (see README)");
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
