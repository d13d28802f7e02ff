//! Who may read and change which user: ownership and scopes.

use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::{service_token, user_token};

use crate::helpers::{reader, spawn_app};

#[tokio::test]
async fn a_user_token_reads_and_changes_only_its_own_record() {
    let app = spawn_app().await;
    let me = app.create_user("me@example.com").await;
    let other = app.create_user("other@example.com").await;
    let token = user_token(&me);
    // test-support's user tokens carry no scope; login tokens carry users:self.
    let (status, _) = app.get(&format!("/api/v1/users/{me}"), Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, login) = app.login("me@example.com", "correct horse battery staple").await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    let (status, _) = app.get(&format!("/api/v1/users/{me}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/users/{other}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{other}"),
            Some(json!({"name": "Mallory"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{other}"), None),
        (
            Method::PUT,
            format!("/api/v1/users/{other}/preferences"),
            Some(json!({"email": false, "push": false})),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{other}/push-tokens"),
            Some(json!({"token": "stolen", "platform": "web"})),
        ),
    ] {
        let (status, v) = app.call(method.clone(), &path, Some(&token), body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    let (status, _) = app.get("/api/v1/users/", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, still) = app.get(&format!("/api/v1/users/{other}"), Some(&reader())).await;
    assert_eq!(still["data"]["name"], "John Doe");
}

#[tokio::test]
async fn a_reading_service_cannot_change_users() {
    let app = spawn_app().await;
    let id = app.create_user("f@example.com").await;
    let (status, _) = app.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&reader()),
            Some(&json!({"name": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().contains("users:write"));
    let nobody = service_token("billing", &["notifications:send"]);
    let (status, _) = app.get(&format!("/api/v1/users/{id}"), Some(&nobody)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
