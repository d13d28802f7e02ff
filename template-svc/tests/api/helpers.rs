//! template-svc under test, and what the tests send it.

use std::{ops::Deref, time::Duration};

use reqwest::StatusCode;
use serde_json::{json, Value};
use template_svc::{settings::Settings, startup::Application, SCOPE_TEMPLATES_READ, SCOPE_TEMPLATES_WRITE};
use test_support::service_token;

pub use test_support::app::assert_error_envelope;

/// A template-svc running in this test, with its own database and cache prefix.
pub struct TestApp(test_support::TestApp);

impl Deref for TestApp {
    type Target = test_support::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Starts a template-svc with the test settings.
pub async fn spawn_app() -> TestApp {
    TestApp(
        test_support::spawn_app::<Application>(&template_svc::db::MIGRATOR, |db| Settings {
            host: "127.0.0.1".into(),
            port: 0,
            database_url: notify_kit::settings::SecretUrl::new(db.url.clone()),
            database_max_connections: 4,
            run_migrations: true,
            max_body_bytes: 64 * 1024,
            http_workers: 1,
            auth: test_support::auth_settings(),
            cache: notify_lookup::CacheSettings {
                redis_url: notify_kit::settings::SecretUrl::new(test_support::redis_url()),
                prefix: format!("{}:", test_support::unique("t")),
                ttl: Duration::from_secs(30),
                op_timeout: Duration::from_millis(500),
            },
        })
        .await,
    )
}

/// A service token that may create and change templates.
pub fn writer() -> String {
    service_token("marketing-console", &[SCOPE_TEMPLATES_WRITE])
}

/// A service token that may read templates.
pub fn reader() -> String {
    service_token("email-worker", &[SCOPE_TEMPLATES_READ])
}

/// An email template in English and Portuguese.
pub fn welcome() -> Value {
    json!({
        "code": "welcome_email",
        "channel": "email",
        "default_language": "en",
        "name": "Welcome",
        "description": "Sent after sign-up",
        "content": {
            "en": {
                "subject": "Welcome, {{ name }}",
                "text_body": "Hello {{ name }}, confirm at {{ link }}",
                "html_body": "<p>Hello <b>{{ name }}</b>, <a href=\"{{ link }}\">confirm</a></p>"
            },
            "pt": {
                "subject": "Bem-vindo, {{ name }}",
                "text_body": "Olá {{ name }}: {{ link }}",
                "html_body": "<p>Olá {{ name }}</p>"
            }
        }
    })
}

impl TestApp {
    /// Creates a template as a writer; the answer.
    pub async fn create(&self, body: &Value) -> Value {
        let (status, v) = self.post("/api/v1/templates/", Some(&writer()), body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }
}

/// The `field`s of a validation failure, sorted.
pub fn detail_fields(v: &Value) -> Vec<String> {
    let mut fields = test_support::app::detail_fields(v);
    fields.sort();
    fields
}
