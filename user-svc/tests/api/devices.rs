//! Devices: registration checked per platform and provider, moves only by the new owner and
//! recorded, listing, deletion, and what the push worker reports (used, gone).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;
use test_support::service_token;

use crate::helpers::{
    assert_error_envelope, detail_fields, device_of, push_worker, reader, spawn_app, writer, TestApp,
};

/// A Web Push subscription as a browser gives it (`PushSubscription.toJSON()`).
fn subscription(endpoint: &str) -> Value {
    let mut point = vec![0x04_u8];
    point.extend([0x11_u8; 64]);
    json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {"p256dh": URL_SAFE_NO_PAD.encode(point), "auth": URL_SAFE_NO_PAD.encode([0x22_u8; 16])}
    })
}

async fn register(app: &TestApp, user: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/users/{user}/push-tokens"), Some(token), body)
        .await
}

async fn devices_of(app: &TestApp, user: &str) -> Vec<Value> {
    let (status, v) = app
        .get(&format!("/api/v1/users/{user}/push-tokens"), Some(&reader()))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["data"].as_array().unwrap().clone()
}

/// One `device_events` row: `(event, from_user, to_user, actor, reason)`.
type Event = (String, Option<String>, Option<String>, String, Option<String>);

fn event(kind: &str, from: Option<&str>, to: Option<&str>, actor: &str, reason: Option<&str>) -> Event {
    (
        kind.into(),
        from.map(Into::into),
        to.map(Into::into),
        actor.into(),
        reason.map(Into::into),
    )
}

