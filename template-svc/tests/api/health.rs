//! Health, the OpenAPI document and routing.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

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
