//! `POST /api/v1/webhooks/{sendgrid,mailgun}`: signed provider events become status events in
//! the outbox and suppressions in user-svc (a `wiremock` user-svc here); anything unsigned,
//! tampered, expired or replayed is 401 and changes nothing.

use std::time::Duration;

use chrono::Utc;
use gateway::settings::Settings;
use notify_kit::auth::{JwtVerifier, SCOPE_SUPPRESSIONS_WRITE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use test_support::webhooks::{mailgun_body, mailgun_token, SendGridSigner};
use wiremock::{
    matchers::{body_json, method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

use crate::helpers::{assert_error_envelope, body, sender, spawn_app_with, TestApp};

const MAILGUN_KEY: &str = "mailgun-test-signing-key-0123456789abcdef";

/// A gateway with both webhooks configured, writing suppressions to `user_svc`.
async fn spawn(user_svc: &MockServer, sendgrid: &SendGridSigner) -> TestApp {
    let public = sendgrid.public_key();
    let user_svc = user_svc.uri();
    spawn_app_with(move |s: &mut Settings| {
        s.webhooks.sendgrid =
            Some(gateway::domain::webhooks::sendgrid::SendGridVerifier::from_base64_der(&public).unwrap());
        s.webhooks.mailgun_signing_key = Some(MAILGUN_KEY.into());
        s.webhooks.user_svc_url = user_svc;
        s.webhooks.user_svc_timeout = Duration::from_secs(2);
        s.webhooks.redis.redis_url = notify_kit::settings::SecretUrl::new(test_support::redis_url());
        s.webhooks.redis.prefix = format!("{}:", test_support::unique("wh"));
    })
    .await
}

/// The request carries a service token of the gateway with `suppressions:write`.
fn gateway_token_with_suppressions_write(req: &Request) -> bool {
    let Some(token) = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let verifier = JwtVerifier::new(&test_support::auth_settings()).unwrap();
    verifier
        .verify(token)
        .is_ok_and(|caller| caller.subject == "gateway" && caller.has_scope(SCOPE_SUPPRESSIONS_WRITE))
}

/// A stored email notification's id.
async fn notification(app: &TestApp, request_id: &str) -> String {
    let (status, _, v) = app.post(Some(&sender()), &body(request_id)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    v["data"]["notification_id"].as_str().unwrap().to_string()
}

/// The status events in the outbox, as their payloads.
async fn status_events(app: &TestApp) -> Vec<Value> {
    sqlx::query("SELECT payload FROM outbox WHERE topic = 'notifications.status' ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("payload"))
        .collect()
}

async fn post_sendgrid(app: &TestApp, body: &[u8], headers: &[(&str, String)]) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}/api/v1/webhooks/sendgrid", app.address))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn post_mailgun(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    app.call(reqwest::Method::POST, "/api/v1/webhooks/mailgun", None, Some(body))
        .await
}

fn bounce(id: &str, email: &str) -> Vec<u8> {
    json!([{
        "email": email, "timestamp": 1_762_941_600, "event": "bounce", "type": "bounce",
        "status": "5.0.0", "reason": "550 5.1.1 The email account does not exist",
        "sg_event_id": "ZGVsaXZlcmVk", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001",
        "notification_id": id
    }])
    .to_string()
    .into_bytes()
}

fn complaint(id: &str, email: &str) -> Value {
    json!({
        "event": "complained", "timestamp": 1_762_941_600.25, "id": "-Agny091SquKnsrW2NEKUA",
        "recipient": email, "user-variables": {"notification_id": id}
    })
}

#[tokio::test]
async fn a_signed_sendgrid_bounce_enqueues_bounced_and_suppresses_the_address() {
    let user_svc = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/suppressions/email/ada@example.com"))
        .and(gateway_token_with_suppressions_write)
        .and(body_json(json!({
            "reason": "hard_bounce", "source": "sendgrid",
            "detail": "5.0.0 550 5.1.1 The email account does not exist"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {}, "message": "ok"})))
        .expect(1)
        .mount(&user_svc)
        .await;
    let signer = SendGridSigner::new();
    let app = spawn(&user_svc, &signer).await;
    let id = notification(&app, "sg-bounce").await;

    let body = bounce(&id, "ada@example.com");
    let (status, v) = post_sendgrid(&app, &body, &signer.headers(&body)).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["recorded"], 1, "{v}");
    assert_eq!(v["data"]["suppressed"], 1, "{v}");
    let events = status_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["notification_id"], id.as_str());
    assert_eq!(e["status"], "bounced");
    assert_eq!(e["provider"], "sendgrid");
    assert_eq!(e["source"], "provider-webhook");
    assert_eq!(e["occurred_at"], 1_762_941_600_000_i64);
    assert_eq!(
        e["error"],
        "hard bounce: 5.0.0 550 5.1.1 The email account does not exist"
    );
}

#[tokio::test]
async fn a_signed_mailgun_complaint_records_it_and_suppresses_the_address() {
    let user_svc = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/suppressions/email/grace@example.com"))
        .and(gateway_token_with_suppressions_write)
        .and(body_json(json!({"reason": "complaint", "source": "mailgun"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {}, "message": "ok"})))
        .expect(1)
        .mount(&user_svc)
        .await;
    let app = spawn(&user_svc, &SendGridSigner::new()).await;
    let id = notification(&app, "mg-complaint").await;

    let body = mailgun_body(
        MAILGUN_KEY,
        Utc::now().timestamp(),
        &mailgun_token(),
        complaint(&id, "grace@example.com"),
    );
    let (status, v) = post_mailgun(&app, &body).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["suppressed"], 1, "{v}");
    let events = status_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], "delivered", "a complaint proves delivery");
    assert_eq!(events[0]["provider"], "mailgun");
    assert_eq!(events[0]["source"], "provider-webhook");
    assert_eq!(events[0]["occurred_at"], 1_762_941_600_250_i64);
    assert!(
        events[0]["error"].as_str().unwrap().starts_with("complaint"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_unsigned_or_tampered_sendgrid_request_is_refused_and_changes_nothing() {
    let user_svc = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&user_svc)
        .await;
    let signer = SendGridSigner::new();
    let app = spawn(&user_svc, &signer).await;
    let id = notification(&app, "sg-tampered").await;
    let body = bounce(&id, "ada@example.com");

    let (status, v) = post_sendgrid(&app, &body, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned: {v}");
    assert_error_envelope(&v, "unauthorized");

    // Signed, then changed in transit: another address.
    let headers = signer.headers(&body);
    let tampered = bounce(&id, "eve@example.com");
    let (status, v) = post_sendgrid(&app, &tampered, &headers).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "tampered: {v}");
    assert_error_envelope(&v, "unauthorized");

    // Signed by someone else's key.
    let (status, _) = post_sendgrid(&app, &body, &SendGridSigner::new().headers(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "foreign key");

    assert!(status_events(&app).await.is_empty(), "no status event");
    assert!(app
        .metrics()
        .await
        .contains("webhook_signature_failures_total{provider=\"sendgrid\",reason=\"invalid\"}"));
}

#[tokio::test]
async fn a_mailgun_request_with_a_bad_signature_an_old_timestamp_or_a_used_token_is_refused() {
    let user_svc = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {}, "message": "ok"})))
        .expect(1)
        .mount(&user_svc)
        .await;
    let app = spawn(&user_svc, &SendGridSigner::new()).await;
    let id = notification(&app, "mg-replay").await;
    let now = Utc::now().timestamp();

    let (status, v) = post_mailgun(&app, &json!({"event-data": complaint(&id, "a@example.com")})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned: {v}");
    assert_error_envelope(&v, "unauthorized");
    let forged = mailgun_body("not-the-key", now, &mailgun_token(), complaint(&id, "a@example.com"));
    let (status, _) = post_mailgun(&app, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong key");
    let old = mailgun_body(
        MAILGUN_KEY,
        now - 301,
        &mailgun_token(),
        complaint(&id, "a@example.com"),
    );
    let (status, v) = post_mailgun(&app, &old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "old timestamp: {v}");
    assert!(v["message"].as_str().unwrap().contains("window"), "{v}");
    assert!(status_events(&app).await.is_empty(), "nothing recorded so far");

    let fresh = mailgun_body(MAILGUN_KEY, now, &mailgun_token(), complaint(&id, "a@example.com"));
    let (status, v) = post_mailgun(&app, &fresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = post_mailgun(&app, &fresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the same token again: {v}");
    assert!(v["message"].as_str().unwrap().contains("already used"), "{v}");
    assert_eq!(status_events(&app).await.len(), 1, "only the first was recorded");
}

#[tokio::test]
async fn when_user_svc_cannot_suppress_the_webhook_asks_for_a_retry_and_the_retry_succeeds() {
    let user_svc = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&user_svc)
        .await;
    let app = spawn(&user_svc, &SendGridSigner::new()).await;
    let id = notification(&app, "mg-retry").await;
    let body = mailgun_body(
        MAILGUN_KEY,
        Utc::now().timestamp(),
        &mailgun_token(),
        complaint(&id, "b@example.com"),
    );

    let (status, v) = post_mailgun(&app, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_error_envelope(&v, "unavailable");
    assert!(
        status_events(&app).await.is_empty(),
        "nothing enqueued: the provider retries it all"
    );

    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {}, "message": "ok"})))
        .expect(1)
        .mount(&user_svc)
        .await;
    let (status, v) = post_mailgun(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "the retry (same token) is accepted: {v}");
    assert_eq!(status_events(&app).await.len(), 1);
}

