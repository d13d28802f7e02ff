//! Push delivery end to end with the real binaries and a fake FCM HTTP v1 API and token
//! endpoint (`wiremock`: the real provider cannot be reached from here).

use std::time::Duration;

use crate::harness::{statuses, Stack, Tiers, FCM_SEND};
use serde_json::json;
use wiremock::{
    matchers::{body_partial_json, method, path},
    Mock, MockServer, ResponseTemplate,
};

const T: Duration = Duration::from_secs(60);

async fn push_template(s: &Stack) {
    s.create_template(json!({
        "code": "order_shipped",
        "channel": "push",
        "default_language": "en",
        "name": "Order shipped",
        "content": {"en": {"title": "Order {{ order }} shipped", "body": "It arrives {{ when }}", "image_url": "https://img.test/box.png", "link_url": "https://shop.test/o/{{ order }}"}}
    }))
    .await;
}

async fn add_device(s: &Stack, user: uuid::Uuid, token: &str) {
    register(s, user, json!({"token": token, "platform": "ios"})).await;
}

/// Registers a device; returns its id.
async fn register(s: &Stack, user: uuid::Uuid, body: serde_json::Value) -> String {
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/v1/users/{user}/push-tokens", s.user_svc.url()),
            Some(&body),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["data"]["id"].as_str().unwrap().to_string()
}

/// The user's devices as user-svc lists them.
async fn devices_of(s: &Stack, user: uuid::Uuid) -> Vec<serde_json::Value> {
    let (status, v) = s
        .call(
            reqwest::Method::GET,
            format!("{}/api/v1/users/{user}/push-tokens", s.user_svc.url()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

/// A browser's Web Push subscription (keys of the right sizes).
fn web_subscription() -> serde_json::Value {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let mut point = vec![0x04_u8];
    point.extend([0x2a_u8; 64]);
    json!({
        "endpoint": "https://push.example.net/wpush/v2/gone-subscription",
        "keys": {"p256dh": URL_SAFE_NO_PAD.encode(point), "auth": URL_SAFE_NO_PAD.encode([7_u8; 16])}
    })
}

#[tokio::test]
async fn an_android_an_ios_and_a_web_device_each_get_it_and_a_gone_one_is_removed_while_the_others_are_delivered() {
    let fcm = MockServer::start().await;
    for token in ["android-device-token", "ios-device-token"] {
        Mock::given(method("POST"))
            .and(path("/v1/messages:send"))
            .and(body_partial_json(json!({"message": {"token": token}})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"name": format!("projects/p/messages/{token}")})),
            )
            .expect(1)
            .mount(&fcm)
            .await;
    }

    let mut s = Stack::start(Tiers::default()).await;
    push_template(&s).await;
    let user = s
        .create_user("three-devices@example.com", None, json!({"email": false, "push": true}))
        .await;
    let android = register(
        &s,
        user,
        json!({"token": "android-device-token", "platform": "android"}),
    )
    .await;
    let ios = register(&s, user, json!({"token": "ios-device-token", "platform": "ios"})).await;
    let web = register(&s, user, json!({"token": web_subscription(), "platform": "web"})).await;
    let web_token = devices_of(&s, user)
        .await
        .into_iter()
        .find(|d| d["id"] == web.as_str())
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The push service says the subscription is gone (`410 Gone`).
    Mock::given(method("POST"))
        .and(path("/v1/messages:send"))
        .and(body_partial_json(json!({"message": {"token": web_token}})))
        .respond_with(ResponseTemplate::new(410).set_body_string("push subscription has unsubscribed or expired."))
        .expect(1)
        .mount(&fcm)
        .await;
    s.add_push_worker(&fcm).await;

    let id = s
        .send(
            "push",
            user,
            "order_shipped",
            json!({"order": "C-3", "when": "soon"}),
            "push-3",
            5,
        )
        .await;
    let n = s.wait_status(id, "sent", T).await;
    let report = n["last_error"].as_str().unwrap_or_default().to_string();
    for expected in [
        format!("android fcm {android}: sent"),
        format!("ios fcm {ios}: sent"),
        format!("web webpush {web}: gone, removed"),
    ] {
        assert!(report.contains(&expected), "the status says `{expected}`: {n}");
    }

    let remaining = test_support::wait_for("the gone device removed from user-svc", T, || async {
        let devices = devices_of(&s, user).await;
        let used = devices.iter().all(|d| d["last_used_at"].is_string());
        (devices.len() == 2 && used).then_some(devices)
    })
    .await;
    let mut ids: Vec<&str> = remaining.iter().map(|d| d["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = [android.as_str(), ios.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "the delivered devices stay, marked used");
    fcm.verify().await;
}

#[tokio::test]
async fn a_push_reaches_every_device_and_an_unregistered_one_does_not_fail_the_rest() {
    let fcm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FCM_SEND))
        .and(body_partial_json(json!({"message": {"token": "good-device"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "projects/p/messages/1"})))
        .expect(1)
        .mount(&fcm)
        .await;
    Mock::given(method("POST"))
        .and(path(FCM_SEND))
        .and(body_partial_json(json!({"message": {"token": "stale-device"}})))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"status": "NOT_FOUND", "message": "not found", "details": [{"errorCode": "UNREGISTERED"}]}})))
        .expect(1)
        .mount(&fcm)
        .await;

    let mut s = Stack::start(Tiers::default()).await;
    push_template(&s).await;
    let user = s
        .create_user(
            "phone@example.com",
            Some("good-device"),
            json!({"email": false, "push": true}),
        )
        .await;
    add_device(&s, user, "stale-device").await;
    s.add_push_worker(&fcm).await;

    let id = s
        .send(
            "push",
            user,
            "order_shipped",
            json!({"order": "A-1", "when": "tomorrow"}),
            "push-1",
            9,
        )
        .await;
    let n = s.wait_status(id, "sent", T).await;
    assert!(
        n["last_error"].as_str().unwrap_or_default().contains("404"),
        "the rejected device is reported: {n}"
    );
    let requests = fcm.received_requests().await.unwrap();
    let good = requests
        .iter()
        .filter(|r| r.url.path() == FCM_SEND)
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .find(|b| b["message"]["token"] == "good-device")
        .unwrap();
    assert_eq!(good["message"]["notification"]["title"], "Order A-1 shipped");
    assert_eq!(good["message"]["notification"]["body"], "It arrives tomorrow");
    assert_eq!(good["message"]["notification"]["image"], "https://img.test/box.png");
    fcm.verify().await;
}

