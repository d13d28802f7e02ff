//! `WebPushProvider` against a push service played by wiremock: the test is the browser, it
//! holds the subscription's key pair and auth secret, decrypts what it received and checks
//! the VAPID token with the server's public key.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use notify_providers::{
    webpush::{ece, vapid::VapidClaims},
    WebPushProvider, WebPushSettings,
};
use notify_templates::{PushContent, Rendered};
use notify_worker::provider::{Delivery, FailureKind, OutgoingMessage, Provider, ProviderFailure};
use p256::{elliptic_curve::sec1::ToEncodedPoint, SecretKey};
use rand::RngCore;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

const PUSH_PATH: &str = "/wpush/v2/gAAAAABkZ";

/// The browser's side of one subscription.
struct Subscriber {
    secret: SecretKey,
    auth: [u8; 16],
    token: String,
}

impl Subscriber {
    fn new(server: &MockServer) -> Self {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let mut auth = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut auth);
        let token = json!({
            "endpoint": format!("{}{PUSH_PATH}", server.uri()),
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            },
        })
        .to_string();
        Self { secret, auth, token }
    }

    fn read(&self, request: &Request) -> Value {
        let plaintext = ece::decrypt(&request.body, &self.secret, &self.auth).expect("the payload decrypts");
        serde_json::from_slice(&plaintext).unwrap()
    }
}

/// The application server's VAPID key pair.
fn vapid() -> SecretKey {
    SecretKey::random(&mut rand::rngs::OsRng)
}

fn provider(vapid: &SecretKey) -> WebPushProvider {
    WebPushProvider::new(&WebPushSettings {
        vapid_private_key: SecretString::from(URL_SAFE_NO_PAD.encode(vapid.to_bytes())),
        vapid_subject: "mailto:ops@notify.test".into(),
        default_ttl: 86_400,
        timeout: Duration::from_secs(5),
        // wiremock speaks http; registration accepts https endpoints only.
        allow_http: true,
    })
    .unwrap()
}

fn rich() -> Rendered {
    Rendered::Push(PushContent {
        title: "Order shipped".into(),
        body: "Your order #42 is on its way".into(),
        image_url: Some("https://cdn.example.test/parcel.png".into()),
        link_url: Some("https://shop.example.test/orders/42".into()),
        collapse_key: Some("order-42".into()),
        ttl_seconds: Some("3600".into()),
        ..PushContent::default()
    })
}

fn delivery<'a>(id: Uuid, token: &'a str, content: &'a Rendered) -> Delivery<'a> {
    Delivery::from(OutgoingMessage {
        notification_id: id,
        correlation_id: "corr-7",
        traceparent: None,
        target: token,
        platform: Some("web"),
        recipient_name: None,
        content,
    })
}

async fn push_service(template: ResponseTemplate, expected: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH_PATH))
        .respond_with(template)
        .expect(expected)
        .mount(&server)
        .await;
    server
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_subscriber_decrypts_the_rendered_notification_and_the_vapid_token_names_the_push_service() {
    let server = push_service(
        ResponseTemplate::new(201).insert_header("Location", "https://push.example.test/m/77"),
        1,
    )
    .await;
    let subscriber = Subscriber::new(&server);
    let key = vapid();
    let content = rich();
    let id = Uuid::new_v4();

    let receipt = provider(&key)
        .deliver(&delivery(id, &subscriber.token, &content))
        .await
        .unwrap();

    assert_eq!(receipt.provider, Some("webpush"));
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("https://push.example.test/m/77")
    );
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        subscriber.read(request),
        json!({"title": "Order shipped", "body": "Your order #42 is on its way",
               "image": "https://cdn.example.test/parcel.png", "url": "https://shop.example.test/orders/42",
               "tag": "order-42", "data": {"notification_id": id.to_string(), "correlation_id": "corr-7"}})
    );
    assert_eq!(header(request, "content-encoding"), "aes128gcm");
    assert_eq!(header(request, "content-type"), "application/octet-stream");
    assert_eq!(header(request, "ttl"), "3600");
    assert_eq!(header(request, "urgency"), "normal");
    assert_eq!(header(request, "topic"), "order-42");

    let (jwt, k) = header(request, "authorization")
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("Authorization: vapid t=…, k=…");
    let point = key.public_key().to_encoded_point(false);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(k).unwrap(),
        point.as_bytes(),
        "k is the server's public key"
    );
    let origin = server.uri();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[origin.as_str()]);
    let decoding = DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        &URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    )
    .unwrap();
    let claims = jsonwebtoken::decode::<VapidClaims>(jwt, &decoding, &validation)
        .expect("the VAPID token verifies with the server's public key")
        .claims;
    assert_eq!(claims.aud, origin, "aud is the push service's origin, without the path");
    assert_eq!(claims.sub, "mailto:ops@notify.test");
}

