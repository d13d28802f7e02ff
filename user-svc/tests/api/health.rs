//! Health, the OpenAPI document, metrics and routing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error_envelope, reader, spawn_app, spawn_app_with, spec_body, writer};

#[tokio::test]
async fn health_reports_postgres_hard_and_redis_soft() {
    let app = spawn_app().await;
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["dependencies"][0]["name"], "postgres");
    assert_eq!(v["data"]["dependencies"][1]["name"], "redis");
    assert_eq!(v["data"]["dependencies"][1]["healthy"], true);

    let no_redis = spawn_app_with(|s| {
        s.cache.redis_url = notify_kit::settings::SecretUrl::new("redis://127.0.0.1:1");
    })
    .await;
    let (status, v) = no_redis.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "Redis is only a cache: {v}");
    assert_eq!(v["data"]["dependencies"][1]["healthy"], false);
    // And writes still work without it.
    no_redis.create_user("noredis@example.com").await;
}

#[tokio::test]
async fn the_openapi_document_and_metrics_are_served() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/users/", "post"),
        ("/api/v1/users/", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}/push-tokens", "get"),
        ("/api/v1/users/{id}/push-tokens", "post"),
        ("/api/v1/users/{id}/push-tokens/{device}", "delete"),
        ("/api/v1/devices", "delete"),
        ("/api/v1/devices/used", "post"),
        ("/api/v1/users/{id}/preferences", "put"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/suppressions/", "get"),
        ("/api/v1/suppressions/{channel}/{address}", "get"),
        ("/api/v1/suppressions/{channel}/{address}", "put"),
        ("/api/v1/suppressions/{channel}/{address}", "delete"),
        ("/api/v1/unsubscribe", "get"),
        ("/api/v1/unsubscribe", "post"),
    ] {
        assert!(v["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(v["components"]["schemas"]["CreateUserBody"]["properties"]["push_token"].is_object());
    let metrics = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_malformed_ids_answer_404_in_the_envelope() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    let (status, v) = app.get("/api/v1/users/not-a-uuid", Some(&reader())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
}

#[tokio::test]
async fn every_route_answers_with_and_without_a_trailing_slash() {
    let app = spawn_app().await;
    let (status, v) = app
        .post("/api/v1/users", Some(&writer()), &spec_body("noslash@example.com"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    // Its own device: a token another user has is not moved at creation.
    let mut second = spec_body("slash@example.com");
    second["push_token"] = json!("fcm-token-slash");
    let (status, v) = app.post("/api/v1/users/", Some(&writer()), &second).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    for path in ["/api/v1/users", "/api/v1/users/"] {
        let (status, v) = app.get(path, Some(&reader())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["meta"]["total"], 2, "{path}");
    }
    for path in [format!("/api/v1/users/{id}"), format!("/api/v1/users/{id}/")] {
        let (status, v) = app.get(&path, Some(&reader())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["data"]["id"], id.as_str());
    }
    let (status, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{id}/preferences/"),
            Some(&writer()),
            Some(&json!({"email": false, "push": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["preferences"]["push"], true);
}
