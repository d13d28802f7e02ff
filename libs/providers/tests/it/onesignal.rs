//! `OneSignalProvider` against a wiremock OneSignal: the create-message request and each
//! documented answer.

use std::time::Duration;

use notify_providers::{OneSignalProvider, OneSignalSettings};
use notify_templates::{PushContent, Rendered};
use notify_worker::provider::{Delivery, FailureKind, OutgoingMessage, Provider, ProviderFailure};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::{
    matchers::{header, method, path, query_param},
    Mock, MockServer, ResponseTemplate,
};

const APP_ID: &str = "5eb5a37e-b458-11e3-ac11-000c2940e62c";
const SUBSCRIPTION: &str = "1dd608f2-c6a1-11e3-851d-000c2940e62c";

fn provider(server: &MockServer) -> OneSignalProvider {
    OneSignalProvider::new(&OneSignalSettings {
        app_id: Uuid::parse_str(APP_ID).unwrap(),
        api_key: SecretString::from("os_v2_app_test"),
        base_url: server.uri(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn content(link: &str) -> Rendered {
    Rendered::Push(PushContent {
        title: "Order shipped".into(),
        body: "Your order #42 is on its way".into(),
        image_url: Some("https://cdn.example.test/parcel.png".into()),
        link_url: Some(link.into()),
        sound: Some("default".into()),
        badge: Some("3".into()),
        collapse_key: Some("order-42".into()),
        ttl_seconds: Some("3600".into()),
    })
}

fn delivery<'a>(id: Uuid, target: &'a str, content: &'a Rendered) -> Delivery<'a> {
    Delivery::from(OutgoingMessage {
        notification_id: id,
        correlation_id: "corr-7",
        traceparent: None,
        target,
        platform: Some("android"),
        recipient_name: None,
        content,
    })
}

async fn onesignal(template: ResponseTemplate, expected: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/notifications"))
        .and(query_param("c", "push"))
        .and(header("authorization", "Key os_v2_app_test"))
        .respond_with(template)
        .expect(expected)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_push_is_one_create_message_call_for_the_subscription() {
    let server = onesignal(
        ResponseTemplate::new(200)
            .set_body_json(json!({"id": "b98881cc-1e94-4366-bbd9-db8f3429292b", "external_id": null})),
        1,
    )
    .await;
    let content = content("https://shop.example.test/orders/42");
    let id = Uuid::new_v4();

    let receipt = provider(&server)
        .deliver(&delivery(id, SUBSCRIPTION, &content))
        .await
        .unwrap();

    assert_eq!(receipt.provider, Some("onesignal"));
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("b98881cc-1e94-4366-bbd9-db8f3429292b")
    );
    let requests = server.received_requests().await.unwrap();
    let mut body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let key = body.as_object_mut().unwrap().remove("idempotency_key").unwrap();
    assert!(Uuid::parse_str(key.as_str().unwrap()).is_ok(), "{key}");
    assert_eq!(
        body,
        json!({
            "app_id": APP_ID, "target_channel": "push", "include_subscription_ids": [SUBSCRIPTION],
            "headings": {"en": "Order shipped"}, "contents": {"en": "Your order #42 is on its way"},
            "big_picture": "https://cdn.example.test/parcel.png",
            "ios_attachments": {"image": "https://cdn.example.test/parcel.png"},
            "chrome_web_image": "https://cdn.example.test/parcel.png",
            "url": "https://shop.example.test/orders/42",
            "ios_sound": "default", "android_sound": "default",
            "ios_badgeType": "SetTo", "ios_badgeCount": 3,
            "collapse_id": "order-42", "ttl": 3600,
            "data": {"notification_id": id.to_string(), "correlation_id": "corr-7"},
        })
    );
}

#[tokio::test]
async fn a_deep_link_goes_as_app_url_and_a_redelivery_repeats_the_idempotency_key() {
    let server = onesignal(ResponseTemplate::new(200).set_body_json(json!({"id": "n1"})), 2).await;
    let content = content("shop://orders/42");
    let id = Uuid::new_v4();
    let onesignal = provider(&server);

    onesignal.deliver(&delivery(id, SUBSCRIPTION, &content)).await.unwrap();
    onesignal.deliver(&delivery(id, SUBSCRIPTION, &content)).await.unwrap();

    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["app_url"], "shop://orders/42");
    assert!(bodies[0].get("url").is_none());
    assert_eq!(bodies[0]["idempotency_key"], bodies[1]["idempotency_key"]);
}

async fn failure_for(template: ResponseTemplate) -> ProviderFailure {
    let server = onesignal(template, 1).await;
    let content = content("https://shop.example.test/orders/42");
    provider(&server)
        .deliver(&delivery(Uuid::new_v4(), SUBSCRIPTION, &content))
        .await
        .expect_err("the push should fail")
}

#[tokio::test]
async fn an_invalid_subscription_in_a_200_is_gone() {
    let invalid = failure_for(ResponseTemplate::new(200).set_body_json(json!({"id": "",
        "errors": {"invalid_player_ids": [SUBSCRIPTION]}})))
    .await;
    let unsubscribed = failure_for(
        ResponseTemplate::new(200).set_body_json(json!({"id": "", "recipients": 0,
        "errors": ["All included players are not subscribed"]})),
    )
    .await;

    assert!(invalid.is_gone(), "{invalid:?}");
    assert!(unsubscribed.is_gone(), "{unsubscribed:?}");
}

#[tokio::test]
async fn a_bad_request_is_permanent_and_names_the_error() {
    let failure = failure_for(
        ResponseTemplate::new(400)
            .set_body_json(json!({"errors": ["Notification content must not be null for any languages."]})),
    )
    .await;

    assert_eq!(failure.kind, FailureKind::Permanent);
    assert!(failure.message.contains("must not be null"), "{failure:?}");
}

#[tokio::test]
async fn throttling_and_outages_are_transient_and_a_refused_key_is_an_alert() {
    let throttled = failure_for(ResponseTemplate::new(429).insert_header("Retry-After", "9")).await;
    let down = failure_for(ResponseTemplate::new(502)).await;
    let refused = failure_for(ResponseTemplate::new(403).set_body_json(
        json!({"errors": ["Access denied.  Please include an 'Authorization: ...' header with a valid API key."]}),
    ))
    .await;

    assert_eq!(throttled.retry_after, Some(Duration::from_secs(9)));
    assert!(throttled.is_transient() && !throttled.alert);
    assert!(down.is_transient());
    assert!(refused.is_transient() && refused.alert);
}

#[tokio::test]
async fn a_token_that_is_not_a_subscription_id_is_refused_without_a_request() {
    let server = onesignal(ResponseTemplate::new(200), 0).await;
    let content = content("https://shop.example.test/orders/42");

    let failure = provider(&server)
        .deliver(&delivery(Uuid::new_v4(), "fcm-token", &content))
        .await
        .unwrap_err();

    assert_eq!(failure.kind, FailureKind::Recipient);
}
