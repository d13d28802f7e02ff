//! `request_id`: a repeated request replays, a reused one with another body conflicts.

use std::time::Duration;

use notify_kit::auth::SCOPE_SEND;
use reqwest::StatusCode;
use serde_json::json;
use test_support::service_token;

use crate::helpers::{assert_error_envelope, body, sender, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_repeated_request_replays_the_first_answer() {
    let app = spawn_app().await;
    let (s1, h1, first) = app.post(Some(&sender()), &body("same-key")).await;
    let (s2, h2, second) = app.post(Some(&sender()), &body("same-key")).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert_eq!(s2, StatusCode::ACCEPTED);
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(first["data"]["notification_id"], second["data"]["notification_id"]);
    assert_eq!(app.count("notifications").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn a_reused_request_id_with_another_body_is_a_conflict() {
    let app = spawn_app().await;
    app.post(Some(&sender()), &body("k1")).await;
    let mut other = body("k1");
    other["variables"]["name"] = json!("Jane");
    let (status, _, v) = app.post(Some(&sender()), &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_envelope(&v, "conflict");
    assert!(v["message"].as_str().unwrap().contains("k1"));
    assert_eq!(app.count("notifications").await, 1);
}

#[tokio::test]
async fn concurrent_duplicates_create_exactly_one_notification() {
    let app = spawn_app().await;
    let token = sender();
    let b = body("burst-1");
    let results = futures::future::join_all((0..24).map(|_| app.post(Some(&token), &b))).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(s, _, v)| {
            assert_eq!(*s, StatusCode::ACCEPTED, "{v}");
            v["data"]["notification_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every duplicate got the same notification id");
    assert_eq!(app.count("notifications").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn request_ids_are_scoped_to_the_caller() {
    let app = spawn_app().await;
    let other = service_token("marketing", &[SCOPE_SEND]);
    let (_, _, a) = app.post(Some(&sender()), &body("shared")).await;
    let (_, _, b) = app.post(Some(&other), &body("shared")).await;
    assert_ne!(a["data"]["notification_id"], b["data"]["notification_id"]);
    assert_eq!(app.count("notifications").await, 2);
}

#[tokio::test]
async fn an_expired_idempotency_key_no_longer_deduplicates() {
    let app = spawn_app_with(|s| s.idempotency_ttl = Duration::ZERO).await;
    let (_, _, a) = app.post(Some(&sender()), &body("short-lived")).await;
    let (_, h, b) = app.post(Some(&sender()), &body("short-lived")).await;
    assert!(h.get("idempotent-replayed").is_none());
    assert_ne!(a["data"]["notification_id"], b["data"]["notification_id"]);
    assert_eq!(app.count("notifications").await, 2);
    assert_eq!(app.count("idempotency_keys").await, 1);
}
