//! API tests: the real template-svc on a random port against a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use template_svc::{settings::Settings, startup::Application, SCOPE_TEMPLATES_READ, SCOPE_TEMPLATES_WRITE};
use test_support::{service_token, user_token, TestDb};

struct TestApp {
    base: String,
    db: TestDb,
    http: reqwest::Client,
}

async fn spawn_app() -> TestApp {
    notify_kit::telemetry::init_test_telemetry();
    let db = TestDb::with_migrator(&template_svc::db::MIGRATOR).await;
    let settings = Settings {
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
    };
    let app = Application::build(settings).await.expect("template-svc builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        db,
        http: reqwest::Client::new(),
    }
}

fn writer() -> String {
    service_token("marketing-console", &[SCOPE_TEMPLATES_WRITE])
}

fn reader() -> String {
    service_token("email-worker", &[SCOPE_TEMPLATES_READ])
}

fn welcome() -> Value {
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
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, json)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn create(&self, body: &Value) -> Value {
        let (status, v) = self.post("/api/v1/templates/", Some(&writer()), body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }
}

fn detail_fields(v: &Value) -> Vec<String> {
    let mut f: Vec<String> = v["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {v}"))
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect();
    f.sort();
    f
}

fn assert_error_envelope(v: &Value, code: &str) {
    assert_eq!(v["success"], false, "{v}");
    assert!(v["data"].is_null(), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
}

// ---------------------------------------------------------------- creating

#[tokio::test]
async fn creating_a_template_publishes_version_1_in_the_default_language() {
    let app = spawn_app().await;
    let v = app.create(&welcome()).await;
    let d = &v["data"];
    assert_eq!(d["code"], "welcome_email");
    assert_eq!(d["channel"], "email");
    assert_eq!(d["version"], 1);
    assert_eq!(d["active_version"], 1);
    assert_eq!(d["language"], "en");
    assert_eq!(d["available_languages"], json!(["en", "pt"]));
    assert_eq!(d["required_variables"], json!(["link", "name"]));
    assert_eq!(d["content"]["subject"], "Welcome, {{ name }}");
    assert_eq!(d["version_created_by"], "marketing-console");
}

#[tokio::test]
async fn a_duplicate_code_is_a_conflict() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let (status, v) = app.post("/api/v1/templates/", Some(&writer()), &welcome()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_envelope(&v, "conflict");
}

#[tokio::test]
async fn each_invalid_field_is_named_with_its_path() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("code", json!("Welcome Email"), vec!["code"]),
        ("channel", json!("sms"), vec!["channel"]),
        ("default_language", json!("english"), vec!["default_language"]),
        ("default_language", json!("fr"), vec!["content"]),
        ("name", json!(""), vec!["name"]),
        ("description", json!(7), vec!["description"]),
        ("content", json!({}), vec!["content"]),
        (
            "content",
            json!({"en": {"subject": "s", "text_body": "t"}}),
            vec!["content.en.html_body"],
        ),
        (
            "content",
            json!({"en": {"subject": "s", "text_body": "{{ x", "html_body": "h"}}),
            vec!["content.en.text_body"],
        ),
        (
            "content",
            json!({"en": {"subject": "s", "text_body": "t", "html_body": "h", "textBody": "t"}}),
            vec!["content.en.textBody"],
        ),
        (
            "content",
            json!({"en": {"subject": "s", "text_body": "t", "html_body": "h"}, "xx-YYY": {}}),
            vec!["content.xx-YYY"],
        ),
        ("templateCode", json!("x"), vec!["templateCode"]),
    ];
    for (field, bad, expected) in cases {
        let mut body = welcome();
        body[field] = bad.clone();
        let (status, v) = app.post("/api/v1/templates/", Some(&writer()), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={bad}: {v}");
        assert_error_envelope(&v, "validation_failed");
        assert_eq!(detail_fields(&v), expected, "{field}={bad}");
    }
    let (_, list) = app.get("/api/v1/templates/", Some(&reader())).await;
    assert_eq!(list["meta"]["total"], 0);
}

// ---------------------------------------------------------------- versions

