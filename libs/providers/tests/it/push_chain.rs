//! The push chain: each device routed to the providers that take its kind of token, failover
//! between two push providers and the all-down pause, against wiremock fakes on a manual
//! clock (the chain's mechanics are the email chain's, tested at length in `chain.rs`).

use std::{sync::Arc, time::Duration};

use crate::common::google::{key, token_endpoint};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use notify_providers::{
    breaker::{BreakerSettings, CircuitState, Clock, ManualClock},
    fcm::FCM_SCOPE,
    google_auth::TokenSource,
    push::{HttpPushProvider, PushSettings},
    FcmProvider, FcmSettings, ProviderChain, WebPushProvider, WebPushSettings,
};
use notify_templates::{PushContent, Rendered};
use notify_worker::provider::{Delivery, FailureKind, OutgoingMessage, Provider, ProviderFailure, ProviderReceipt};
use p256::{elliptic_curve::sec1::ToEncodedPoint, SecretKey};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const COOL_DOWN: Duration = Duration::from_secs(30);
const FCM_SEND: &str = "/v1/projects/notify-test/messages:send";
const RELAY_SEND: &str = "/v1/messages:send";
const TOKEN: &str = "fcm-token-1:APA91bHun4MxP5egoKMwt2KZFBaFUH";

fn breaker() -> BreakerSettings {
    BreakerSettings {
        consecutive_failures: 3,
        failure_ratio: 1.0,
        window: Duration::from_secs(60),
        min_requests: 100,
        cool_down: COOL_DOWN,
    }
}

fn fcm(server: &MockServer) -> Arc<dyn Provider> {
    let settings = FcmSettings {
        key: key(server),
        project_id: "notify-test".into(),
        base_url: server.uri(),
        timeout: Duration::from_secs(5),
    };
    let tokens = TokenSource::new(settings.key.clone(), FCM_SCOPE, None, settings.timeout).unwrap();
    Arc::new(FcmProvider::with_tokens(&settings, Arc::new(tokens)).unwrap())
}

/// A second route for FCM-style tokens: the FCM-compatible JSON API (`http`).
fn relay(server: &MockServer) -> Arc<dyn Provider> {
    Arc::new(
        HttpPushProvider::new(&PushSettings {
            url: format!("{}{RELAY_SEND}", server.uri()),
            api_key: Some(SecretString::from("relay-key")),
            timeout: Duration::from_secs(5),
        })
        .unwrap(),
    )
}

fn webpush() -> Arc<dyn Provider> {
    Arc::new(
        WebPushProvider::new(&WebPushSettings {
            vapid_private_key: SecretString::from(
                URL_SAFE_NO_PAD.encode(SecretKey::random(&mut rand::rngs::OsRng).to_bytes()),
            ),
            vapid_subject: "mailto:ops@notify.test".into(),
            default_ttl: 60,
            timeout: Duration::from_secs(5),
            allow_http: true,
        })
        .unwrap(),
    )
}

fn content() -> Rendered {
    Rendered::Push(PushContent {
        title: "t".into(),
        body: "b".into(),
        ..PushContent::default()
    })
}

async fn send(chain: &ProviderChain, target: &str) -> Result<ProviderReceipt, ProviderFailure> {
    send_via(chain, target, None).await
}

/// A send of a device registered with `provider` (`None`: a caller that does not know).
async fn send_via(
    chain: &ProviderChain,
    target: &str,
    provider: Option<&str>,
) -> Result<ProviderReceipt, ProviderFailure> {
    let content = content();
    chain
        .deliver(&Delivery {
            provider,
            ..Delivery::from(OutgoingMessage {
                notification_id: Uuid::new_v4(),
                correlation_id: "corr",
                traceparent: None,
                target,
                platform: Some("android"),
                recipient_name: None,
                content: &content,
            })
        })
        .await
}

async fn answer(server: &MockServer, route: &str, template: ResponseTemplate, expected: u64) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(template)
        .expect(expected)
        .mount(server)
        .await;
}

fn subscription(server: &MockServer) -> String {
    let secret = SecretKey::random(&mut rand::rngs::OsRng);
    json!({"endpoint": format!("{}/wpush/1", server.uri()), "keys": {
        "p256dh": URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
        "auth": URL_SAFE_NO_PAD.encode([7u8; 16]),
    }})
    .to_string()
}

#[tokio::test]
async fn each_device_goes_to_the_provider_that_takes_its_kind_of_token() {
    let (google, push_service) = (MockServer::start().await, MockServer::start().await);
    token_endpoint(&google, 1).await;
    answer(
        &google,
        FCM_SEND,
        ResponseTemplate::new(200).set_body_json(json!({"name": "m/1"})),
        1,
    )
    .await;
    answer(&push_service, "/wpush/1", ResponseTemplate::new(201), 1).await;
    let chain = ProviderChain::builder("push")
        .member_for(fcm(&google), None, FcmProvider::accepts)
        .member_for(webpush(), None, WebPushProvider::accepts)
        .build();

    let to_fcm = send(&chain, TOKEN).await.unwrap();
    let to_browser = send(&chain, &subscription(&push_service)).await.unwrap();
    let nobody = send(&chain, "5eb5a37e-b458-11e3-ac11-000c2940e62c").await.unwrap_err();

    assert_eq!(to_fcm.provider, Some("fcm"));
    assert_eq!(to_browser.provider, Some("webpush"));
    assert_eq!(
        nobody.kind,
        FailureKind::Recipient,
        "a OneSignal id with no onesignal member: {nobody:?}"
    );
    assert!(nobody.message.contains("fcm, webpush"), "{nobody:?}");
}

