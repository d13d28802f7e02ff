//! Scopes: reads need `templates:read`, writes `templates:write`.

use reqwest::StatusCode;
use serde_json::json;
use test_support::{service_token, user_token};

use crate::helpers::{assert_error_envelope, reader, spawn_app, welcome, writer};

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