#[tokio::test]
async fn a_new_version_becomes_active_and_old_versions_stay_readable_and_unchanged() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let (status, v) = app
        .post(
            "/api/v1/templates/welcome_email/versions",
            Some(&writer()),
            &json!({"content": {"en": {
                "subject": "Hi {{ first_name }}!",
                "text_body": "v2 {{ first_name }}",
                "html_body": "<p>v2</p>"
            }}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["version"], 2);
    assert_eq!(v["data"]["active_version"], 2);

    let (_, active) = app.get("/api/v1/templates/welcome_email", Some(&reader())).await;
    assert_eq!(active["data"]["version"], 2);
    assert_eq!(active["data"]["content"]["subject"], "Hi {{ first_name }}!");
    assert_eq!(active["data"]["required_variables"], json!(["first_name"]));
    assert_eq!(active["data"]["available_languages"], json!(["en"]));

    let (status, old) = app
        .get("/api/v1/templates/welcome_email?version=1&lang=pt", Some(&reader()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(old["data"]["version"], 1);
    assert_eq!(old["data"]["active_version"], 2);
    assert_eq!(old["data"]["language"], "pt");
    assert_eq!(old["data"]["content"]["subject"], "Bem-vindo, {{ name }}");

    // The database itself refuses to change a published version.
    let changed =
        sqlx::query("UPDATE template_contents SET content = '{}'::jsonb WHERE code = 'welcome_email' AND version = 1")
            .execute(&app.db.pool)
            .await;
    assert!(changed.unwrap_err().to_string().contains("immutable"));

    let (status, _) = app
        .get("/api/v1/templates/welcome_email?version=3", Some(&reader()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_new_version_must_keep_the_default_language_and_the_channel_fields() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let path = "/api/v1/templates/welcome_email/versions";
    let (status, v) = app
        .post(
            path,
            Some(&writer()),
            &json!({"content": {"fr": {"subject": "s", "text_body": "t", "html_body": "h"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["content"]);
    let (status, v) = app
        .post(
            path,
            Some(&writer()),
            &json!({"content": {"en": {"title": "push title", "body": "b"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        detail_fields(&v),
        [
            "content.en.body",
            "content.en.html_body",
            "content.en.subject",
            "content.en.text_body",
            "content.en.title"
        ]
    );
    let (status, _) = app
        .post(
            "/api/v1/templates/no_such/versions",
            Some(&writer()),
            &json!({"content": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, current) = app.get("/api/v1/templates/welcome_email", Some(&reader())).await;
    assert_eq!(current["data"]["active_version"], 1);
}

// ---------------------------------------------------------------- languages

#[tokio::test]
async fn a_language_falls_back_to_its_parent_then_to_the_default() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let lang = |l: &str| format!("/api/v1/templates/welcome_email?lang={l}");
    let (_, v) = app.get(&lang("pt-BR"), Some(&reader())).await;
    assert_eq!(v["data"]["language"], "pt");
    assert_eq!(v["data"]["requested_language"], "pt-BR");
    assert_eq!(v["data"]["fallback"], true);
    let (_, v) = app.get(&lang("de"), Some(&reader())).await;
    assert_eq!(v["data"]["language"], "en");
    assert_eq!(v["data"]["fallback"], true);
    let (_, v) = app.get(&lang("PT"), Some(&reader())).await;
    assert_eq!(v["data"]["language"], "pt");
    assert_eq!(v["data"]["fallback"], false);
    let (status, v) = app.get(&lang("not_a_language"), Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["lang"]);
    let (status, v) = app
        .get(
            "/api/v1/templates/welcome_email?version=zero&language=en",
            Some(&reader()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["language"]);
}

// ---------------------------------------------------------------- preview

#[tokio::test]
async fn a_preview_renders_with_html_escaping_in_the_html_body_only() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let (status, v) = app
        .post(
            "/api/v1/templates/welcome_email/render",
            Some(&reader()),
            &json!({"language": "en", "variables": {"name": "<Ann & Bob>", "link": "https://x.test/?a=1&b=2"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = &v["data"]["rendered"];
    assert_eq!(v["data"]["version"], 1);
    assert_eq!(v["data"]["language"], "en");
    assert_eq!(r["subject"], "Welcome, <Ann & Bob>");
    assert_eq!(r["text_body"], "Hello <Ann & Bob>, confirm at https://x.test/?a=1&b=2");
    assert_eq!(
        r["html_body"],
        "<p>Hello <b>&lt;Ann &amp; Bob&gt;</b>, <a href=\"https:&#x2f;&#x2f;x.test&#x2f;?a=1&amp;b=2\">confirm</a></p>"
    );
}

#[tokio::test]
async fn a_preview_missing_a_variable_is_a_422_naming_it() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let (status, v) = app
        .post(
            "/api/v1/templates/welcome_email/render",
            Some(&reader()),
            &json!({"language": "pt-BR", "variables": {"name": "Ana"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_envelope(&v, "validation_failed");
    assert_eq!(detail_fields(&v), ["variables.link"]);
    assert!(v["message"].as_str().unwrap().contains("language pt"), "{v}");
}

#[tokio::test]
async fn a_preview_can_render_an_old_version() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    app.post(
        "/api/v1/templates/welcome_email/versions",
        Some(&writer()),
        &json!({"content": {"en": {"subject": "v2", "text_body": "v2", "html_body": "v2"}}}),
    )
    .await;
    let (_, v) = app
        .post(
            "/api/v1/templates/welcome_email/render",
            Some(&reader()),
            &json!({"version": 1, "variables": {"name": "Ann", "link": "l"}}),
        )
        .await;
    assert_eq!(v["data"]["version"], 1);
    assert_eq!(v["data"]["rendered"]["subject"], "Welcome, Ann");
    let (_, v) = app
        .post("/api/v1/templates/welcome_email/render", Some(&reader()), &json!({}))
        .await;
    assert_eq!(v["data"]["rendered"]["subject"], "v2");
}

#[tokio::test]
async fn a_push_template_renders_its_urls() {
    let app = spawn_app().await;
    app.create(&json!({
        "code": "order_shipped",
        "channel": "push",
        "default_language": "en",
        "name": "Order shipped",
        "content": {"en": {"title": "Order {{ order_id }} shipped", "body": "On its way", "link_url": "myapp://orders/{{ order_id }}"}}
    }))
    .await;
    let (status, v) = app
        .post(
            "/api/v1/templates/order_shipped/render",
            Some(&reader()),
            &json!({"variables": {"order_id": "A&1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["rendered"],
        json!({"channel": "push", "title": "Order A&1 shipped", "body": "On its way", "link_url": "myapp://orders/A&1"})
    );
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn the_list_is_paginated_with_the_spec_meta_and_filters_by_channel() {
    let app = spawn_app().await;
    for i in 0..3 {
        let mut body = welcome();
        body["code"] = json!(format!("tpl_{i}"));
        app.create(&body).await;
    }
    app.create(&json!({
        "code": "push_one", "channel": "push", "default_language": "en", "name": "P",
        "content": {"en": {"title": "t", "body": "b"}}
    }))
    .await;
    let (status, v) = app.get("/api/v1/templates/?page=2&limit=3", Some(&reader())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["meta"],
        json!({"total": 4, "limit": 3, "page": 2, "total_pages": 2, "has_next": false, "has_previous": true})
    );
    assert_eq!(v["data"][0]["code"], "push_one");
    assert_eq!(v["data"][0]["languages"], json!(["en"]));
    let (_, email) = app
        .get("/api/v1/templates/?channel=email&limit=2", Some(&reader()))
        .await;
    assert_eq!(email["meta"]["total"], 3);
    assert_eq!(email["meta"]["has_next"], true);
    assert_eq!(email["data"][0]["languages"], json!(["en", "pt"]));
    let (status, v) = app.get("/api/v1/templates/?limit=0&channel=sms", Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["channel", "limit"]);
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn reads_need_templates_read_and_writes_need_templates_write() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let (status, v) = app.get("/api/v1/templates/welcome_email", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_envelope(&v, "unauthorized");
    let stranger = service_token("billing", &["notifications:send"]);
    let (status, _) = app.get("/api/v1/templates/welcome_email", Some(&stranger)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let end_user = user_token(&uuid_like());
    let (status, _) = app.get("/api/v1/templates/", Some(&end_user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/api/v1/templates/welcome_email", Some(&writer())).await;
    assert_eq!(status, StatusCode::OK, "write implies read");

    let mut other = welcome();
    other["code"] = json!("other");
    let (status, v) = app.post("/api/v1/templates/", Some(&reader()), &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().contains("templates:write"));
    let (status, _) = app
        .post(
            "/api/v1/templates/welcome_email/versions",
            Some(&reader()),
            &json!({"content": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn uuid_like() -> String {
    "6c1b2a3d-0000-4000-8000-000000000001".into()
}

#[tokio::test]
async fn unknown_and_malformed_codes_are_not_found() {
    let app = spawn_app().await;
    for path in ["/api/v1/templates/nope", "/api/v1/templates/Bad%20Code"] {
        let (status, v) = app.get(path, Some(&reader())).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_error_envelope(&v, "not_found");
    }
    let (status, _) = app
        .post("/api/v1/templates/nope/render", Some(&reader()), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- health, docs

#[tokio::test]
async fn health_and_the_openapi_document_are_served() {
    let app = spawn_app().await;
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["dependencies"][0]["name"], "postgres");
    assert_eq!(v["data"]["dependencies"][1]["name"], "redis");
    assert_eq!(v["data"]["dependencies"][1]["hard"], false);
    let (status, v) = app.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/templates/", "post"),
        ("/api/v1/templates/", "get"),
        ("/api/v1/templates/{code}", "get"),
        ("/api/v1/templates/{code}/versions", "post"),
        ("/api/v1/templates/{code}/render", "post"),
    ] {
        assert!(v["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(v["components"]["securitySchemes"]["bearer"].is_object());
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
}
