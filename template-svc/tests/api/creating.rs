//! `POST /api/v1/templates/`: creating templates, every invalid field named with its path.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error_envelope, detail_fields, reader, spawn_app, welcome, writer};

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
