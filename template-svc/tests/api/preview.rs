//! `POST /api/v1/templates/{code}/render`: previews.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error_envelope, detail_fields, reader, spawn_app, welcome, writer};

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

/// A template whose text body doubles a string 26 times (64 MiB), written as it would be
/// with minijinja's namespace.
fn doubling() -> serde_json::Value {
    let mut t = welcome();
    t["content"]["en"]["text_body"] = json!(
        "{% set ns = namespace(s='x') %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    );
    t
}

#[tokio::test]
async fn a_template_that_doubles_a_string_26_times_is_refused_at_once_naming_the_field() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    let (status, v) = app.post("/api/v1/templates/", Some(&writer()), &doubling()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(detail_fields(&v), ["content.en.text_body"]);
    assert!(v["message"].as_str().unwrap().contains("grow without bound"), "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn a_stored_doubling_template_previews_as_a_clear_error_and_the_service_stays_up() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    // Stored before the rule existed: written behind the API's back.
    let mut db = app.db.pool.acquire().await.unwrap();
    sqlx::query("ALTER TABLE template_contents DISABLE TRIGGER USER")
        .execute(&mut *db)
        .await
        .unwrap();
    sqlx::query("UPDATE template_contents SET content = jsonb_set(content, '{text_body}', $1) WHERE language = 'en'")
        .bind(&doubling()["content"]["en"]["text_body"])
        .execute(&mut *db)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let (status, v) = app
        .post(
            "/api/v1/templates/welcome_email/render",
            Some(&reader()),
            &json!({"language": "en", "variables": {"name": "Ann", "link": "l"}}),
        )
        .await;

    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_error_envelope(&v, "conflict");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("text_body") && message.contains("grow without bound"),
        "{message}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(app.get("/health", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_preview_over_the_output_limit_is_a_422_that_stops_at_the_limit() {
    let app = spawn_app().await;
    let mut t = welcome();
    t["content"]["en"]["text_body"] = json!("{% for i in range(100000) %}{{ name }}{% endfor %}{{ link }}");
    app.create(&t).await;

    let started = std::time::Instant::now();
    let (status, v) = app
        .post(
            "/api/v1/templates/welcome_email/render",
            Some(&reader()),
            &json!({"language": "en", "variables": {"name": "x".repeat(10_000), "link": "l"}}),
        )
        .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(detail_fields(&v), ["variables"]);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("rendered `text_body` is larger than 1048576 bytes"),
        "{v}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
