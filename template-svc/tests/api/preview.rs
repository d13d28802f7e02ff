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
