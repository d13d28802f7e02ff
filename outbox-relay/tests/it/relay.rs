//! Relay tests against the real PostgreSQL, broker (tansu) and schema registry.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use crate::common::*;
use notify_schemas::Channel;
use outbox_relay::publisher::{KafkaPublisher, Publisher};
use sqlx::Row;
use test_support::{
    kafka_bootstrap, registry_url, servers::PrivateBroker, servers::PrivateRegistry, topic_prefix, TestDb,
};
use uuid::Uuid;

async fn setup() -> (TestDb, String) {
    notify_kit::telemetry::init_test_telemetry();
    test_support::ensure_schemas().await;
    (TestDb::new().await, topic_prefix())
}

async fn advisory_lock_holders(pool: &sqlx::PgPool) -> (i64, i64) {
    let r = sqlx::query(
        "SELECT count(DISTINCT pid) AS holders, count(*) AS locks FROM pg_locks
          WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (r.get("holders"), r.get("locks"))
}

#[tokio::test]
async fn every_accepted_notification_lands_once_on_its_topic_in_order_per_key() {
    let (db, prefix) = setup().await;
    let users: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let mut order = HashMap::new();
    let mut expected_topic = HashMap::new();
    for seq in 0..300 {
        let channel = if seq % 3 == 0 { Channel::Push } else { Channel::Email };
        let priority = if seq % 10 == 0 { 9 } else { 5 };
        let id = enqueue(&db.pool, users[seq % users.len()], channel, priority, seq).await;
        order.insert(id.to_string(), seq);
        let suffix = if priority >= 8 { ".priority" } else { "" };
        expected_topic.insert(id.to_string(), format!("{prefix}notifications.{channel}{suffix}"));
    }

    let relay = RunningRelay::start(
        relay_settings(&db.url, &prefix, &kafka_bootstrap(), &registry_url()),
        None,
    )
    .await;
    wait_all_published(&db.pool, 300, Duration::from_secs(60)).await;
    let records = read_records(
        &kafka_bootstrap(),
        request_topics(&prefix),
        300,
        Duration::from_millis(500),
    )
    .await;
    relay.shutdown().await;

    assert_eq!(records.len(), 300, "exactly one record per notification");
    let decoded = decode_all(&registry_url(), &records).await;
    let ids: HashSet<String> = decoded.iter().map(|d| d.notification_id.to_string()).collect();
    assert_eq!(ids.len(), 300);
    for (r, d) in records.iter().zip(&decoded) {
        assert_eq!(r.topic, expected_topic[&d.notification_id.to_string()]);
        assert_eq!(
            r.key.as_deref(),
            Some(d.user_id.to_string().as_str()),
            "keyed by user id"
        );
        assert_eq!(r.headers["notification-id"], d.notification_id.to_string());
        assert_eq!(r.headers["x-correlation-id"], d.correlation_id);
        assert!(r.headers["traceparent"].starts_with("00-"));
        assert_eq!(r.headers["event-type"], "io.notify.events.NotificationRequested");
    }
    assert_in_order_per_key(&records, &decoded, &order);
}

#[tokio::test]
async fn two_relays_one_with_delayed_acks_share_shards_without_duplicates_or_reordering() {
    let (db, prefix) = setup().await;
    let mut slow_settings = relay_settings(&db.url, &prefix, &kafka_bootstrap(), &registry_url());
    slow_settings.relay.batch_size = 40;
    let mut fast_settings = slow_settings.clone();
    fast_settings.relay.batch_size = 40;
    let slow = Arc::new(DelayedAcks {
        inner: KafkaPublisher::new(&slow_settings.kafka, &slow_settings.relay).unwrap(),
        delay: Duration::from_millis(250),
        batches: Default::default(),
    });
    let relay_a = RunningRelay::start(slow_settings, Some(slow.clone() as Arc<dyn Publisher>)).await;
    let relay_b = RunningRelay::start(fast_settings, None).await;
    // Both relays hold shards before any row exists.
    test_support::wait_for("both relays to own shards", Duration::from_secs(20), || async {
        let (holders, locks) = advisory_lock_holders(&db.pool).await;
        (holders == 2 && locks == i64::from(notify_store::OUTBOX_SHARDS)).then_some(())
    })
    .await;

    let users: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
    let mut order = HashMap::new();
    for seq in 0..400 {
        let id = enqueue(&db.pool, users[seq % users.len()], Channel::Email, 5, seq).await;
        order.insert(id.to_string(), seq);
    }
    wait_all_published(&db.pool, 400, Duration::from_secs(90)).await;
    let records = read_records(
        &kafka_bootstrap(),
        request_topics(&prefix),
        400,
        Duration::from_millis(500),
    )
    .await;
    relay_a.shutdown().await;
    relay_b.shutdown().await;

    assert!(
        slow.batches.load(Ordering::SeqCst) > 0,
        "the slow relay published batches too"
    );
    assert_eq!(records.len(), 400, "no duplicates, nothing lost");
    let decoded = decode_all(&registry_url(), &records).await;
    assert_eq!(
        decoded.iter().map(|d| &d.notification_id).collect::<HashSet<_>>().len(),
        400
    );
    assert_in_order_per_key(&records, &decoded, &order);
}

#[tokio::test]
async fn rows_wait_while_the_broker_is_down_and_publish_when_it_returns() {
    let (db, prefix) = setup().await;
    let mut broker = PrivateBroker::start();
    let relay = RunningRelay::start(
        relay_settings(&db.url, &prefix, &broker.bootstrap(), &registry_url()),
        None,
    )
    .await;
    // Let the relay create its topics on the private broker, then take the broker away.
    let one = enqueue(&db.pool, Uuid::new_v4(), Channel::Email, 5, 0).await;
    wait_all_published(&db.pool, 1, Duration::from_secs(60)).await;
    broker.stop();

    let user = Uuid::new_v4();
    let mut order = HashMap::from([(one.to_string(), 0)]);
    for seq in 1..=20 {
        order.insert(enqueue(&db.pool, user, Channel::Email, 5, seq).await.to_string(), seq);
    }
    // Publishing fails (and is recorded), nothing is marked published.
    test_support::wait_for("a failed publish to be recorded", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query("SELECT count(*) AS n FROM outbox WHERE last_error IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get("n");
        (n > 0).then_some(())
    })
    .await;
    assert_eq!(
        published_count(&db.pool).await,
        1,
        "nothing is published while the broker is down"
    );
    let parked: i64 = sqlx::query("SELECT count(*) AS n FROM outbox WHERE parked_at IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(parked, 0, "an outage is transient: nothing is parked");

    broker.restart();
    wait_all_published(&db.pool, 21, Duration::from_secs(120)).await;
    let records = read_records(
        &broker.bootstrap(),
        request_topics(&prefix),
        21,
        Duration::from_millis(500),
    )
    .await;
    relay.shutdown().await;
    let decoded = decode_all(&registry_url(), &records).await;
    let ids: HashSet<String> = decoded.iter().map(|d| d.notification_id.to_string()).collect();
    assert_eq!(ids.len(), 21, "every row reached the broker once it was back");
    assert_in_order_per_key(&records, &decoded, &order);
}

#[tokio::test]
async fn a_record_over_the_size_limit_is_parked_and_its_key_moves_on() {
    let (db, prefix) = setup().await;
    let user = Uuid::new_v4();
    let too_big = enqueue(&db.pool, user, Channel::Email, 5, 0).await;
    sqlx::query(
        "UPDATE outbox SET payload = jsonb_set(payload, '{variables_json}', to_jsonb(repeat('x', 1500000)))
          WHERE payload->>'notification_id' = $1",
    )
    .bind(too_big.to_string())
    .execute(&db.pool)
    .await
    .unwrap();
    let mut later = Vec::new();
    for seq in 1..=3 {
        later.push(enqueue(&db.pool, user, Channel::Email, 5, seq).await);
    }

    let relay = RunningRelay::start(
        relay_settings(&db.url, &prefix, &kafka_bootstrap(), &registry_url()),
        None,
    )
    .await;
    wait_all_published(&db.pool, 3, Duration::from_secs(60)).await;
    let row = sqlx::query("SELECT parked_at IS NOT NULL AS parked, attempts, last_error FROM outbox WHERE payload->>'notification_id' = $1")
        .bind(too_big.to_string())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(row.get::<bool, _>("parked"), "the oversized row is parked");
    assert_eq!(
        row.get::<i32, _>("attempts"),
        3,
        "after APP_RELAY_MAX_ATTEMPTS permanent failures"
    );
    let error: String = row.get("last_error");
    assert!(error.to_lowercase().contains("too large"), "error says why: {error}");

    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", relay.port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("relay_parked_total"), "{metrics}");
    let records = read_records(
        &kafka_bootstrap(),
        request_topics(&prefix),
        3,
        Duration::from_millis(500),
    )
    .await;
    relay.shutdown().await;
    let decoded = decode_all(&registry_url(), &records).await;
    let got: Vec<String> = decoded.iter().map(|d| d.notification_id.to_string()).collect();
    assert_eq!(
        got,
        later.iter().map(Uuid::to_string).collect::<Vec<_>>(),
        "the rest of the key, in order"
    );
}

/// Whether a connection of this database has `LISTEN`ed (its last statement).
async fn someone_listens(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND query ILIKE 'LISTEN %'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
        > 0
}

#[tokio::test]
async fn a_new_row_is_published_on_notify_long_before_the_poll_interval() {
    let (db, prefix) = setup().await;
    let mut settings = relay_settings(&db.url, &prefix, &kafka_bootstrap(), &registry_url());
    settings.relay.poll_interval = Duration::from_secs(300);
    settings.relay.rebalance_interval = Duration::from_secs(300);
    // A row committed before the relay starts, without a NOTIFY: the relay's first batch
    // publishes it. Once it is published the relay is idle, with no wake-up pending (no
    // NOTIFY was ever sent in this database), until the next poll 300 s later.
    enqueue_unannounced(&db.pool, Uuid::new_v4(), Channel::Push, 5, 0).await;
    let relay = RunningRelay::start(settings, None).await;
    test_support::wait_for(
        "the relay to own every shard, publish the first row and LISTEN",
        Duration::from_secs(20),
        || async {
            let (_, locks) = advisory_lock_holders(&db.pool).await;
            (locks == i64::from(notify_store::OUTBOX_SHARDS)
                && published_count(&db.pool).await == 1
                && someone_listens(&db.pool).await)
                .then_some(())
        },
    )
    .await;
    // A second row without a NOTIFY stays pending: nothing else wakes the idle relay.
    enqueue_unannounced(&db.pool, Uuid::new_v4(), Channel::Push, 5, 1).await;
    let window = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < window {
        assert_eq!(
            published_count(&db.pool).await,
            1,
            "a row was published without a NOTIFY"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The NOTIFY alone publishes it, far sooner than the 300 s poll interval.
    let woken = std::time::Instant::now();
    notify_store::outbox::wake_relays(&db.pool).await.unwrap();
    wait_all_published(&db.pool, 2, Duration::from_secs(30)).await;
    eprintln!("published {:?} after the NOTIFY", woken.elapsed());
    relay.shutdown().await;
}

#[tokio::test]
async fn the_gateways_waker_turns_a_burst_of_commits_into_one_or_two_notifies() {
    let (db, _) = setup().await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen(notify_store::OUTBOX_CHANNEL).await.unwrap();
    let waker = notify_store::outbox::RelayWaker::spawn(db.pool.clone(), Duration::from_millis(200));
    for _ in 0..1000 {
        waker.wake();
    }
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a NOTIFY for the burst")
        .unwrap();
    // Wakes that arrived while the first NOTIFY was on its way make at most one more.
    let mut more = 0;
    while let Ok(received) = tokio::time::timeout(Duration::from_millis(600), listener.recv()).await {
        received.unwrap();
        more += 1;
    }
    assert!(more <= 1, "{} NOTIFYs for one burst", more + 1);
    // A later commit is not lost to the coalescing.
    waker.wake();
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a NOTIFY for a later wake")
        .unwrap();
}

#[tokio::test]
async fn a_registry_restart_is_harmless() {
    let (db, prefix) = setup().await;
    let mut registry = PrivateRegistry::start();
    let reg = notify_schemas::registry::SchemaRegistry::new(&registry.url()).unwrap();
    let ids_before = reg.register_all(notify_schemas::CONTRACTS, "BACKWARD").await.unwrap();

    let relay = RunningRelay::start(
        relay_settings(&db.url, &prefix, &kafka_bootstrap(), &registry.url()),
        None,
    )
    .await;
    let user = Uuid::new_v4();
    for seq in 0..5 {
        enqueue(&db.pool, user, Channel::Email, 5, seq).await;
    }
    wait_all_published(&db.pool, 5, Duration::from_secs(60)).await;

    // Registry down: the relay keeps publishing with its cached schema.
    registry.stop();
    for seq in 5..10 {
        enqueue(&db.pool, user, Channel::Email, 5, seq).await;
    }
    wait_all_published(&db.pool, 10, Duration::from_secs(60)).await;
    relay.shutdown().await;

    // Restarted (empty, in memory) and re-registered by the deploy step: same ids, and a
    // fresh consumer decodes records written before the restart.
    registry.restart();
    let ids_after = reg.register_all(notify_schemas::CONTRACTS, "BACKWARD").await.unwrap();
    assert_eq!(ids_before, ids_after, "ids are stable across a registry restart");
    let records = read_records(
        &kafka_bootstrap(),
        request_topics(&prefix),
        10,
        Duration::from_millis(500),
    )
    .await;
    let decoded = decode_all(&registry.url(), &records).await;
    assert_eq!(decoded.len(), 10);
}

#[tokio::test]
async fn published_rows_are_removed_after_the_retention_period_and_pending_ones_never() {
    let (db, _) = setup().await;
    let user = Uuid::new_v4();
    for seq in 0..3 {
        enqueue(&db.pool, user, Channel::Email, 5, seq).await;
    }
    // Two published long ago, one published just now; and one still pending.
    sqlx::query("UPDATE outbox SET published_at = now() - interval '2 days' WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 2)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = (SELECT max(id) FROM outbox)")
        .execute(&db.pool)
        .await
        .unwrap();
    enqueue(&db.pool, user, Channel::Email, 5, 3).await;
    let deleted = notify_store::outbox::delete_published(&db.pool, Duration::from_secs(86_400), 100)
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<bool> = sqlx::query("SELECT published_at IS NOT NULL AS p FROM outbox ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("p"))
        .collect();
    assert_eq!(
        left,
        vec![true, false],
        "the recent published row and the pending row stay"
    );
    let backlog = notify_store::outbox::backlog(&db.pool).await.unwrap();
    assert_eq!(backlog.pending, 1);
    assert_eq!(backlog.parked, 0);
}
