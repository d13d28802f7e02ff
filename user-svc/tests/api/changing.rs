//! Changing users: patches, passwords, preferences, deletion (devices: `devices.rs`).

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{assert_error_envelope, detail_fields, reader, spawn_app, writer};

#[tokio::test]
async fn a_patch_changes_only_the_given_fields() {
    let app = spawn_app().await;
    let id = app.create_user("g@example.com").await;
    app.create_user("taken@example.com").await;
    let path = format!("/api/v1/users/{id}");
    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&writer()),
            Some(&json!({"name": "Grace", "language": "pt-br"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["name"], "Grace");
    assert_eq!(v["data"]["language"], "pt-BR");
    assert_eq!(v["data"]["email"], "g@example.com");

    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&writer()),
            Some(&json!({"email": "TAKEN@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, v) = app.call(Method::PATCH, &path, Some(&writer()), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["body"]);
    let (status, v) = app
        .call(Method::PATCH, &path, Some(&writer()), Some(&json!({"userName": "x"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["userName"]);
}

#[tokio::test]
async fn an_end_user_changes_the_password_only_with_the_current_one() {
    let app = spawn_app().await;
    let id = app.create_user("h@example.com").await;
    let (_, login) = app.login("h@example.com", "correct horse battery staple").await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    let path = format!("/api/v1/users/{id}");
    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"password": "a new passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["current_password"]);
    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"password": "a new passphrase", "current_password": "guess"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["current_password"]);
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"password": "a new passphrase", "current_password": "correct horse battery staple"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.login("h@example.com", "correct horse battery staple").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("h@example.com", "a new passphrase").await.0, StatusCode::OK);
}

#[tokio::test]
async fn preferences_are_replaced_as_a_whole() {
    let app = spawn_app().await;
    let id = app.create_user("pref@example.com").await;
    let path = format!("/api/v1/users/{id}/preferences");
    let (status, v) = app
        .call(
            Method::PUT,
            &path,
            Some(&writer()),
            Some(&json!({"email": false, "push": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["preferences"], json!({"email": false, "push": true}));
    let (status, v) = app
        .call(Method::PUT, &path, Some(&writer()), Some(&json!({"email": true})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["push"]);
}

#[tokio::test]
async fn a_deleted_user_is_gone_for_readers_and_login() {
    let app = spawn_app().await;
    let id = app.create_user("del@example.com").await;
    let path = format!("/api/v1/users/{id}");
    let (status, v) = app.call(Method::DELETE, &path, Some(&writer()), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["deleted"], true);
    let (status, v) = app.get(&path, Some(&reader())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    assert_eq!(
        app.login("del@example.com", "correct horse battery staple").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app.call(Method::DELETE, &path, Some(&writer()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let tokens: i64 = sqlx::query("SELECT count(*) FROM push_tokens")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(tokens, 0);
}