#[tokio::test]
async fn a_partial_failure_retries_only_the_device_that_failed() {
    let fcm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"message": {"token": "steady-device"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "m/1"})))
        .expect(1)
        .mount(&fcm)
        .await;
    // The flaky device fails once with 503, then accepts.
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"message": {"token": "flaky-device"}})))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fcm)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"message": {"token": "flaky-device"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "m/2"})))
        .with_priority(2)
        .mount(&fcm)
        .await;

    let mut s = Stack::start(Tiers {
        first_delay_ms: 500,
        first_attempts: 3,
        second_delay_ms: 1000,
        second_attempts: 1,
    })
    .await;
    push_template(&s).await;
    let user = s
        .create_user(
            "two@example.com",
            Some("steady-device"),
            json!({"email": false, "push": true}),
        )
        .await;
    add_device(&s, user, "flaky-device").await;
    s.add_push_worker(&fcm).await;

    let id = s
        .send(
            "push",
            user,
            "order_shipped",
            json!({"order": "B-2", "when": "today"}),
            "push-2",
            5,
        )
        .await;
    let n = s.wait_status(id, "sent", T).await;
    assert_eq!(statuses(&n), vec!["pending", "retrying", "sent"]);
    let to = |t: &str| {
        let t = t.to_string();
        move |r: &&wiremock::Request| {
            r.url.path() == FCM_SEND
                && serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["message"]["token"] == t.as_str()
        }
    };
    let requests = fcm.received_requests().await.unwrap();
    assert_eq!(
        requests.iter().filter(to("steady-device")).count(),
        1,
        "the device that got it is not sent to again"
    );
    assert_eq!(requests.iter().filter(to("flaky-device")).count(), 2);
    fcm.verify().await;
}