#[tokio::test]
async fn without_a_template_ttl_or_collapse_key_the_default_ttl_goes_and_no_topic() {
    let server = push_service(ResponseTemplate::new(201), 1).await;
    let subscriber = Subscriber::new(&server);
    let content = Rendered::Push(PushContent {
        title: "t".into(),
        body: "b".into(),
        ..PushContent::default()
    });

    provider(&vapid())
        .deliver(&delivery(Uuid::new_v4(), &subscriber.token, &content))
        .await
        .unwrap();

    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(header(request, "ttl"), "86400");
    assert!(request.headers.get("topic").is_none());
    assert_eq!(subscriber.read(request)["title"], "t");
}

async fn failure_for(template: ResponseTemplate) -> ProviderFailure {
    let server = push_service(template, 1).await;
    let subscriber = Subscriber::new(&server);
    let content = rich();
    provider(&vapid())
        .deliver(&delivery(Uuid::new_v4(), &subscriber.token, &content))
        .await
        .expect_err("the push should fail")
}

#[tokio::test]
async fn a_subscription_the_push_service_no_longer_knows_is_gone() {
    for status in [410, 404] {
        let failure = failure_for(ResponseTemplate::new(status)).await;

        assert!(failure.is_gone(), "{status}: {failure:?}");
        assert!(failure.message.contains(&format!("answered {status}")), "{failure:?}");
    }
}

#[tokio::test]
async fn throttling_waits_as_told_and_server_errors_are_transient() {
    let throttled = failure_for(ResponseTemplate::new(429).insert_header("Retry-After", "12")).await;
    let down = failure_for(ResponseTemplate::new(503)).await;

    assert!(throttled.is_transient() && !throttled.alert);
    assert_eq!(throttled.retry_after, Some(Duration::from_secs(12)));
    assert!(down.is_transient());
}

#[tokio::test]
async fn a_refused_message_is_permanent_and_a_refused_vapid_key_an_alert() {
    for status in [400, 413] {
        assert_eq!(
            failure_for(ResponseTemplate::new(status)).await.kind,
            FailureKind::Permanent,
            "{status}"
        );
    }
    let refused = failure_for(ResponseTemplate::new(403)).await;
    assert!(refused.is_transient() && refused.alert, "{refused:?}");
}

#[tokio::test]
async fn a_malformed_subscription_is_refused_for_that_device_without_a_request() {
    let server = push_service(ResponseTemplate::new(201), 0).await;
    let content = rich();
    let token = json!({"endpoint": format!("{}{PUSH_PATH}", server.uri()), "keys": {"p256dh": "AAAA", "auth": "AAAA"}})
        .to_string();

    let failure = provider(&vapid())
        .deliver(&delivery(Uuid::new_v4(), &token, &content))
        .await
        .unwrap_err();

    assert_eq!(failure.kind, FailureKind::Recipient);
    assert!(failure.message.contains("keys.p256dh"), "{failure:?}");
    assert!(!failure.is_gone());
}
