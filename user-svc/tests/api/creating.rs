//! `POST /api/v1/users/`: creating users, every invalid field named.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use test_support::user_token;

use crate::helpers::{assert_error_envelope, detail_fields, reader, spawn_app, spawn_app_with, spec_body, writer};

#[tokio::test]
async fn the_spec_body_creates_a_user_and_stores_only_an_argon2id_hash() {
    let app = spawn_app().await;
    let (status, v) = app
        .post("/api/v1/users/", Some(&writer()), &spec_body("john@example.com"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let data = &v["data"];
    assert_eq!(data["name"], "John Doe");
    assert_eq!(data["email"], "john@example.com");
    assert_eq!(data["language"], "en");
    assert_eq!(data["preferences"], json!({"email": true, "push": false}));
    assert_eq!(data["push_tokens"][0]["token"], "fcm-token-abc");
    assert_eq!(data["push_tokens"][0]["platform"], "android");
    assert!(data.get("password").is_none() && data.get("password_hash").is_none());

    let hash: String = sqlx::query("SELECT password_hash FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    app.create_user("ann@example.com").await;
    let (status, v) = app
        .post("/api/v1/users/", Some(&writer()), &spec_body("ANN@Example.com"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_envelope(&v, "conflict");
    let n: i64 = sqlx::query("SELECT count(*) FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn_app().await;
    let cases: [(&str, Value, &str); 10] = [
        ("name", json!(""), "name"),
        ("email", json!("not-an-email"), "email"),
        ("password", json!("short"), "password"),
        ("push_token", json!("has space"), "push_token"),
        (
            "push_token",
            json!({"token": "t1", "platform": "nokia"}),
            "push_token.platform",
        ),
        ("preferences", json!({"email": true}), "preferences.push"),
        (
            "preferences",
            json!({"email": "yes", "push": true}),
            "preferences.email",
        ),
        ("preferences", json!([true]), "preferences"),
        ("language", json!("english"), "language"),
        ("name", json!(42), "name"),
    ];
    for (field, bad, expected) in cases {
        let mut body = spec_body("x@example.com");
        body[field] = bad.clone();
        let (status, v) = app.post("/api/v1/users/", Some(&writer()), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={bad}: {v}");
        assert_error_envelope(&v, "validation_failed");
        assert_eq!(detail_fields(&v), [expected], "{field}={bad}");
    }
}

#[tokio::test]
async fn camel_case_unknown_and_missing_fields_are_all_reported() {
    let app = spawn_app().await;
    let (status, v) = app
        .post(
            "/api/v1/users/",
            Some(&writer()),
            &json!({"name": "A", "email": "a@example.com", "pushToken": "t", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = detail_fields(&v);
    fields.sort();
    assert_eq!(fields, ["password", "preferences", "pushToken", "role"]);
    let hint = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "pushToken")
        .unwrap();
    assert!(hint["reason"].as_str().unwrap().contains("push_token"));
}

#[tokio::test]
async fn creating_needs_a_service_token_with_users_write() {
    let app = spawn_app().await;
    let body = spec_body("b@example.com");
    let (status, v) = app.post("/api/v1/users/", None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_envelope(&v, "unauthorized");
    let (status, _) = app.post("/api/v1/users/", Some(&reader()), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let someone = user_token(&uuid::Uuid::new_v4().to_string());
    let (status, _) = app.post("/api/v1/users/", Some(&someone), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn open_registration_lets_anyone_sign_up() {
    let app = spawn_app_with(|s| s.open_registration = true).await;
    let (status, v) = app.post("/api/v1/users/", None, &spec_body("open@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}