#[tokio::test]
async fn a_batch_skips_unknown_notifications_and_events_it_does_not_act_on() {
    let user_svc = MockServer::start().await;
    let signer = SendGridSigner::new();
    let app = spawn(&user_svc, &signer).await;
    let id = notification(&app, "sg-batch").await;
    let body = json!([
        {"email": "c@example.com", "timestamp": 1_762_941_600, "event": "delivered", "response": "250 OK", "notification_id": id},
        {"email": "c@example.com", "timestamp": 1_762_941_601, "event": "delivered", "notification_id": "0190c5a1-0000-7000-8000-00000000dead"},
        {"email": "c@example.com", "timestamp": 1_762_941_602, "event": "delivered"},
        {"email": "c@example.com", "timestamp": 1_762_941_603, "event": "open", "notification_id": id},
        {"email": "c@example.com", "event": "delivered", "notification_id": id},
        {"email": "c@example.com", "timestamp": 1_762_941_604, "event": "deferred", "response": "421 try later", "notification_id": id}
    ])
    .to_string()
    .into_bytes();

    let (status, v) = post_sendgrid(&app, &body, &signer.headers(&body)).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!({"received": 6, "recorded": 2, "suppressed": 0, "unknown_notification": 2, "ignored": 1, "invalid": 1})
    );
    let events = status_events(&app).await;
    let statuses: Vec<&str> = events.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["delivered", "sent"],
        "the deferral is a `sent` event: history only"
    );
    assert_eq!(events[1]["error"], "soft bounce (the provider retries): 421 try later");
    assert!(
        user_svc.received_requests().await.unwrap().is_empty(),
        "nothing to suppress"
    );
}

#[tokio::test]
async fn a_webhook_without_its_key_is_not_configured() {
    let app = crate::helpers::spawn_app().await;
    let (status, v) = post_sendgrid(&app, b"[]", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_error_envelope(&v, "not_found");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("APP_SENDGRID_WEBHOOK_PUBLIC_KEY"),
        "{v}"
    );
    let (status, v) = post_mailgun(&app, &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("APP_MAILGUN_WEBHOOK_SIGNING_KEY"),
        "{v}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let signer = SendGridSigner::new();
    let public = signer.public_key();
    let app = spawn_app_with(move |s: &mut Settings| {
        s.webhooks.sendgrid =
            Some(gateway::domain::webhooks::sendgrid::SendGridVerifier::from_base64_der(&public).unwrap());
        s.webhooks.max_body_bytes = 1024;
    })
    .await;
    let body = vec![b' '; 2048];
    let (status, v) = post_sendgrid(&app, &body, &signer.headers(&body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_error_envelope(&v, "payload_too_large");
}
