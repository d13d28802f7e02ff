//! user-svc under test, its captured logs, and what the tests send it.

use std::{
    io::Write,
    ops::Deref,
    sync::{Mutex, Once, OnceLock},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::{service_token, TestDb};
use user_svc::{
    password::HashingParams, settings::Settings, startup::Application, unsubscribe::UnsubscribeSettings,
    SCOPE_USERS_READ, SCOPE_USERS_WRITE,
};

pub use test_support::app::assert_error_envelope;

// ---------------------------------------------------------------- log capture

/// Every log line of this test binary, at every level, for the "never logged" checks.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured_logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::{fmt, prelude::*, EnvFilter};
        tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(|| CaptureWriter),
            )
            .init();
    });
}

/// Every log line of this test binary so far.
pub fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---------------------------------------------------------------- harness

/// A user-svc running in this test, with its own database and cache prefix.
pub struct TestApp(test_support::TestApp);

impl Deref for TestApp {
    type Target = test_support::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// user-svc's test settings for the database `db`: port 0, cheap password hashing, a
/// cache prefix of its own.
fn settings(db: &TestDb) -> Settings {
    let cache = notify_lookup::CacheSettings {
        redis_url: notify_kit::settings::SecretUrl::new(test_support::redis_url()),
        prefix: format!("{}:", test_support::unique("t")),
        ttl: Duration::from_secs(30),
        op_timeout: Duration::from_millis(500),
    };
    Settings {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: notify_kit::settings::SecretUrl::new(db.url.clone()),
        database_max_connections: 4,
        run_migrations: true,
        max_body_bytes: 16 * 1024,
        http_workers: 1,
        open_registration: false,
        user_token_ttl: Duration::from_secs(900),
        password_hashing: HashingParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        auth: test_support::auth_settings(),
        login: user_svc::login_guard::LoginSettings::new(cache.redis_url.clone(), cache.op_timeout, &cache.prefix),
        cache,
        device_defaults: Default::default(),
        unsubscribe: UnsubscribeSettings {
            secret: secrecy::SecretString::from(UNSUBSCRIBE_SECRET.to_string()),
            ttl: Duration::from_secs(60 * 24 * 3600),
            public_base_url: PUBLIC_BASE_URL.into(),
        },
    }
}

/// The unsubscribe key of the test settings.
pub const UNSUBSCRIBE_SECRET: &str = "unsubscribe-test-secret-unsubscribe-test-secret";
/// The public address the test settings put in unsubscribe links (tests call the app's
/// own address with the link's path and query).
pub const PUBLIC_BASE_URL: &str = "https://notify.example.com";

/// Starts a user-svc with the test settings changed by `configure`; its logs are captured
/// ([`logs_text`]).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    install_log_capture();
    TestApp(test_support::spawn_app_with::<Application>(&user_svc::db::MIGRATOR, settings, configure).await)
}

/// Starts a user-svc with the test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A service token that may create and change users.
pub fn writer() -> String {
    service_token("onboarding", &[SCOPE_USERS_WRITE])
}

/// The push worker's token: devices used and gone.
pub fn push_worker() -> String {
    service_token("push-worker", &[notify_kit::auth::SCOPE_USERS_DEVICES_WRITE])
}

/// A service token that may read users.
pub fn reader() -> String {
    service_token("email-worker", &[SCOPE_USERS_READ])
}

/// The product spec's example user with `email`.
pub fn spec_body(email: &str) -> Value {
    json!({
        "name": "John Doe",
        "email": email,
        "push_token": "fcm-token-abc",
        "preferences": {"email": true, "push": false},
        "password": "correct horse battery staple"
    })
}

impl TestApp {
    /// Creates a user (with a device token of its own) and returns its id.
    pub async fn create_user(&self, email: &str) -> String {
        let mut body = spec_body(email);
        body["push_token"] = json!(device_of(email));
        let (status, v) = self.post("/api/v1/users/", Some(&writer()), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["data"]["id"].as_str().unwrap().to_string()
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }
}

/// The device token [`TestApp::create_user`] registers for `email`.
pub fn device_of(email: &str) -> String {
    format!("fcm-{}", email.replace('@', "-at-"))
}

/// The `field`s of a validation failure, in order.
pub fn detail_fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {v}"))
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}
