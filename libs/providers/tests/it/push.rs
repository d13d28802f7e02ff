//! `HttpPushProvider` against wiremock servers standing in for the push API.

use std::time::Duration;

use notify_providers::{HttpPushProvider, PushSettings};
use notify_templates::{EmailContent, PushContent, Rendered};
use notify_worker::provider::{OutgoingMessage, Provider, ProviderError};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{any, body_partial_json, header, method, path},
    Mock, MockServer, ResponseTemplate,
};

const TOKEN: &str = "fcm-token_0123456789:abcdefghijklmnopqrstuvwxyz";
const SEND_PATH: &str = "/v1/projects/notify/messages:send";

fn provider(server: &MockServer, timeout: Duration) -> HttpPushProvider {
    HttpPushProvider::new(&PushSettings {
        url: format!("{}{SEND_PATH}", server.uri()),
        api_key: Some(SecretString::from("test-key")),
        timeout,
    })
    .unwrap()
}

fn order_shipped() -> Rendered {
    Rendered::Push(PushContent {
        title: "Order shipped".into(),
        body: "Your order #42 is on its way".into(),
        image_url: Some("https://cdn.example.test/parcel.png".into()),
        link_url: Some("https://shop.example.test/orders/42".into()),
        ..PushContent::default()
    })
}

fn to<'a>(id: Uuid, target: &'a str, content: &'a Rendered) -> OutgoingMessage<'a> {
    OutgoingMessage {
        notification_id: id,
        correlation_id: "corr-7",
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        target,
        platform: Some("web"),
        recipient_name: None,
        content,
    }
}

async fn answering(status: u16, body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn an_accepted_push_returns_the_provider_message_name() {
    let server = MockServer::start().await;
    let id = Uuid::new_v4();
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer test-key"))
        .and(header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ))
        .and(body_partial_json(json!({"message": {
            "token": TOKEN,
            "notification": {
                "title": "Order shipped",
                "body": "Your order #42 is on its way",
                "image": "https://cdn.example.test/parcel.png",
            },
            "data": {
                "link": "https://shop.example.test/orders/42",
                "notification_id": id.to_string(),
                "correlation_id": "corr-7",
            },
            "webpush": {"fcm_options": {"link": "https://shop.example.test/orders/42"}},
        }})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "projects/notify/messages/0:1500415314455276%31bd1c9631bd1c96"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let content = order_shipped();

    let receipt = provider(&server, Duration::from_secs(5))
        .send(&to(id, TOKEN, &content))
        .await
        .unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("projects/notify/messages/0:1500415314455276%31bd1c9631bd1c96")
    );
}

#[tokio::test]
async fn an_unregistered_token_is_permanent() {
    let server = answering(
        404,
        json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
                         "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
    )
    .await;
    let content = order_shipped();

    let err = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn an_invalid_argument_is_permanent() {
    let server = answering(
        400,
        json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "The registration token is not a valid FCM registration token"}}),
    )
    .await;
    let content = order_shipped();

    let err = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Permanent(_)), "{err}");
    assert!(err.message().contains("INVALID_ARGUMENT"), "{err}");
}

#[tokio::test]
async fn throttling_is_transient() {
    let server = answering(429, json!({"error": {"status": "RESOURCE_EXHAUSTED"}})).await;
    let content = order_shipped();

    let err = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
}

#[tokio::test]
async fn an_unavailable_provider_is_transient() {
    let server = answering(503, json!({"error": {"status": "UNAVAILABLE"}})).await;
    let content = order_shipped();

    let err = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
}

#[tokio::test]
async fn a_refused_key_is_transient_so_nothing_is_lost() {
    let server = answering(401, json!({"error": {"status": "UNAUTHENTICATED"}})).await;
    let content = order_shipped();

    let err = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "late"}))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let content = order_shipped();

    let err = provider(&server, Duration::from_millis(300))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
    assert!(err.message().contains("did not answer"), "{err}");
}

#[tokio::test]
async fn a_provider_that_is_down_is_transient() {
    // Not a dropped MockServer: wiremock pools its servers and hands the port to another test.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let push = HttpPushProvider::new(&PushSettings {
        url: format!("http://127.0.0.1:{closed_port}{SEND_PATH}"),
        api_key: None,
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let content = order_shipped();

    let err = push.send(&to(Uuid::new_v4(), TOKEN, &content)).await.unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
    assert!(err.message().contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn a_malformed_token_is_permanent_and_no_request_is_made() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let content = order_shipped();
    let push = provider(&server, Duration::from_secs(5));

    for token in ["", "has space", "line\nbreak", &"x".repeat(4097)] {
        let err = push.send(&to(Uuid::new_v4(), token, &content)).await.unwrap_err();
        assert!(matches!(err, ProviderError::Permanent(_)), "{token:?}: {err}");
    }
}

#[tokio::test]
async fn email_content_is_permanent_and_no_request_is_made() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let content = Rendered::Email(EmailContent {
        subject: "s".into(),
        text_body: "t".into(),
        html_body: "h".into(),
    });

    let err = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn a_deep_link_is_sent_as_data_only() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({"message": {"data": {"link": "shop://orders/42"}}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let content = Rendered::Push(PushContent {
        title: "t".into(),
        body: "b".into(),
        link_url: Some("shop://orders/42".into()),
        ..PushContent::default()
    });

    let receipt = provider(&server, Duration::from_secs(5))
        .send(&to(Uuid::new_v4(), TOKEN, &content))
        .await
        .unwrap();

    assert_eq!(receipt.provider_message_id, None);
    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert!(body["message"].get("webpush").is_none(), "{body}");
    assert!(body["message"]["notification"].get("image").is_none(), "{body}");
}
