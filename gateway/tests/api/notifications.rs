//! `POST /api/v1/notifications/` accepting, and `GET /api/v1/notifications/{id}` reading.

use notify_kit::auth::{SCOPE_READ, SCOPE_SEND};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use test_support::{service_token, user_token};

use crate::helpers::{assert_error_envelope, body, sender, spawn_app};

#[tokio::test]
async fn a_valid_request_is_accepted_with_its_row_outbox_and_key_in_one_go() {
    let app = spawn_app().await;
    let (status, headers, v) = app
        .client
        .post(format!("{}/api/v1/notifications/", app.address))
        .bearer_auth(sender())
        .header("x-correlation-id", "corr-abc-123")
        .json(&body("r1"))
        .send()
        .await
        .map(|r| (r.status(), r.headers().clone(), r))
        .map(|(s, h, r)| (s, h, futures::executor::block_on(r.json::<Value>()).unwrap()))
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-correlation-id"], "corr-abc-123");
    assert_eq!(v["success"], true);
    assert!(v["meta"].is_null());
    assert_eq!(v["data"]["status"], "pending");
    assert_eq!(v["data"]["request_id"], "r1");
    let id: uuid::Uuid = v["data"]["notification_id"].as_str().unwrap().parse().unwrap();

    let row = sqlx::query("SELECT status, correlation_id, caller FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("status"), "pending");
    assert_eq!(row.get::<String, _>("correlation_id"), "corr-abc-123");
    assert_eq!(row.get::<String, _>("caller"), "billing");
    let outbox = sqlx::query("SELECT topic, message_key, headers, payload FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(outbox.get::<String, _>("topic"), "notifications.email");
    assert_eq!(
        outbox.get::<String, _>("message_key"),
        "6c1b2a3d-0000-4000-8000-000000000001"
    );
    let h: Value = outbox.get("headers");
    assert_eq!(h["x-correlation-id"], "corr-abc-123");
    assert_eq!(h["notification-id"], id.to_string());
    assert!(h["traceparent"].as_str().unwrap().starts_with("00-"));
    let p: Value = outbox.get("payload");
    assert_eq!(p["notification_id"], id.to_string());
    assert_eq!(p["caller"], "billing");
    assert_eq!(app.count("idempotency_keys").await, 1);
}

#[tokio::test]
async fn high_priority_notifications_go_to_the_priority_topic() {
    let app = spawn_app().await;
    let mut b = body("urgent-1");
    b["priority"] = json!(9);
    b["notification_type"] = json!("push");
    let (status, _, _) = app.post(Some(&sender()), &b).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let topic: String = sqlx::query("SELECT topic FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get("topic");
    assert_eq!(topic, "notifications.push.priority");
}

#[tokio::test]
async fn an_unknown_or_malformed_id_is_not_found() {
    let app = spawn_app().await;
    let token = service_token("billing", &[SCOPE_READ]);
    let (status, v) = app
        .get(&format!("/api/v1/notifications/{}", uuid::Uuid::new_v4()), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    let (status, v) = app.get("/api/v1/notifications/not-a-uuid", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
}

#[tokio::test]
async fn the_sender_reads_status_and_history_but_another_service_cannot() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post(Some(&sender()), &body("r1")).await;
    let id = accepted["data"]["notification_id"].as_str().unwrap();
    let path = format!("/api/v1/notifications/{id}");

    let (status, v) = app.get(&path, Some(&sender())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["success"], true);
    assert_eq!(v["data"]["status"], "pending");
    assert_eq!(v["data"]["history"][0]["status"], "pending");
    assert_eq!(v["data"]["notification_type"], "email");

    let stranger = service_token("marketing", &[SCOPE_SEND]);
    let (status, _) = app.get(&path, Some(&stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let recipient = user_token("6c1b2a3d-0000-4000-8000-000000000001");
    let (status, _) = app.get(&path, Some(&recipient)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
