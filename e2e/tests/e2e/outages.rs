//! Dependency outages that hit every record: the worker holds its records in Kafka instead of
//! spending their retries, and resumes by itself when the dependency is back.

use std::time::{Duration, Instant};

use crate::harness::{counts, statuses, Stack, Tiers};
use serde_json::json;
use test_support::redis::PrivateRedis;

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_ledger_outage_longer_than_the_retry_schedule_dead_letters_nothing_and_delivers_everything_after() {
    // The whole retry schedule takes 0.4 s: 1 attempt after 200 ms, 1 after another 200 ms.
    let tiers = Tiers {
        first_delay_ms: 200,
        first_attempts: 1,
        second_delay_ms: 200,
        second_attempts: 1,
    };
    let mut redis = PrivateRedis::start();
    let mut s = Stack::start(tiers).await;
    s.welcome_template().await;
    let user = s
        .create_user("grace@example.com", None, json!({"email": true, "push": false}))
        .await;
    // Only the worker uses the private Redis (its ledger and its lookup cache).
    let w = s.add_email_worker_env(&[("APP_REDIS_URL", redis.url())]).await;
    let vars = json!({"name": "Grace", "link": "https://x.test"});
    let first = s.send("email", user, "welcome_email", vars.clone(), "before", 1).await;
    s.wait_status(first, "sent", T).await;
    assert_eq!(s.worker_paused(w).await, Some(0.0));

    redis.stop();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.send("email", user, "welcome_email", vars.clone(), &format!("during-{i}"), 1)
                .await,
        );
    }
    s.wait_worker_paused(w, true, T).await;
    // The outage lasts ten times the retry schedule; meanwhile nothing moves.
    let paused_at = Instant::now();
    while paused_at.elapsed() < Duration::from_secs(4) {
        for id in &ids {
            let n = s.notification(*id).await;
            assert_eq!(statuses(&n), vec!["pending".to_string()], "no attempt is spent: {n}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(s.smtp.messages().len(), 1, "nothing sent while the ledger is down");

    redis.restart();
    for id in &ids {
        let n = s.wait_status(*id, "sent", T).await;
        assert_eq!(
            statuses(&n),
            vec!["pending".to_string(), "sent".to_string()],
            "delivered on its first attempt, never retried or dead-lettered: {n}"
        );
    }
    let ids_sent = s.smtp.message_ids();
    assert_eq!(ids_sent.len(), 6, "each notification exactly once: {ids_sent:?}");
    assert_eq!(counts(&ids_sent).len(), 6, "no duplicate: {ids_sent:?}");
    s.wait_worker_paused(w, false, T).await;
}
