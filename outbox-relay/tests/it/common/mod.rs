//! Shared helpers of the relay tests.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::Utc;
use notify_schemas::{
    registry::SchemaRegistry, topics::Topics, wire, Channel, NotificationRequested, NOTIFICATION_REQUESTED,
};
use notify_store::notifications::{accept, AcceptOutcome, NewNotification, NewOutboxMessage};
use outbox_relay::{
    publisher::{OutgoingRecord, PublishError, Publisher},
    settings::{RelaySettings, Settings},
    startup::Application,
};
use serde_json::json;
use sqlx::{PgPool, Row};
use test_support::kafka::Record;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Writes a notification for `user` exactly as the gateway does (same store function),
/// then wakes the relays.
pub async fn enqueue(pool: &PgPool, user: Uuid, channel: Channel, priority: i16, seq: usize) -> Uuid {
    let id = enqueue_unannounced(pool, user, channel, priority, seq).await;
    // The gateway wakes the relays after the commit (coalesced); one NOTIFY per row here.
    notify_store::outbox::wake_relays(pool).await.unwrap();
    id
}

/// [`enqueue`] without the `NOTIFY`: only a poll (or a later wake) finds the row.
pub async fn enqueue_unannounced(pool: &PgPool, user: Uuid, channel: Channel, priority: i16, seq: usize) -> Uuid {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let request_id = format!("req-{seq}-{id}");
    let event = NotificationRequested {
        notification_id: id.into(),
        channel,
        user_id: user.into(),
        template_code: "welcome_email".into(),
        variables_json: json!({"seq": seq}).to_string(),
        priority: i32::from(priority),
        metadata_json: "{}".into(),
        request_id: request_id.clone(),
        caller: "tests".into(),
        correlation_id: format!("corr-{seq}"),
        requested_at: now.timestamp_millis(),
    };
    let payload = serde_json::to_value(&event).unwrap();
    let headers = json!({
        "notification-id": id.to_string(),
        "x-correlation-id": format!("corr-{seq}"),
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    let key = user.to_string();
    let topic = Topics::logical_requests(channel, priority >= 8);
    let variables = json!({"seq": seq});
    let outcome = accept(
        pool,
        &NewNotification {
            id: id.into(),
            caller: "tests",
            request_id: &request_id,
            request_hash: &[0u8; 32],
            user_id: user.into(),
            channel: channel.as_str(),
            template_code: "welcome_email",
            variables: &variables,
            priority,
            metadata: &json!({}),
            correlation_id: &format!("corr-{seq}"),
            created_at: now,
            response_status: 202,
            response_body: &json!({}),
            idempotency_ttl: Duration::from_secs(60),
        },
        &NewOutboxMessage {
            shard: notify_store::shard_of(&key),
            topic: &topic,
            message_key: &key,
            event_type: NOTIFICATION_REQUESTED.subject,
            payload: &payload,
            headers: &headers,
        },
    )
    .await
    .unwrap();
    assert!(matches!(outcome, AcceptOutcome::Created));
    id
}

pub fn relay_settings(db_url: &str, prefix: &str, bootstrap: &str, registry: &str) -> Settings {
    let mut kafka = test_support::kafka_settings(prefix);
    kafka.bootstrap = bootstrap.to_string();
    Settings {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: notify_kit::settings::SecretUrl::new(db_url),
        kafka,
        schema_registry_url: registry.to_string(),
        relay: RelaySettings::for_tests(),
    }
}

/// A relay running in this process.
pub struct RunningRelay {
    pub stop: CancellationToken,
    pub port: u16,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningRelay {
    pub async fn start(settings: Settings, publisher: Option<Arc<dyn Publisher>>) -> Self {
        let app = Application::build(settings, publisher).await.expect("relay builds");
        let port = app.port();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(stop.clone()));
        Self { stop, port, handle }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

pub async fn published_count(pool: &PgPool) -> i64 {
    sqlx::query("SELECT count(*) AS n FROM outbox WHERE published_at IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap()
        .get("n")
}

pub async fn wait_all_published(pool: &PgPool, n: i64, timeout: Duration) {
    test_support::wait_for("every outbox row to be published", timeout, || async {
        (published_count(pool).await >= n).then_some(())
    })
    .await;
}

/// Decodes records with the registry (by the schema id in each record, as a consumer would).
pub async fn decode_all(registry_url: &str, records: &[Record]) -> Vec<NotificationRequested> {
    let registry = SchemaRegistry::new(registry_url).unwrap();
    let mut out = Vec::new();
    for r in records {
        let id = wire::schema_id(&r.payload).unwrap();
        let schema = registry.schema_by_id(id).await.unwrap();
        out.push(wire::decode::<NotificationRequested>(&schema, &r.payload).unwrap());
    }
    out
}

pub fn request_topics(prefix: &str) -> Vec<String> {
    let t = Topics::new(prefix);
    vec![
        t.requests(Channel::Email, false),
        t.requests(Channel::Email, true),
        t.requests(Channel::Push, false),
        t.requests(Channel::Push, true),
    ]
}

pub async fn read_records(bootstrap: &str, topics: Vec<String>, expected: usize, settle: Duration) -> Vec<Record> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        test_support::kafka::read_all(&bootstrap, &topics, expected, Duration::from_secs(60), settle)
    })
    .await
    .unwrap()
}

/// Asserts that, per (topic, key), records appear in the order their notifications were
/// enqueued (`order` maps notification id → enqueue sequence).
pub fn assert_in_order_per_key(records: &[Record], decoded: &[NotificationRequested], order: &HashMap<String, usize>) {
    let mut last: HashMap<(String, String), (i64, usize)> = HashMap::new();
    let mut idx: Vec<usize> = (0..records.len()).collect();
    idx.sort_by_key(|&i| (records[i].topic.clone(), records[i].partition, records[i].offset));
    for i in idx {
        let r = &records[i];
        let seq = order[&decoded[i].notification_id.to_string()];
        let k = (r.topic.clone(), r.key.clone().unwrap_or_default());
        if let Some((prev_offset, prev_seq)) = last.get(&k) {
            assert!(
                seq > *prev_seq,
                "key {} on {}: record seq {seq} at offset {} came after seq {prev_seq} at offset {prev_offset}",
                k.1,
                k.0,
                r.offset
            );
        }
        last.insert(k, (r.offset, seq));
    }
}

/// Wraps a publisher and holds every acknowledgement back for `delay`.
pub struct DelayedAcks<P> {
    pub inner: P,
    pub delay: Duration,
    pub batches: AtomicUsize,
}

#[async_trait]
impl<P: Publisher> Publisher for DelayedAcks<P> {
    async fn publish(&self, records: Vec<OutgoingRecord>) -> Vec<Result<(), PublishError>> {
        let results = self.inner.publish(records).await;
        self.batches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        results
    }

    async fn ping(&self) -> Result<(), String> {
        self.inner.ping().await
    }
}