/// A device's history, oldest first.
async fn events_of(app: &TestApp, device_id: &str) -> Vec<Event> {
    sqlx::query(
        "SELECT event, from_user::text, to_user::text, actor, reason FROM device_events
          WHERE device_id = $1::uuid ORDER BY id",
    )
    .bind(device_id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

async fn login_token(app: &TestApp, email: &str) -> String {
    let (status, v) = app.login(email, "correct horse battery staple").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["data"]["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn each_platform_gets_its_provider_and_its_token_shape_is_checked() {
    let app = spawn_app().await;
    let id = app.create_user("shapes@example.com").await;

    for (body, platform, provider) in [
        (
            json!({"token": "ios-fcm-token:APA91b_x-y.z", "platform": "ios"}),
            "ios",
            "fcm",
        ),
        (
            json!({"token": subscription("https://push.example.net/wpush/v2/abc"), "platform": "web"}),
            "web",
            "webpush",
        ),
        (
            json!({"token": "1f0e9a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "platform": "android", "provider": "onesignal"}),
            "android",
            "onesignal",
        ),
    ] {
        let (status, v) = register(&app, &id, &writer(), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}: {v}");
        assert_eq!(
            (v["data"]["platform"].as_str(), v["data"]["provider"].as_str()),
            (Some(platform), Some(provider))
        );
        assert!(v["data"]["id"]
            .as_str()
            .is_some_and(|i| uuid::Uuid::try_parse(i).is_ok()));
        assert!(v["data"]["last_used_at"].is_null());
    }
    let web = devices_of(&app, &id)
        .await
        .into_iter()
        .find(|d| d["platform"] == "web")
        .unwrap();
    let stored: Value = serde_json::from_str(web["token"].as_str().unwrap()).unwrap();
    assert_eq!(stored["endpoint"], "https://push.example.net/wpush/v2/abc");

    let sub = subscription("https://push.example.net/x");
    let mut short_key = sub.clone();
    short_key["keys"]["p256dh"] = json!(URL_SAFE_NO_PAD.encode([0x04_u8; 33]));
    let mut long_auth = sub.clone();
    long_auth["keys"]["auth"] = json!(URL_SAFE_NO_PAD.encode([1_u8; 32]));
    let mut plain_http = sub.clone();
    plain_http["endpoint"] = json!("http://push.example.net/x");
    let mut no_keys = sub.clone();
    no_keys.as_object_mut().unwrap().remove("keys");
    for (body, field) in [
        (json!({"token": short_key, "platform": "web"}), "token.keys.p256dh"),
        (json!({"token": long_auth, "platform": "web"}), "token.keys.auth"),
        (json!({"token": plain_http, "platform": "web"}), "token.endpoint"),
        (json!({"token": no_keys, "platform": "web"}), "token.keys"),
        (json!({"token": "just-a-string-token", "platform": "web"}), "token"),
        (json!({"token": "has a space in it", "platform": "android"}), "token"),
        (json!({"token": "short", "platform": "ios"}), "token"),
        (
            json!({"token": "not-a-uuid-at-all", "platform": "ios", "provider": "onesignal"}),
            "token",
        ),
        (
            json!({"token": sub, "platform": "android", "provider": "webpush"}),
            "provider",
        ),
        (
            json!({"token": "fcm-token-0001", "platform": "android", "provider": "apns"}),
            "provider",
        ),
    ] {
        let (status, v) = register(&app, &id, &writer(), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_error_envelope(&v, "validation_failed");
        assert_eq!(detail_fields(&v), [field], "{body}");
    }
    assert_eq!(devices_of(&app, &id).await.len(), 4, "no bad device was stored");
}

#[tokio::test]
async fn a_token_moves_to_another_user_only_for_its_new_owner_and_the_move_is_recorded() {
    let app = spawn_app().await;
    let a = app.create_user("old-owner@example.com").await;
    let b = app.create_user("new-owner@example.com").await;
    let shared = json!({"token": "shared-tablet-token", "platform": "android"});
    let (status, v) = register(&app, &a, &writer(), &shared).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let device_id = v["data"]["id"].as_str().unwrap().to_string();

    // A service cannot move it, however privileged: nothing changes.
    let (status, v) = register(&app, &b, &writer(), &shared).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_error_envelope(&v, "conflict");
    assert!(devices_of(&app, &a).await.iter().any(|d| d["id"] == device_id.as_str()));
    // Nor can another user's login token: it only reaches its own record.
    let as_a = login_token(&app, "old-owner@example.com").await;
    let (status, _) = register(&app, &b, &as_a, &shared).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The new owner, signed in, takes it.
    let as_b = login_token(&app, "new-owner@example.com").await;
    let (status, v) = register(&app, &b, &as_b, &shared).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["id"], device_id.as_str(), "the same device, moved");
    assert!(devices_of(&app, &a).await.iter().all(|d| d["id"] != device_id.as_str()));
    assert!(devices_of(&app, &b).await.iter().any(|d| d["id"] == device_id.as_str()));

    let events = events_of(&app, &device_id).await;
    assert_eq!(
        events,
        vec![
            event("registered", None, Some(&a), "service:onboarding", None),
            event("moved", Some(&a), Some(&b), &format!("user:{b}"), None),
        ]
    );
}

#[tokio::test]
async fn a_new_user_cannot_take_a_token_another_user_has() {
    let app = spawn_app().await;
    app.create_user("first@example.com").await;
    let body = json!({
        "name": "Second", "email": "second@example.com", "password": "correct horse battery staple",
        "preferences": {"email": true, "push": true}, "push_token": device_of("first@example.com")
    });
    let (status, v) = app.post("/api/v1/users/", Some(&writer()), &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("push_token"), "{v}");
    let users: i64 = sqlx::query("SELECT count(*) FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "nothing was written");
}

#[tokio::test]
async fn a_device_is_deleted_by_its_id_or_its_token_and_the_removal_is_recorded() {
    let app = spawn_app().await;
    let id = app.create_user("deleter@example.com").await;
    let (_, v) = register(
        &app,
        &id,
        &writer(),
        &json!({"token": "second-device-token", "platform": "ios"}),
    )
    .await;
    let second = v["data"]["id"].as_str().unwrap().to_string();
    let first = devices_of(&app, &id).await[0]["id"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    let path = |key: &str| format!("/api/v1/users/{id}/push-tokens/{key}");
    let (status, v) = app.call(Method::DELETE, &path(&second), Some(&writer()), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["id"], second.as_str());
    let (status, _) = app
        .call(
            Method::DELETE,
            &path(&device_of("deleter@example.com")),
            Some(&writer()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(devices_of(&app, &id).await.is_empty());
    let (status, v) = app.call(Method::DELETE, &path(&second), Some(&writer()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");

    let events = events_of(&app, &second).await;
    assert_eq!(events.last().unwrap().0, "removed");
    assert_eq!(events.last().unwrap().1.as_deref(), Some(id.as_str()));
    assert_eq!(events.last().unwrap().3, "service:onboarding");
}

#[tokio::test]
async fn the_push_worker_marks_devices_used_and_removes_a_gone_one_with_its_reason() {
    let app = spawn_app().await;
    let id = app.create_user("worker-target@example.com").await;
    let token = device_of("worker-target@example.com");
    let device_id = devices_of(&app, &id).await[0]["id"].as_str().unwrap().to_string();

    let (status, v) = app
        .post(
            "/api/v1/devices/used",
            Some(&push_worker()),
            &json!({"device_ids": [device_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["updated"], 1);
    assert!(devices_of(&app, &id).await[0]["last_used_at"].is_string());

    // Neither a user-writing service nor an end user may do it.
    let as_user = login_token(&app, "worker-target@example.com").await;
    for caller in [writer(), as_user, service_token("other", &["users:read"])] {
        let (status, _) = app
            .call(
                Method::DELETE,
                "/api/v1/devices",
                Some(&caller),
                Some(&json!({"token": token, "reason": "fcm: UNREGISTERED"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, v) = app
        .call(
            Method::DELETE,
            "/api/v1/devices",
            Some(&push_worker()),
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["reason"]);

    let (status, v) = app
        .call(
            Method::DELETE,
            "/api/v1/devices",
            Some(&push_worker()),
            Some(&json!({"token": token, "reason": "fcm: UNREGISTERED"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["device_id"], device_id.as_str());
    assert!(devices_of(&app, &id).await.is_empty());
    let gone = events_of(&app, &device_id).await.pop().unwrap();
    assert_eq!(
        gone,
        event(
            "gone",
            Some(&id),
            None,
            "service:push-worker",
            Some("fcm: UNREGISTERED")
        )
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/devices",
            Some(&push_worker()),
            Some(&json!({"token": token, "reason": "fcm: UNREGISTERED"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already removed");
}
