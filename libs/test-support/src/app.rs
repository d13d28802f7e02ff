//! One way to start any of the HTTP services (gateway, user-svc, template-svc) in-process
//! for a test: on port 0, against a fresh database of its own, with a client to call it.

use notify_kit::http::HttpApplication;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::TestDb;

/// A service running in this test process.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    pub port: u16,
    /// The service's own fresh database (`db.pool` to look inside).
    pub db: TestDb,
    pub client: reqwest::Client,
    /// Stops the server (to test what its clients do without it).
    pub handle: actix_web::dev::ServerHandle,
}

/// Creates a fresh database migrated with `migrator`, builds the service `A` from the settings
/// `settings` makes for that database (port 0: the system picks one), and runs it on this
/// test's runtime. Telemetry goes to the test writer unless the test installed its own.
pub async fn spawn_app<A: HttpApplication>(
    migrator: &sqlx::migrate::Migrator,
    settings: impl FnOnce(&TestDb) -> A::Settings,
) -> TestApp {
    notify_kit::telemetry::init_test_telemetry();
    let db = TestDb::with_migrator(migrator).await;
    let app = A::build(settings(&db)).await.expect("the service builds");
    let port = app.port();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db,
        client: reqwest::Client::new(),
        handle,
    }
}

/// [`spawn_app`] with the settings `settings` makes, changed by `configure` first: a test's
/// own variation on its crate's test settings.
pub async fn spawn_app_with<A: HttpApplication>(
    migrator: &sqlx::migrate::Migrator,
    settings: impl FnOnce(&TestDb) -> A::Settings,
    configure: impl FnOnce(&mut A::Settings),
) -> TestApp {
    spawn_app::<A>(migrator, |db| {
        let mut settings = settings(db);
        configure(&mut settings);
        settings
    })
    .await
}

impl TestApp {
    /// `method path` with an optional bearer token and JSON body: the status and the JSON
    /// answer (every answer of the services is JSON; anything else fails the test).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("the service answers");
        let status = resp.status();
        let text = resp.text().await.expect("the answer has a body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, json)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("the service answers")
            .text()
            .await
            .expect("the metrics are text")
    }
}

/// Asserts the failure envelope: `success` false, no `data`, a message, `error.code` = `code`.
pub fn assert_error_envelope(v: &Value, code: &str) {
    assert_eq!(v["success"], false, "{v}");
    assert!(v["data"].is_null(), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v.get("meta").is_some(), "{v}");
}

/// The `field`s of a validation failure's `error.details`, in order.
pub fn detail_fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
