//! The projection against a real database: idempotent, monotonic, every event in the history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use notify_store::state_machine::{apply, Applied, Status, StatusEvent};
use sqlx::{PgPool, Row};
use test_support::TestDb;
use uuid::Uuid;

async fn notification(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO notifications (id, caller, request_id, user_id, channel, template_code, variables,
             priority, metadata, correlation_id, status, created_at, updated_at)
         VALUES ($1, 'svc', $2, $3, 'email', 'welcome', '{}', 5, '{}', 'c', 'pending', now(), now())",
    )
    .bind(id)
    .bind(id.to_string())
    .bind(Uuid::new_v4())
    .execute(pool)
    .await
    .unwrap();
    id
}

fn event(id: Uuid, status: Status, attempt: i32, secs: i64) -> StatusEvent<'static> {
    StatusEvent {
        notification_id: id.into(),
        status,
        attempt,
        occurred_at: Utc::now() + Duration::seconds(secs),
        error: None,
        provider: Some("smtp"),
        template_version: None,
        language: None,
        source: "worker",
    }
}

async fn current(pool: &PgPool, id: Uuid) -> (String, i32, i64) {
    let r = sqlx::query(
        "SELECT status, attempts, (SELECT count(*) FROM notification_status_history h WHERE h.notification_id = n.id) AS h
           FROM notifications n WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    (r.get("status"), r.get("attempts"), r.get("h"))
}

#[tokio::test]
async fn applying_the_same_event_twice_changes_nothing_the_second_time() {
    let db = TestDb::new().await;
    let id = notification(&db.pool).await;
    let ev = event(id, Status::Sent, 1, 0);
    assert_eq!(apply(&db.pool, &ev).await.unwrap(), Applied::Changed);
    assert_eq!(apply(&db.pool, &ev).await.unwrap(), Applied::Duplicate);
    assert_eq!(current(&db.pool, id).await, ("sent".into(), 1, 1));
}

#[tokio::test]
async fn a_late_retry_is_recorded_but_does_not_overwrite_sent() {
    let db = TestDb::new().await;
    let id = notification(&db.pool).await;
    apply(&db.pool, &event(id, Status::Sent, 2, 1)).await.unwrap();
    assert_eq!(
        apply(&db.pool, &event(id, Status::Retrying, 1, 0)).await.unwrap(),
        Applied::RecordedOnly
    );
    assert_eq!(current(&db.pool, id).await, ("sent".into(), 2, 2));
    let applied: Vec<bool> =
        sqlx::query("SELECT applied FROM notification_status_history WHERE notification_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("applied"))
            .collect();
    assert_eq!(applied, vec![true, false]);
}

#[tokio::test]
async fn a_bounce_after_delivery_is_recorded_as_bounced() {
    let db = TestDb::new().await;
    let id = notification(&db.pool).await;
    for (s, secs) in [(Status::Sent, 0), (Status::Delivered, 1), (Status::Bounced, 2)] {
        assert_eq!(apply(&db.pool, &event(id, s, 1, secs)).await.unwrap(), Applied::Changed);
    }
    assert_eq!(current(&db.pool, id).await.0, "bounced");
    assert_eq!(
        apply(&db.pool, &event(id, Status::Delivered, 1, 3)).await.unwrap(),
        Applied::RecordedOnly
    );
}

#[tokio::test]
async fn an_event_for_an_unknown_notification_is_reported_as_such() {
    let db = TestDb::new().await;
    assert_eq!(
        apply(&db.pool, &event(Uuid::new_v4(), Status::Sent, 1, 0))
            .await
            .unwrap(),
        Applied::UnknownNotification
    );
}

#[tokio::test]
async fn retries_move_the_status_only_forward_and_a_replay_after_the_dead_letter_succeeds() {
    let db = TestDb::new().await;
    let id = notification(&db.pool).await;
    let mut ev = event(id, Status::Retrying, 2, 0);
    ev.error = Some("451 try later");
    assert_eq!(apply(&db.pool, &ev).await.unwrap(), Applied::Changed);
    // An older attempt's retry, arriving late, is history only.
    assert_eq!(
        apply(&db.pool, &event(id, Status::Retrying, 1, 1)).await.unwrap(),
        Applied::RecordedOnly
    );
    assert_eq!(current(&db.pool, id).await, ("retrying".into(), 2, 2));
    let mut ev = event(id, Status::DeadLettered, 3, 2);
    ev.error = Some("exhausted");
    assert_eq!(apply(&db.pool, &ev).await.unwrap(), Applied::Changed);
    let mut ev = event(id, Status::Sent, 4, 3);
    ev.template_version = Some(7);
    ev.language = Some("fr");
    assert_eq!(apply(&db.pool, &ev).await.unwrap(), Applied::Changed);
    let r =
        sqlx::query("SELECT status, attempts, last_error, template_version, language FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(r.get::<String, _>("status"), "sent");
    assert_eq!(r.get::<i32, _>("attempts"), 4);
    // The last error stays when a later event carries none.
    assert_eq!(r.get::<Option<String>, _>("last_error").as_deref(), Some("exhausted"));
    assert_eq!(r.get::<Option<i32>, _>("template_version"), Some(7));
    assert_eq!(r.get::<Option<String>, _>("language").as_deref(), Some("fr"));
    // Skipped is final: nothing moves it.
    let other = notification(&db.pool).await;
    assert_eq!(
        apply(&db.pool, &event(other, Status::Skipped, 0, 0)).await.unwrap(),
        Applied::Changed
    );
    assert_eq!(
        apply(&db.pool, &event(other, Status::Sent, 1, 1)).await.unwrap(),
        Applied::RecordedOnly
    );
    assert_eq!(current(&db.pool, other).await, ("skipped".into(), 0, 2));
}
