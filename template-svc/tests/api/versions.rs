//! `POST /api/v1/templates/{code}/versions`: publishing versions.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{detail_fields, reader, spawn_app, welcome, writer};

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
