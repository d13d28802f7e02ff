//! Health, the OpenAPI document and routing.

use reqwest::StatusCode;

use crate::helpers::{reader, spawn_app, welcome, writer};

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
    let metrics = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_route_answers_with_and_without_a_trailing_slash() {
    let app = spawn_app().await;
    let (status, v) = app.post("/api/v1/templates", Some(&writer()), &welcome()).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    for path in ["/api/v1/templates", "/api/v1/templates/"] {
        let (status, v) = app.get(path, Some(&reader())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["meta"]["total"], 1, "{path}");
    }
    for path in ["/api/v1/templates/welcome_email", "/api/v1/templates/welcome_email/"] {
        let (status, v) = app.get(path, Some(&reader())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["data"]["code"], "welcome_email");
    }
}