#[tokio::test]
async fn a_device_goes_to_the_provider_it_was_registered_with_whatever_its_token_looks_like() {
    let (google, push_service) = (MockServer::start().await, MockServer::start().await);
    token_endpoint(&google, 1).await;
    answer(
        &google,
        FCM_SEND,
        ResponseTemplate::new(200).set_body_json(json!({"name": "m/1"})),
        1,
    )
    .await;
    answer(&push_service, "/wpush/1", ResponseTemplate::new(201), 0).await;
    let chain = ProviderChain::builder("push")
        .member_for(fcm(&google), None, FcmProvider::accepts)
        .member_for(webpush(), None, WebPushProvider::accepts)
        .build();
    // By shape a UUID is a OneSignal id, which this chain has no member for.
    let uuid_token = "5eb5a37e-b458-11e3-ac11-000c2940e62c";

    let to_fcm = send_via(&chain, uuid_token, Some("fcm")).await.unwrap();
    // An FCM-looking token registered as Web Push goes to webpush alone, which refuses it.
    let refused = send_via(&chain, TOKEN, Some("webpush")).await.unwrap_err();
    let nobody = send_via(&chain, &subscription(&push_service), Some("onesignal"))
        .await
        .unwrap_err();

    assert_eq!(to_fcm.provider, Some("fcm"));
    assert_eq!(refused.kind, FailureKind::Recipient, "{refused:?}");
    assert!(refused.message.contains("Web Push subscription"), "{refused:?}");
    assert!(nobody.message.contains("fcm, webpush"), "{nobody:?}");
    google.verify().await;
    push_service.verify().await;
}

fn failover_chain(google: &MockServer, relay_server: &MockServer, clock: &ManualClock) -> ProviderChain {
    ProviderChain::builder("push")
        .breaker(breaker())
        .clock(Arc::new(clock.clone()))
        .member_for(fcm(google), None, FcmProvider::accepts)
        .member_for(relay(relay_server), None, FcmProvider::accepts)
        .build()
}

#[tokio::test]
async fn when_fcm_fails_its_circuit_opens_and_the_second_push_provider_delivers() {
    let (google, relay_server, clock) = (
        MockServer::start().await,
        MockServer::start().await,
        ManualClock::default(),
    );
    token_endpoint(&google, 1).await;
    answer(&google, FCM_SEND, ResponseTemplate::new(503), 3).await;
    answer(
        &relay_server,
        RELAY_SEND,
        ResponseTemplate::new(200).set_body_json(json!({"name": "r/1"})),
        5,
    )
    .await;
    let chain = failover_chain(&google, &relay_server, &clock);

    for _ in 0..5 {
        assert_eq!(send(&chain, TOKEN).await.unwrap().provider, Some("http"));
    }

    assert_eq!(chain.circuit_state("fcm"), Some(CircuitState::Open));
    assert_eq!(chain.circuit_state("http"), Some(CircuitState::Closed));
    assert!(!chain.all_open());
}

#[tokio::test]
async fn when_every_push_provider_is_down_the_chain_says_when_to_come_back() {
    let (google, relay_server, clock) = (
        MockServer::start().await,
        MockServer::start().await,
        ManualClock::default(),
    );
    token_endpoint(&google, 1).await;
    answer(&google, FCM_SEND, ResponseTemplate::new(503), 3).await;
    answer(&relay_server, RELAY_SEND, ResponseTemplate::new(500), 3).await;
    let chain = failover_chain(&google, &relay_server, &clock);
    for _ in 0..3 {
        assert!(send(&chain, TOKEN).await.unwrap_err().is_transient());
    }

    assert!(chain.all_open());
    assert_eq!(chain.unavailable_until(), Some(clock.now() + COOL_DOWN));
    let failure = send(&chain, TOKEN).await.unwrap_err();
    assert!(
        failure.is_transient() && failure.message.contains("circuit open"),
        "{failure:?}"
    );
    assert_eq!(failure.retry_after, Some(COOL_DOWN));
}

#[tokio::test]
async fn a_gone_device_is_not_failed_over() {
    let (google, relay_server, clock) = (
        MockServer::start().await,
        MockServer::start().await,
        ManualClock::default(),
    );
    token_endpoint(&google, 1).await;
    answer(
        &google,
        FCM_SEND,
        ResponseTemplate::new(404).set_body_json(json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
        1,
    )
    .await;
    answer(&relay_server, RELAY_SEND, ResponseTemplate::new(200), 0).await;
    let chain = failover_chain(&google, &relay_server, &clock);

    let failure = send(&chain, TOKEN).await.unwrap_err();

    assert!(failure.is_gone(), "{failure:?}");
}
