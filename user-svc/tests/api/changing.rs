//! Changing users: patches, passwords, push tokens, preferences, deletion.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{assert_error_envelope, detail_fields, device_of, reader, spawn_app, writer};

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
async fn push_tokens_are_added_moved_between_users_and_removed() {
    let app = spawn_app().await;
    let a = app.create_user("pa@example.com").await;
    let b = app.create_user("pb@example.com").await;
    let (status, v) = app
        .post(
            &format!("/api/v1/users/{a}/push-tokens"),
            Some(&writer()),
            &json!({"token": "ios-device-1", "platform": "ios"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let tokens: Vec<(String, String)> = v["data"]["push_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["token"].as_str().unwrap().into(),
                t["platform"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        tokens,
        [
            (device_of("pa@example.com"), "android".to_string()),
            ("ios-device-1".to_string(), "ios".to_string())
        ]
    );

    // The device now belongs to b: it leaves a.
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{b}/push-tokens"),
            Some(&writer()),
            &json!({"token": "ios-device-1", "platform": "ios"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, user_a) = app.get(&format!("/api/v1/users/{a}"), Some(&reader())).await;
    assert_eq!(user_a["data"]["push_tokens"].as_array().unwrap().len(), 1);

    let (status, v) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{b}/push-tokens/ios-device-1"),
            Some(&writer()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["push_tokens"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{b}/push-tokens/ios-device-1"),
            Some(&writer()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, v) = app
        .post(
            &format!("/api/v1/users/{a}/push-tokens"),
            Some(&writer()),
            &json!({"token": "x", "platform": "blackberry", "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = detail_fields(&v);
    fields.sort();
    assert_eq!(fields, ["extra", "platform"]);
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
