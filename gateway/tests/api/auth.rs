//! Authentication: who may call the gateway at all.

use std::time::Duration;

use base64::Engine;
use notify_kit::auth::{AuthSettings, JwtIssuer, TokenUse, SCOPE_SEND};
use reqwest::StatusCode;
use test_support::user_token;

use crate::helpers::{assert_error_envelope, body, spawn_app};

#[tokio::test]
async fn a_request_without_a_token_is_unauthorized() {
    let app = spawn_app().await;
    let (status, headers, v) = app.post(None, &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_error_envelope(&v, "unauthorized");
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn an_expired_token_is_unauthorized() {
    let app = spawn_app().await;
    let issuer = test_support::issuer();
    let mut claims = issuer.claims("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(60));
    claims.exp = chrono_now() - 600;
    let token = issuer.sign(&claims).unwrap();
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "token has expired");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_unauthorized() {
    let app = spawn_app().await;
    let issuer = test_support::issuer();
    let mut claims = issuer.claims("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(3600));
    claims.nbf = Some(chrono_now() + 600);
    let (status, _, v) = app.post(Some(&issuer.sign(&claims).unwrap()), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "token is not valid yet (nbf)");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_token_signed_with_the_wrong_key_is_unauthorized() {
    let app = spawn_app().await;
    let other = JwtIssuer::new(&AuthSettings::hs256("not-the-gateway-secret-not-the-gateway")).unwrap();
    let token = other
        .issue("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(60))
        .unwrap();
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "token signature is invalid");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_unauthorized() {
    let app = spawn_app().await;
    let claims = test_support::issuer().claims("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(60));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_envelope(&v, "unauthorized");
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn an_end_user_token_cannot_send() {
    let app = spawn_app().await;
    let token = user_token("6c1b2a3d-0000-4000-8000-000000000001");
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error_envelope(&v, "forbidden");
    assert!(v["message"].as_str().unwrap().contains("notifications:send"));
}
