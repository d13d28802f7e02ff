//! `FcmProvider` against a wiremock server playing Google's token endpoint and the FCM HTTP
//! v1 API: the exact request, the token exchange and its cache, each documented error.

use std::{sync::Arc, time::Duration};

use crate::common::google::{form, key, requests_to, token_endpoint, verified_claims, CLIENT_EMAIL};
use notify_providers::{breaker::ManualClock, fcm::FCM_SCOPE, google_auth::TokenSource, FcmProvider, FcmSettings};
use notify_templates::{PushContent, Rendered};
use notify_worker::provider::{Delivery, FailureKind, OutgoingMessage, Provider, ProviderFailure};
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const SEND: &str = "/v1/projects/notify-test/messages:send";
const TOKEN: &str = "fcm-token-1:APA91bHun4MxP5egoKMwt2KZFBaFUH";

fn settings(server: &MockServer) -> FcmSettings {
    FcmSettings {
        key: key(server),
        project_id: "notify-test".into(),
        base_url: server.uri(),
        timeout: Duration::from_secs(5),
    }
}

fn provider_with_clock(server: &MockServer, clock: ManualClock) -> FcmProvider {
    let settings = settings(server);
    let tokens =
        TokenSource::with_clock(settings.key.clone(), FCM_SCOPE, None, settings.timeout, Arc::new(clock)).unwrap();
    FcmProvider::with_tokens(&settings, Arc::new(tokens)).unwrap()
}

fn provider(server: &MockServer) -> FcmProvider {
    provider_with_clock(server, ManualClock::default())
}

fn rich() -> Rendered {
    Rendered::Push(PushContent {
        title: "Order shipped".into(),
        body: "Your order #42 is on its way".into(),
        image_url: Some("https://cdn.example.test/parcel.png".into()),
        link_url: Some("https://shop.example.test/orders/42".into()),
        sound: Some("default".into()),
        badge: Some("3".into()),
        collapse_key: Some("order-42".into()),
        ttl_seconds: Some("3600".into()),
    })
}

fn message<'a>(id: Uuid, platform: Option<&'a str>, content: &'a Rendered) -> Delivery<'a> {
    Delivery::from(OutgoingMessage {
        notification_id: id,
        correlation_id: "corr-7",
        traceparent: None,
        target: TOKEN,
        platform,
        recipient_name: None,
        content,
    })
}

async fn send_answering(server: &MockServer, template: ResponseTemplate, expected: u64) {
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(template)
        .expect(expected)
        .mount(server)
        .await;
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"name": "projects/notify-test/messages/0:1500415314455276%31bd1c9631bd1c96"}))
}

async fn sent_bodies(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap();
    requests_to(&requests, SEND)
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn bearers(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests_to(&requests, SEND)
        .iter()
        .map(|r| r.headers.get("authorization").unwrap().to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_android_push_goes_to_the_project_with_a_bearer_from_the_signed_assertion() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(&server, accepted(), 1).await;
    let content = rich();
    let id = Uuid::new_v4();

    let receipt = provider(&server)
        .deliver(&message(id, Some("android"), &content))
        .await
        .unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("projects/notify-test/messages/0:1500415314455276%31bd1c9631bd1c96")
    );
    assert_eq!(receipt.provider, Some("fcm"));
    let requests = server.received_requests().await.unwrap();
    let token_uri = format!("{}/token", server.uri());
    let claims = verified_claims(&form(requests_to(&requests, "/token")[0])["assertion"], &token_uri);
    assert_eq!(claims.iss, CLIENT_EMAIL);
    assert_eq!(claims.scope, FCM_SCOPE);
    assert_eq!(claims.sub, None, "FCM acts as the service account itself");
    assert_eq!(bearers(&server).await, ["Bearer ya29.token-1"]);
    assert_eq!(
        sent_bodies(&server).await[0],
        json!({"message": {
            "token": TOKEN,
            "notification": {"title": "Order shipped", "body": "Your order #42 is on its way", "image": "https://cdn.example.test/parcel.png"},
            "data": {"notification_id": id.to_string(), "correlation_id": "corr-7", "link": "https://shop.example.test/orders/42"},
            "android": {"priority": "normal", "collapse_key": "order-42", "ttl": "3600s",
                        "notification": {"sound": "default", "tag": "order-42"}},
        }})
    );
}

#[tokio::test]
async fn an_ios_push_carries_the_apns_headers_badge_sound_and_image() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(&server, accepted(), 1).await;
    let content = rich();

    provider(&server)
        .deliver(&message(Uuid::new_v4(), Some("ios"), &content))
        .await
        .unwrap();

    let body = &sent_bodies(&server).await[0]["message"];
    assert!(body.get("android").is_none() && body.get("webpush").is_none(), "{body}");
    let apns = &body["apns"];
    assert_eq!(apns["headers"]["apns-priority"], "5");
    assert_eq!(apns["headers"]["apns-collapse-id"], "order-42");
    let expiry: u64 = apns["headers"]["apns-expiration"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
        "expires in the TTL: {expiry} vs {now}"
    );
    assert_eq!(
        apns["payload"],
        json!({"aps": {"badge": 3, "sound": "default", "mutable-content": 1}})
    );
    assert_eq!(
        apns["fcm_options"],
        json!({"image": "https://cdn.example.test/parcel.png"})
    );
}

