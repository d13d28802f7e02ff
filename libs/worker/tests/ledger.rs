//! The delivery ledger against the real Redis on 127.0.0.1:6379 (each test under a key prefix
//! of its own).

use std::time::Duration;

use notify_schemas::{ids::NotificationId, Channel};
use notify_worker::ledger::Ledger;

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix() -> String {
    format!("test-ledger-{}:", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_recorded_delivery_is_found_for_its_target_only() {
    let ledger = Ledger::connect(REDIS, &prefix(), Duration::from_secs(60))
        .await
        .unwrap();
    let id = NotificationId::new_v7();
    assert!(!ledger.delivered(id, Channel::Push, "token-a").await.unwrap());
    ledger.record(id, Channel::Push, "token-a").await.unwrap();
    assert!(ledger.delivered(id, Channel::Push, "token-a").await.unwrap());
    assert!(
        !ledger.delivered(id, Channel::Push, "token-b").await.unwrap(),
        "another device"
    );
    assert!(
        !ledger.delivered(id, Channel::Email, "token-a").await.unwrap(),
        "another channel"
    );
    let other = NotificationId::new_v7();
    assert!(
        !ledger.delivered(other, Channel::Push, "token-a").await.unwrap(),
        "another notification"
    );
}

#[tokio::test]
async fn the_key_names_no_address_and_expires_after_the_ttl() {
    let prefix = prefix();
    let ledger = Ledger::connect(REDIS, &prefix, Duration::from_secs(90)).await.unwrap();
    let id = NotificationId::new_v7();
    let key = ledger.key(id, Channel::Email, "someone@example.org");
    assert!(key.starts_with(&format!("{prefix}ledger:{id}:email:")), "{key}");
    assert!(!key.contains("someone"), "the target is hashed: {key}");
    ledger.record(id, Channel::Email, "someone@example.org").await.unwrap();
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((1..=90).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    // Nothing listens on port 1.
    let started = std::time::Instant::now();
    let result = Ledger::connect("redis://127.0.0.1:1", &prefix(), Duration::from_secs(60)).await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_ledger_answers_again_once_redis_is_back() {
    let mut redis = test_support::redis::PrivateRedis::start();
    let ledger = Ledger::connect(&redis.url(), &prefix(), Duration::from_secs(60))
        .await
        .unwrap();
    let id = NotificationId::new_v7();
    ledger.record(id, Channel::Email, "a@example.org").await.unwrap();
    redis.stop();
    assert!(ledger.delivered(id, Channel::Email, "a@example.org").await.is_err());
    assert!(ledger.delivered(id, Channel::Email, "a@example.org").await.is_err());
    redis.restart();
    // An empty Redis: the entry is gone, but the ledger answers.
    let answered = test_support::wait_for("the ledger to answer again", Duration::from_secs(30), || async {
        ledger.delivered(id, Channel::Email, "a@example.org").await.ok()
    })
    .await;
    assert!(!answered);
}
