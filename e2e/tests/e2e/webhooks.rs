//! Provider webhooks through the real pipeline: a signed SendGrid event posted to the gateway
//! becomes a status event in the outbox, is relayed to Kafka and applied by the status
//! projector; a bounce also suppresses the address in the real user-svc.

use std::time::Duration;

use notify_kit::auth::SCOPE_SUPPRESSIONS_READ;
use serde_json::{json, Value};
use test_support::webhooks::SendGridSigner;
use uuid::Uuid;

use crate::harness::{Stack, Tiers};

const T: Duration = Duration::from_secs(60);

/// A stack whose gateway verifies SendGrid's events with `signer`'s public key, one email
/// worker (SMTP), the welcome template and a user at `email`.
async fn stack(signer: &SendGridSigner, email: &str) -> (Stack, Uuid) {
    let mut s = Stack::start_with_env(
        Tiers::default(),
        &[("APP_SENDGRID_WEBHOOK_PUBLIC_KEY", signer.public_key())],
    )
    .await;
    s.welcome_template().await;
    let user = s.create_user(email, None, json!({"email": true, "push": false})).await;
    s.add_email_worker().await;
    (s, user)
}

/// Sends one notification to `user` and waits until it is `sent`.
async fn sent_notification(s: &Stack, user: Uuid, request_id: &str) -> Uuid {
    let id = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "Ada", "link": "https://x.test"}),
            request_id,
            1,
        )
        .await;
    s.wait_status(id, "sent", T).await;
    id
}

/// Posts `events` to the gateway's SendGrid webhook, signed by `signer` (or unsigned).
async fn post_events(s: &Stack, signer: Option<&SendGridSigner>, events: &Value) -> (u16, Value) {
    let body = events.to_string().into_bytes();
    let mut req = s
        .http
        .post(format!("{}/api/v1/webhooks/sendgrid", s.gateway.url()))
        .header("content-type", "application/json")
        .body(body.clone());
    if let Some(signer) = signer {
        for (name, value) in signer.headers(&body) {
            req = req.header(name, value);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn event(id: Uuid, email: &str, name: &str, extra: Value) -> Value {
    let mut e = json!({
        "email": email, "timestamp": chrono::Utc::now().timestamp(), "event": name,
        "sg_event_id": test_support::unique("ev"), "notification_id": id.to_string()
    });
    if let (Some(e), Value::Object(more)) = (e.as_object_mut(), extra) {
        e.extend(more);
    }
    e
}

/// The history entry of `status` written by the webhook.
fn webhook_entry<'a>(n: &'a Value, status: &str) -> Option<&'a Value> {
    n["history"]
        .as_array()?
        .iter()
        .find(|h| h["status"] == status && h["provider"] == "sendgrid")
}

#[tokio::test]
async fn a_signed_sendgrid_delivery_event_marks_the_notification_delivered_and_an_unsigned_bounce_changes_nothing() {
    let signer = SendGridSigner::new();
    let (s, user) = stack(&signer, "ada@example.com").await;
    let id = sent_notification(&s, user, "wh-delivered").await;

    let bounce = json!([event(
        id,
        "ada@example.com",
        "bounce",
        json!({"type": "bounce", "reason": "550 no such user"})
    )]);
    let (status, v) = post_events(&s, None, &bounce).await;
    assert_eq!(status, 401, "unsigned: {v}");
    let (status, v) = post_events(&s, Some(&SendGridSigner::new()), &bounce).await;
    assert_eq!(status, 401, "signed with another key: {v}");

    let delivered = json!([event(id, "ada@example.com", "delivered", json!({"response": "250 OK"}))]);
    let (status, v) = post_events(&s, Some(&signer), &delivered).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["recorded"], 1, "{v}");

    // Had the refused bounce been applied, `bounced` (final) would never become `delivered`.
    let n = s.wait_status(id, "delivered", T).await;
    assert!(
        webhook_entry(&n, "delivered").is_some(),
        "the history names the provider: {n}"
    );
    assert!(webhook_entry(&n, "bounced").is_none(), "{n}");
}

/// Needs the suppression list of user-svc (`PUT`/`GET /api/v1/suppressions/{channel}/{address}`),
/// built on the `suppress` branch: without it user-svc answers the gateway's PUT with 404 and
/// the webhook answers 500 (nothing is enqueued, so the provider would retry).
#[tokio::test]
async fn a_signed_sendgrid_bounce_marks_the_notification_bounced_and_suppresses_the_address() {
    let signer = SendGridSigner::new();
    let (s, user) = stack(&signer, "grace@example.com").await;
    let id = sent_notification(&s, user, "wh-bounce").await;

    let bounce = json!([event(
        id,
        "grace@example.com",
        "bounce",
        json!({"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 The email account does not exist"})
    )]);
    let (status, v) = post_events(&s, Some(&signer), &bounce).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["suppressed"], 1, "{v}");

    let n = s.wait_status(id, "bounced", T).await;
    let entry = webhook_entry(&n, "bounced").unwrap_or_else(|| panic!("{n}"));
    assert!(
        entry["error"].as_str().unwrap_or_default().contains("5.1.1"),
        "the diagnostic is kept: {n}"
    );

    let token = test_support::service_token("e2e", &[SCOPE_SUPPRESSIONS_READ]);
    let resp = s
        .http
        .get(format!(
            "{}/api/v1/suppressions/email/grace@example.com",
            s.user_svc.url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "the address is suppressed: {v}");
    assert_eq!(v["data"]["reason"], "hard_bounce", "{v}");
    assert_eq!(v["data"]["source"], "sendgrid", "{v}");
}
