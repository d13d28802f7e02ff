//! `MailgunProvider` against a wiremock server replaying Mailgun's documented answers.

use std::{collections::BTreeMap, time::Duration};

use crate::common::{assert_alert, assert_transient, delivery, failure_of, sender, welcome, TO, UNSUBSCRIBE};
use notify_providers::{MailgunProvider, MailgunSettings};
use notify_worker::provider::{message_id, FailureKind, Provider};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{basic_auth, method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

const MESSAGES: &str = "/v3/mg.notify.test/messages";

fn provider_at(base_url: String, timeout: Duration) -> MailgunProvider {
    MailgunProvider::new(&MailgunSettings {
        api_key: SecretString::from("key-test"),
        domain: "mg.notify.test".into(),
        base_url,
        timeout,
        sender: sender(),
    })
    .unwrap()
}

fn provider(server: &MockServer) -> MailgunProvider {
    provider_at(server.uri(), Duration::from_secs(5))
}

/// The fields of a `multipart/form-data` body, by name.
fn form_fields(request: &Request) -> BTreeMap<String, String> {
    let content_type = request.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("multipart/form-data"), "{content_type}");
    let boundary = content_type.split("boundary=").nth(1).unwrap().trim_matches('"');
    let body = String::from_utf8(request.body.clone()).unwrap();
    body.split(&format!("--{boundary}"))
        .filter_map(|part| {
            let (head, value) = part.split_once("\r\n\r\n")?;
            let name = head.split("name=\"").nth(1)?.split('"').next()?;
            Some((
                name.to_string(),
                value.strip_suffix("\r\n").unwrap_or(value).to_string(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn an_accepted_email_is_sent_as_a_form_with_headers_and_variables() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(basic_auth("api", "key-test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "<20260101120000.1.ABCDEF@mg.notify.test>", "message": "Queued. Thank you.",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (id, content) = (Uuid::new_v4(), welcome());

    let receipt = provider(&server).deliver(&delivery(id, TO, &content)).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("<20260101120000.1.ABCDEF@mg.notify.test>")
    );
    assert_eq!(receipt.provider, Some("mailgun"));
    let requests = server.received_requests().await.unwrap();
    let fields = form_fields(&requests[0]);
    let expected: BTreeMap<String, String> = [
        ("from", "Notifications <no-reply@notify.test>".to_string()),
        ("to", format!("Ada Lovelace <{TO}>")),
        ("subject", "Welcome, Ada".into()),
        ("text", "Hello Ada, your account is ready.".into()),
        ("html", "<p>Hello <b>Ada</b>, your account is ready.</p>".into()),
        ("h:Message-Id", message_id(id, "notify.test")),
        ("h:X-Notification-Id", id.to_string()),
        ("h:X-Correlation-Id", "corr-9".into()),
        ("h:List-Unsubscribe", format!("<{UNSUBSCRIBE}>")),
        ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
        ("v:notification_id", id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(fields, expected);
}

#[tokio::test]
async fn an_invalid_recipient_is_permanent_for_that_recipient() {
    let server = crate::common::answering(
        MESSAGES,
        ResponseTemplate::new(400)
            .set_body_json(json!({"message": "'to' parameter is not a valid address. please check documentation"})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_eq!(failure.kind, FailureKind::Recipient, "{failure:?}");
}

#[tokio::test]
async fn a_refused_key_is_transient_and_an_alert() {
    for status in [401, 403] {
        let server =
            crate::common::answering(MESSAGES, ResponseTemplate::new(status).set_body_string("Forbidden")).await;
        let failure = failure_of(&provider(&server)).await;

        assert_alert(&failure);
        assert!(failure.message.contains("Forbidden"), "{failure:?}");
    }
}

#[tokio::test]
async fn throttling_is_transient_with_its_retry_after() {
    let server = crate::common::answering(
        MESSAGES,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "5")
            .set_body_json(json!({"message": "Too many requests"})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_transient(&failure, Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let server = crate::common::answering(
        MESSAGES,
        ResponseTemplate::new(500).set_body_json(json!({"message": "Internal Server Error"})),
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_transient(&failure, None);
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_transient() {
    let server = crate::common::answering(MESSAGES, ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
    let failure = failure_of(&provider_at(server.uri(), Duration::from_millis(300))).await;

    assert_transient(&failure, None);
}

#[test]
fn the_region_chooses_the_base_url_and_an_unknown_one_is_refused() {
    // Only this test touches APP_MAILGUN_*.
    std::env::set_var("APP_MAILGUN_API_KEY", "key-x");
    std::env::set_var("APP_MAILGUN_DOMAIN", "mg.notify.test");
    std::env::set_var("APP_MAILGUN_REGION", "eu");
    assert_eq!(
        MailgunSettings::from_env().unwrap().base_url,
        "https://api.eu.mailgun.net"
    );

    std::env::set_var("APP_MAILGUN_REGION", "mars");
    let err = MailgunSettings::from_env().unwrap_err();

    assert!(err.to_string().contains("APP_MAILGUN_REGION"), "{err}");
}
