//! Tests that run the real binaries: a relay SIGKILLed mid-batch, and one notification
//! followed from HTTP to a Kafka record.

use std::{collections::HashMap, time::Duration};

use crate::common::*;
use notify_schemas::Channel;
use serde_json::{json, Value};
use test_support::{
    kafka_bootstrap,
    process::{free_port, Proc},
    registry_url, topic_prefix, TestDb, JWT_SECRET,
};
use uuid::Uuid;

fn relay_env(db_url: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP_DATABASE_URL", db_url.to_string()),
        ("APP_KAFKA_BOOTSTRAP", kafka_bootstrap()),
        ("APP_KAFKA_TOPIC_PREFIX", prefix.to_string()),
        ("APP_KAFKA_PARTITIONS", "3".into()),
        ("APP_SCHEMA_REGISTRY_URL", registry_url()),
        ("APP_PORT", free_port().to_string()),
        ("APP_RELAY_BATCH_SIZE", "100".into()),
        ("APP_RELAY_POLL_INTERVAL_MS", "200".into()),
        ("APP_RELAY_REBALANCE_INTERVAL_MS", "300".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

#[tokio::test]
async fn a_relay_killed_mid_batch_and_restarted_loses_nothing() {
    test_support::ensure_schemas().await;
    let db = TestDb::new().await;
    let prefix = topic_prefix();
    const N: usize = 3000;
    let users: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let mut order = HashMap::new();
    for seq in 0..N {
        let id = enqueue(&db.pool, users[seq % users.len()], Channel::Email, 5, seq).await;
        order.insert(id.to_string(), seq);
    }

    let mut kills = 0;
    for round in 1..=2 {
        let mut relay = Proc::spawn("outbox-relay", &relay_env(&db.url, &prefix));
        let before = published_count(&db.pool).await;
        test_support::wait_for("the relay to make progress", Duration::from_secs(60), || async {
            (published_count(&db.pool).await > before).then_some(())
        })
        .await;
        relay.kill();
        kills += 1;
        let after = published_count(&db.pool).await;
        eprintln!("round {round}: killed with {after}/{N} rows marked published");
        assert!(after < N as i64, "the kill must land before the backlog is drained");
    }
    let _relay = Proc::spawn("outbox-relay", &relay_env(&db.url, &prefix));
    wait_all_published(&db.pool, N as i64, Duration::from_secs(120)).await;

    let records = read_records(&kafka_bootstrap(), request_topics(&prefix), N, Duration::from_secs(1)).await;
    let decoded = decode_all(&registry_url(), &records).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for d in &decoded {
        *seen.entry(d.notification_id.to_string()).or_default() += 1;
    }
    let missing: Vec<&String> = order.keys().filter(|id| !seen.contains_key(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{} notifications lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let duplicates = records.len() - seen.len();
    eprintln!(
        "{kills} kills: {} records for {N} notifications, {duplicates} duplicates",
        records.len()
    );
    assert!(
        duplicates <= kills * 100,
        "duplicates bounded by the batch in flight at each kill"
    );
}

#[tokio::test]
async fn one_notification_travels_from_http_to_a_kafka_record() {
    test_support::ensure_schemas().await;
    let db = TestDb::new().await;
    let prefix = topic_prefix();
    let gateway_port = free_port();
    let _gateway = Proc::spawn(
        "gateway",
        &[
            ("APP_DATABASE_URL", db.url.clone()),
            ("APP_PORT", gateway_port.to_string()),
            ("APP_JWT_HS256_SECRET", JWT_SECRET.to_string()),
            ("APP_HTTP_WORKERS", "1".into()),
            ("APP_VALIDATE_REFERENCES", "false".into()),
            ("RUST_LOG", "warn".into()),
        ],
    );
    let _relay = Proc::spawn("outbox-relay", &relay_env(&db.url, &prefix));
    let base = format!("http://127.0.0.1:{gateway_port}");
    let http = reqwest::Client::new();
    test_support::wait_for("the gateway to be healthy", Duration::from_secs(30), || async {
        let r = http.get(format!("{base}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    let user = Uuid::new_v4();
    let token = test_support::service_token("e2e-tests", &[notify_kit::auth::SCOPE_SEND]);
    let resp = http
        .post(format!("{base}/api/v1/notifications/"))
        .bearer_auth(&token)
        .header("x-correlation-id", "e2e-corr-1")
        .json(&json!({
            "notification_type": "push",
            "user_id": user,
            "template_code": "order_shipped",
            "variables": {"order": "A-42"},
            "request_id": "e2e-1",
            "priority": 9,
            "metadata": {"source": "e2e"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = body["data"]["notification_id"].as_str().unwrap().to_string();

    let topic = format!("{prefix}notifications.push.priority");
    let records = read_records(&kafka_bootstrap(), vec![topic.clone()], 1, Duration::from_millis(300)).await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.key.as_deref(), Some(user.to_string().as_str()));
    assert_eq!(record.headers["notification-id"], id);
    assert_eq!(record.headers["x-correlation-id"], "e2e-corr-1");
    let decoded = decode_all(&registry_url(), &records).await;
    let event = &decoded[0];
    assert_eq!(event.notification_id.to_string(), id);
    assert_eq!(event.channel, Channel::Push);
    assert_eq!(event.template_code, "order_shipped");
    assert_eq!(event.priority, 9);
    assert_eq!(event.caller, "e2e-tests");
    assert_eq!(
        serde_json::from_str::<Value>(&event.variables_json).unwrap(),
        json!({"order": "A-42"})
    );
}
