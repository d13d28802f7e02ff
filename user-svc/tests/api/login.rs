//! `POST /api/v1/auth/login` and the tokens it issues; passwords never shown or logged.

use std::time::Duration;

use notify_kit::auth::{JwtVerifier, TokenUse, SCOPE_SEND};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use user_svc::SCOPE_USERS_READ;

use crate::helpers::{detail_fields, logs_text, reader, spawn_app, spawn_app_with, spec_body, writer};

#[tokio::test]
async fn login_issues_a_short_lived_self_token_that_cannot_send_notifications() {
    let app = spawn_app_with(|s| s.user_token_ttl = Duration::from_secs(600)).await;
    let id = app.create_user("carol@example.com").await;
    let (status, v) = app.login("Carol@EXAMPLE.com", "correct horse battery staple").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["token_type"], "Bearer");
    assert_eq!(v["data"]["expires_in"], 600);
    assert_eq!(v["data"]["user_id"], id);
    let token = v["data"]["access_token"].as_str().unwrap();

    let caller = JwtVerifier::new(&test_support::auth_settings())
        .unwrap()
        .verify(token)
        .unwrap();
    assert_eq!(caller.subject, id);
    assert_eq!(caller.token_use, TokenUse::User);
    assert!(caller.has_scope("users:self"));
    assert!(!caller.has_scope(SCOPE_SEND));
    assert!(!caller.has_scope(SCOPE_USERS_READ));

    let claims: Value = serde_json::from_slice(&base64_decode(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    assert_eq!(claims["scope"], "users:self");

    let (status, me) = app.get(&format!("/api/v1/users/{id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["email"], "carol@example.com");
}

fn base64_decode(s: &str) -> Vec<u8> {
    // URL-safe, unpadded (JWT segments).
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_are_refused_alike() {
    let app = spawn_app().await;
    app.create_user("dave@example.com").await;
    let (s1, wrong) = app.login("dave@example.com", "not the password").await;
    let (s2, unknown) = app.login("nobody@example.com", "correct horse battery staple").await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["message"], unknown["message"]);
    let (status, v) = app
        .post("/api/v1/auth/login", None, &json!({"email": "dave@example.com"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["password"]);
}

#[tokio::test]
async fn the_password_never_appears_in_a_response_or_a_log_line() {
    let app = spawn_app().await;
    let password = format!("pw-{}-secret", test_support::unique("p"));
    let new_password = format!("pw-{}-new", test_support::unique("p"));
    let mut body = spec_body("erin@example.com");
    body["password"] = json!(password);
    let mut responses = Vec::new();

    let (status, created) = app.post("/api/v1/users/", Some(&writer()), &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["data"]["id"].as_str().unwrap().to_string();
    responses.push(created);
    // A body that fails validation elsewhere still carries the password.
    let mut invalid = body.clone();
    invalid["email"] = json!("broken");
    responses.push(app.post("/api/v1/users/", Some(&writer()), &invalid).await.1);
    responses.push(app.post("/api/v1/users/", Some(&writer()), &body).await.1); // 409
    let (_, login) = app.login("erin@example.com", &password).await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    responses.push(login);
    responses.push(app.login("erin@example.com", &new_password).await.1); // 401
    responses.push(
        app.call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(&json!({"password": new_password, "current_password": password})),
        )
        .await
        .1,
    );
    responses.push(app.get(&format!("/api/v1/users/{id}"), Some(&token)).await.1);
    responses.push(app.get("/api/v1/users/", Some(&reader())).await.1);

    for r in &responses {
        let text = r.to_string();
        assert!(!text.contains(&password), "response leaks the password: {text}");
        assert!(!text.contains(&new_password), "response leaks the password: {text}");
        assert!(!text.contains("$argon2"), "response leaks the hash: {text}");
    }
    let logs = logs_text();
    assert!(
        logs.contains(&id),
        "the capture works: the creation was logged with the user id"
    );
    assert!(!logs.contains(&password), "a log line holds the password");
    assert!(!logs.contains(&new_password), "a log line holds the new password");
    assert!(!logs.contains("$argon2"), "a log line holds a hash");
}
