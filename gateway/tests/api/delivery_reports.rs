//! `POST /api/v1/{channel}/status/`: delivery reports queued for the status projector.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use test_support::service_token;

use crate::helpers::{body, sender, spawn_app, TestApp};

async fn report(app: &TestApp, channel: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(format!("{}/api/v1/{channel}/status/", app.address))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn reporter() -> String {
    service_token("mail-provider", &[notify_kit::auth::SCOPE_STATUS_WRITE])
}

#[tokio::test]
async fn a_delivery_report_is_queued_for_the_status_projector() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post(Some(&sender()), &body("r1")).await;
    let id = accepted["data"]["notification_id"].as_str().unwrap();
    let (status, v) = report(
        &app,
        "email",
        &reporter(),
        &json!({"notification_id": id, "status": "delivered", "timestamp": "2025-11-12T10:00:00Z", "error": null}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["data"]["status"], "delivered");
    let row =
        sqlx::query("SELECT topic, message_key, event_type, payload FROM outbox WHERE topic = 'notifications.status'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>("message_key"), id);
    assert_eq!(
        row.get::<String, _>("event_type"),
        "io.notify.events.NotificationStatusChanged"
    );
    let p: Value = row.get("payload");
    assert_eq!(p["status"], "delivered");
    assert_eq!(p["source"], "provider-report");
    assert_eq!(p["occurred_at"], 1_762_941_600_000_i64);
}

#[tokio::test]
async fn delivery_reports_are_validated() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post(Some(&sender()), &body("r1")).await;
    let id = accepted["data"]["notification_id"].as_str().unwrap();

    let (status, _) = report(
        &app,
        "email",
        &sender(),
        &json!({"notification_id": id, "status": "delivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "needs notifications:status");
    let (status, _) = report(
        &app,
        "sms",
        &reporter(),
        &json!({"notification_id": id, "status": "delivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown channel");
    let (status, v) = report(
        &app,
        "email",
        &reporter(),
        &json!({"notification_id": id, "status": "opened", "timestamp": "yesterday", "notificationId": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["notificationId", "status", "timestamp"]);
    let (status, _) = report(
        &app,
        "email",
        &reporter(),
        &json!({"notification_id": uuid::Uuid::new_v4(), "status": "delivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown notification");
    let (status, v) = report(
        &app,
        "push",
        &reporter(),
        &json!({"notification_id": id, "status": "delivered"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an email notification reported on the push channel: {v}"
    );
    let n: i64 = sqlx::query("SELECT count(*) AS n FROM outbox WHERE topic = 'notifications.status'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 0, "nothing was queued for invalid reports");
}