#[tokio::test]
async fn a_web_push_through_fcm_carries_ttl_urgency_topic_and_the_https_link() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(&server, accepted(), 1).await;
    let content = rich();

    provider(&server)
        .deliver(&message(Uuid::new_v4(), Some("web"), &content))
        .await
        .unwrap();

    let body = &sent_bodies(&server).await[0]["message"];
    assert_eq!(
        body["webpush"],
        json!({"headers": {"TTL": "3600", "Urgency": "normal", "Topic": "order-42"},
               "fcm_options": {"link": "https://shop.example.test/orders/42"}})
    );
}

#[tokio::test]
async fn the_token_is_reused_until_it_expires_and_refreshed_after() {
    let server = MockServer::start().await;
    token_endpoint(&server, 2).await;
    send_answering(&server, accepted(), 3).await;
    let clock = ManualClock::default();
    let fcm = provider_with_clock(&server, clock.clone());
    let content = rich();

    fcm.deliver(&message(Uuid::new_v4(), None, &content)).await.unwrap();
    clock.advance(Duration::from_secs(3000));
    fcm.deliver(&message(Uuid::new_v4(), None, &content)).await.unwrap();
    clock.advance(Duration::from_secs(599));
    fcm.deliver(&message(Uuid::new_v4(), None, &content)).await.unwrap();

    assert_eq!(
        bearers(&server).await,
        ["Bearer ya29.token-1", "Bearer ya29.token-1", "Bearer ya29.token-2"]
    );
}

fn fcm_error(status: u16, state: &str, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"code": status, "message": message, "status": state,
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}}))
}

/// The failure of one push answered with `template`; `tokens` and `sends` are the requests
/// expected at each endpoint.
async fn failure_for(template: ResponseTemplate, tokens: u64, sends: u64) -> ProviderFailure {
    let server = MockServer::start().await;
    token_endpoint(&server, tokens).await;
    send_answering(&server, template, sends).await;
    let content = rich();
    let failure = provider(&server)
        .deliver(&message(Uuid::new_v4(), Some("android"), &content))
        .await
        .expect_err("the push should fail");
    server.verify().await;
    failure
}

#[tokio::test]
async fn an_unregistered_token_is_gone() {
    let failure = failure_for(
        fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
        1,
        1,
    )
    .await;

    assert!(failure.is_gone(), "{failure:?}");
}

#[tokio::test]
async fn an_invalid_registration_token_is_gone_but_an_invalid_message_is_permanent() {
    let token = failure_for(
        fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        1,
        1,
    )
    .await;
    let message = failure_for(
        ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400,
            "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.data[0].value", "description": "Invalid value"}]}]}})),
        1,
        1,
    )
    .await;

    assert!(token.is_gone(), "{token:?}");
    assert_eq!(message.kind, FailureKind::Permanent, "{message:?}");
}

#[tokio::test]
async fn a_token_of_another_sender_is_refused_for_that_device_with_an_alert() {
    let failure = failure_for(
        fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
        1,
        1,
    )
    .await;

    assert_eq!(failure.kind, FailureKind::Recipient, "{failure:?}");
    assert!(failure.alert && !failure.is_gone(), "{failure:?}");
}

#[tokio::test]
async fn a_third_party_auth_error_is_an_alert_without_a_token_refresh() {
    let failure = failure_for(
        fcm_error(
            401,
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
            "APNs certificate rejected",
        ),
        1,
        1,
    )
    .await;

    assert!(failure.is_transient() && failure.alert, "{failure:?}");
}

#[tokio::test]
async fn quota_exceeded_honours_retry_after_and_defaults_to_a_minute() {
    let with_header = failure_for(
        fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded").insert_header("Retry-After", "30"),
        1,
        1,
    )
    .await;
    let without = failure_for(
        fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded"),
        1,
        1,
    )
    .await;

    assert!(with_header.is_transient() && !with_header.alert);
    assert_eq!(with_header.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(without.retry_after, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn unavailable_and_internal_are_transient() {
    for (status, state) in [(503, "UNAVAILABLE"), (500, "INTERNAL")] {
        let failure = failure_for(
            fcm_error(status, state, state, "try later").insert_header("Retry-After", "5"),
            1,
            1,
        )
        .await;

        assert!(failure.is_transient() && !failure.alert, "{state}: {failure:?}");
        assert_eq!(failure.retry_after, Some(Duration::from_secs(5)), "{state}");
    }
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_then_an_alert() {
    let failure = failure_for(
        ResponseTemplate::new(401).set_body_json(json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
            "message": "Request had invalid authentication credentials."}})),
        2,
        2,
    )
    .await;
    let denied = failure_for(
        ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
            "message": "Permission 'cloudmessaging.messages.create' denied"}})),
        1,
        1,
    )
    .await;

    assert!(failure.is_transient() && failure.alert, "{failure:?}");
    assert!(denied.is_transient() && denied.alert, "{denied:?}");
}

#[tokio::test]
async fn a_malformed_token_is_refused_without_a_request() {
    let server = MockServer::start().await;
    token_endpoint(&server, 0).await;
    send_answering(&server, accepted(), 0).await;
    let content = rich();
    let delivery = Delivery::from(OutgoingMessage {
        target: "has space",
        ..message(Uuid::new_v4(), None, &content).message
    });

    let failure = provider(&server).deliver(&delivery).await.unwrap_err();

    assert_eq!(failure.kind, FailureKind::Recipient);
    assert!(!failure.is_gone());
}
