//! The gateway under test, and what the tests send it.

use std::{ops::Deref, time::Duration};

use gateway::{settings::Settings, startup::Application};
use notify_kit::auth::SCOPE_SEND;
use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;
use test_support::{service_token, TestDb};

pub use test_support::app::assert_error_envelope;

/// A gateway running in this test, with its own database.
pub struct TestApp(test_support::TestApp);

impl Deref for TestApp {
    type Target = test_support::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The gateway's test settings for the database `db`: port 0, no reference checks.
fn settings(db: &TestDb) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: notify_kit::settings::SecretUrl::new(db.url.clone()),
        database_max_connections: 8,
        run_migrations: true,
        idempotency_ttl: Duration::from_secs(3600),
        max_body_bytes: 16 * 1024,
        http_workers: 2,
        auth: test_support::auth_settings(),
        lookup: None,
        webhooks: gateway::settings::WebhookSettings::disabled(),
        rate_limits: None,
    }
}

/// Starts a gateway with the test settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp(test_support::spawn_app_with::<Application>(&notify_store::MIGRATOR, settings, configure).await)
}

/// Starts a gateway with the test settings (no reference checks).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A token of a service that may send.
pub fn sender() -> String {
    service_token("billing", &[SCOPE_SEND])
}

/// The product spec's example request with `request_id`.
pub fn body(request_id: &str) -> Value {
    json!({
        "notification_type": "email",
        "user_id": "6c1b2a3d-0000-4000-8000-000000000001",
        "template_code": "welcome_email",
        "variables": {"name": "John Doe", "link": "https://example.com"},
        "request_id": request_id,
        "priority": 1,
        "metadata": {}
    })
}

impl TestApp {
    /// `POST /api/v1/notifications/` with any body and content type.
    pub async fn post_raw(
        &self,
        token: Option<&str>,
        body: reqwest::Body,
        content_type: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .client
            .post(format!("{}/api/v1/notifications/", self.address))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, headers, json)
    }

    /// `POST /api/v1/notifications/` with a JSON body.
    pub async fn post(&self, token: Option<&str>, body: &Value) -> (StatusCode, HeaderMap, Value) {
        self.post_raw(token, body.to_string().into(), "application/json").await
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query(&format!("SELECT count(*) AS n FROM {table}"))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .get("n")
    }
}
