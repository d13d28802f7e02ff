//! `SendGridProvider` against a wiremock server replaying SendGrid's documented answers.

use std::time::Duration;

use crate::common::{assert_alert, assert_transient, delivery, failure_of, sender, welcome, TO, UNSUBSCRIBE};
use notify_providers::{SendGridProvider, SendGridSettings};
use notify_worker::provider::{message_id, FailureKind, Provider};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{body_json, header, method, path},
    Mock, MockServer, ResponseTemplate,
};

const SEND: &str = "/v3/mail/send";

fn provider_at(base_url: String, timeout: Duration) -> SendGridProvider {
    SendGridProvider::new(&SendGridSettings {
        api_key: SecretString::from("SG.test-key"),
        base_url,
        timeout,
        sender: sender(),
    })
    .unwrap()
}

fn provider(server: &MockServer) -> SendGridProvider {
    provider_at(server.uri(), Duration::from_secs(5))
}

#[tokio::test]
async fn an_accepted_email_is_sent_as_documented_and_returns_the_x_message_id() {
    let server = MockServer::start().await;
    let id = Uuid::new_v4();
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(header("authorization", "Bearer SG.test-key"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "personalizations": [{"to": [{"email": TO, "name": "Ada Lovelace"}]}],
            "from": {"email": "no-reply@notify.test", "name": "Notifications"},
            "subject": "Welcome, Ada",
            "content": [
                {"type": "text/plain", "value": "Hello Ada, your account is ready."},
                {"type": "text/html", "value": "<p>Hello <b>Ada</b>, your account is ready.</p>"},
            ],
            "headers": {
                "Message-ID": message_id(id, "notify.test"),
                "X-Notification-Id": id.to_string(),
                "X-Correlation-Id": "corr-9",
                "List-Unsubscribe": format!("<{UNSUBSCRIBE}>"),
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "custom_args": {"notification_id": id.to_string()},
        })))
        .respond_with(ResponseTemplate::new(202).insert_header("x-message-id", "sg-4f2a"))
        .expect(1)
        .mount(&server)
        .await;
    let content = welcome();

    let receipt = provider(&server).deliver(&delivery(id, TO, &content)).await.unwrap();

    assert_eq!(receipt.provider_message_id.as_deref(), Some("sg-4f2a"));
    assert_eq!(receipt.provider, Some("sendgrid"));
}

#[tokio::test]
async fn an_invalid_recipient_is_permanent_for_that_recipient() {
    let server = crate::common::answering(
        SEND,
        ResponseTemplate::new(400).set_body_json(json!({"errors": [{
            "message": "Does not contain a valid address.",
            "field": "personalizations.0.to.0.email",
            "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to",
        }]})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_eq!(failure.kind, FailureKind::Recipient, "{failure:?}");
    assert!(
        failure.message.contains("Does not contain a valid address"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_refused_key_is_transient_and_an_alert() {
    let server = crate::common::answering(SEND,
        ResponseTemplate::new(401)
            .set_body_json(json!({"errors": [{"field": null, "message": "The provided authorization grant is invalid, expired, or revoked"}]})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_alert(&failure);
}

#[tokio::test]
async fn an_unverified_sender_is_transient_and_an_alert() {
    let server = crate::common::answering(
        SEND,
        ResponseTemplate::new(403).set_body_json(json!({"errors": [{
            "field": "from", "message": "The from address does not match a verified Sender Identity.",
        }]})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_alert(&failure);
}

#[tokio::test]
async fn a_payload_too_large_is_permanent() {
    let server = crate::common::answering(
        SEND,
        ResponseTemplate::new(413).set_body_json(
            json!({"errors": [{"message": "The JSON payload you have included in your request is too large."}]}),
        ),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_eq!(failure.kind, FailureKind::Permanent, "{failure:?}");
}

#[tokio::test]
async fn throttling_is_transient_with_its_retry_after() {
    let server = crate::common::answering(
        SEND,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "17")
            .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_transient(&failure, Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn throttling_without_retry_after_waits_for_the_rate_limit_reset() {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 40;
    let server = crate::common::answering(
        SEND,
        ResponseTemplate::new(429).insert_header("x-ratelimit-reset", reset.to_string()),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    let wait = failure.retry_after.expect("a retry-after");
    assert!(
        wait > Duration::from_secs(35) && wait <= Duration::from_secs(40),
        "{wait:?}"
    );
}

#[tokio::test]
async fn a_server_error_is_transient() {
    for status in [500, 503] {
        let server = crate::common::answering(SEND, ResponseTemplate::new(status)).await;
        let failure = failure_of(&provider(&server)).await;

        assert_transient(&failure, None);
    }
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_transient() {
    let server = crate::common::answering(SEND, ResponseTemplate::new(202).set_delay(Duration::from_secs(3))).await;
    let failure = failure_of(&provider_at(server.uri(), Duration::from_millis(300))).await;

    assert_transient(&failure, None);
    assert!(failure.message.contains("did not answer in time"), "{failure:?}");
}

#[tokio::test]
async fn an_api_that_is_down_is_transient() {
    let failure = failure_of(&provider_at(
        format!("http://127.0.0.1:{}", crate::common::closed_port()),
        Duration::from_secs(2),
    ))
    .await;

    assert_transient(&failure, None);
}

#[test]
fn settings_refuse_a_missing_key() {
    // Only this test touches APP_SENDGRID_API_KEY.
    std::env::remove_var("APP_SENDGRID_API_KEY");

    let err = SendGridSettings::from_env().unwrap_err();

    assert!(err.to_string().contains("APP_SENDGRID_API_KEY"), "{err}");
}
