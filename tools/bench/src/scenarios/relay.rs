//! `relay`: drains a backlog of outbox rows through one relay (rows/s) and measures commit →
//! ack latency under a steady insert rate; the baseline is a plain idempotent producer
//! writing the same records (same Avro bytes, keys, headers and topic) straight to the broker.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::Context;
use chrono::Utc;
use notify_kafka::{headers, Topics};
use notify_schemas::{registry::SchemaRegistry, wire, Channel, NotificationRequested, NOTIFICATION_REQUESTED};
use notify_store::notifications::NewOutboxMessage;
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    load::{self, Latency},
    plan::Plan,
    procs::{delta, sample, scrape, CpuSnapshot, CpuUsage, ProcSample},
    scenarios::gateway::ratio,
    stack::{kafka_settings, Db, Infra},
};

/// The relay's producer settings the baseline copies (its defaults).
const LINGER_MS: u32 = 5;
const BATCH_SIZE: u32 = 1000;

/// What the relay scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayResult {
    /// Backlog size.
    pub rows: u64,
    /// How long the bulk insert of the backlog took (for information).
    pub insert_secs: f64,
    /// Relay healthy → backlog drained.
    pub drain_secs: f64,
    /// `rows / drain_secs`.
    pub rows_per_s: f64,
    /// Rate between 10% and 90% of the backlog (start-up and tail excluded).
    pub steady_rows_per_s: f64,
    /// The plain producer: same records, first send → last ack.
    pub baseline_records_per_s: f64,
    pub baseline_secs: f64,
    /// The plain producer sending one record at a time, send → ack: the floor of any
    /// commit → ack latency on this broker.
    #[serde(default)]
    pub broker_ack: Latency,
    /// `rows_per_s / baseline_records_per_s`.
    pub ratio: f64,
    /// Rows inserted at a fixed rate while the relay runs.
    pub latency_rate: u32,
    pub latency_secs: f64,
    pub latency_rows: u64,
    pub latency_insert_errors: u64,
    /// Insert committed (as seen by the inserting client) → the row seen published, i.e.
    /// acknowledged by the broker and marked (polled every 5 ms).
    pub commit_to_ack: Latency,
    /// `published_at - created_at` with `published_at` set after the broker's acks: the
    /// insert (one-statement transaction) → acknowledged and marked, without the client-side
    /// watcher's polling. Absent in results from before session 3, when `published_at` was the
    /// claiming transaction's start (their `commit_to_claim_db`, no longer read).
    #[serde(default)]
    pub commit_to_ack_db: Option<Latency>,
    /// Rows not seen published within the wait.
    pub latency_unpublished: u64,
    /// How the publish watcher's polls went (their cost is part of `commit_to_ack`).
    #[serde(default)]
    pub watcher: String,
    pub linger_ms: u32,
    pub batch_size: u32,
    pub relay_process: Option<ProcSample>,
    /// From the relay's own metrics: batches, their mean duration (claim → commit) and size,
    /// during the drain and during the latency phase.
    #[serde(default)]
    pub drain_batches: f64,
    #[serde(default)]
    pub drain_mean_batch_ms: f64,
    #[serde(default)]
    pub latency_batches: f64,
    #[serde(default)]
    pub latency_mean_batch_ms: f64,
    /// CPU during the drain, the latency phase and the plain producer.
    #[serde(default)]
    pub drain_cpu: CpuUsage,
    #[serde(default)]
    pub latency_cpu: CpuUsage,
    #[serde(default)]
    pub baseline_cpu: CpuUsage,
}

/// One outbox row's content, kept to build the baseline's identical records.
struct RowData {
    key: String,
    event: NotificationRequested,
    headers: Value,
}

fn make_rows(n: u64, tag: &str) -> Vec<RowData> {
    let users: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    (0..n)
        .map(|i| {
            let id = Uuid::now_v7();
            let user = users[usize::try_from(i).unwrap_or(0) % users.len()];
            let correlation = Uuid::new_v4().to_string();
            let trace = Uuid::new_v4().simple().to_string();
            RowData {
                key: user.to_string(),
                headers: json!({
                    headers::NOTIFICATION_ID: id.to_string(),
                    headers::CORRELATION_ID: correlation,
                    headers::TRACEPARENT: format!("00-{trace}-{}-01", &trace[..16]),
                }),
                event: NotificationRequested {
                    notification_id: id.into(),
                    channel: Channel::Email,
                    user_id: user.into(),
                    template_code: "welcome_email".into(),
                    variables_json: r#"{"link":"https://example.com/start","name":"Ada Lovelace"}"#.into(),
                    priority: 5,
                    metadata_json: r#"{"campaign":"bench"}"#.into(),
                    request_id: format!("{tag}-{i}"),
                    caller: "bench".into(),
                    correlation_id: correlation,
                    requested_at: Utc::now().timestamp_millis(),
                },
            }
        })
        .collect()
}

const TOPIC: &str = "notifications.email";

/// Inserts the rows in chunks with one `INSERT … SELECT FROM unnest(…)` each.
async fn bulk_insert(pool: &PgPool, rows: &[RowData]) -> anyhow::Result<()> {
    for chunk in rows.chunks(2000) {
        let shards: Vec<i16> = chunk.iter().map(|r| notify_store::shard_of(&r.key)).collect();
        let keys: Vec<String> = chunk.iter().map(|r| r.key.clone()).collect();
        let payloads: Vec<Value> = chunk
            .iter()
            .map(|r| serde_json::to_value(&r.event))
            .collect::<Result<_, _>>()
            .context("failed to serialise an event")?;
        let hdrs: Vec<Value> = chunk.iter().map(|r| r.headers.clone()).collect();
        sqlx::query(
            "INSERT INTO outbox (shard, topic, message_key, event_type, payload, headers)
             SELECT s, $2, k, $3, p, h
               FROM unnest($1::int2[], $4::text[], $5::jsonb[], $6::jsonb[]) AS t(s, k, p, h)",
        )
        .bind(&shards)
        .bind(TOPIC)
        .bind(NOTIFICATION_REQUESTED.subject)
        .bind(&keys)
        .bind(&payloads)
        .bind(&hdrs)
        .execute(pool)
        .await
        .context("failed to insert the backlog")?;
    }
    Ok(())
}

async fn pending(pool: &PgPool) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .context("failed to count pending rows")
}

pub async fn run(infra: &Infra, plan: &Plan) -> anyhow::Result<RelayResult> {
    let db = infra.notify_db("relay").await?;
    let broker = infra.broker("relay").await?;
    let prefix = infra.topic_prefix(&broker, "relay").await?;
    let n = plan.relay_rows;

    // 1. The backlog, while no relay runs.
    let rows = make_rows(n, "relay");
    let started = Instant::now();
    bulk_insert(&db.pool, &rows).await?;
    let insert_secs = started.elapsed().as_secs_f64();
    sqlx::query("ANALYZE outbox")
        .execute(&db.pool)
        .await
        .context("failed to analyze the outbox")?;
    println!("[relay] {n} outbox rows inserted in {insert_secs:.1} s; starting one relay");

    // 2. One relay drains it.
    let mut env = infra.common_env(&broker.bootstrap, &prefix, &format!("bench{}relay:", infra.run_id));
    env.push(("APP_DATABASE_URL".into(), db.url.clone()));
    let cpu = CpuSnapshot::take();
    let mut relay = infra.spawn_app("outbox-relay", "relay-outbox-relay", &env)?;
    relay.wait_healthy("/health", Duration::from_secs(60)).await?;
    let healthy_at_ms = Utc::now().timestamp_micros() as f64 / 1000.0;
    let t0 = Instant::now();
    let deadline = t0 + plan.drain_timeout().max(Duration::from_secs(n / 200 + 30));
    loop {
        let left = pending(&db.pool).await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the relay did not drain {n} rows in time ({left} left); see {}",
            relay.log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_at_ms = Utc::now().timestamp_micros() as f64 / 1000.0;
    let drain_cpu = cpu.usage_until(&CpuSnapshot::take());
    let http = reqwest::Client::new();
    let m0 = std::collections::BTreeMap::new();
    let m1 = scrape(&http, &relay.url()).await;
    let batch = |a: &std::collections::BTreeMap<String, f64>, b: &std::collections::BTreeMap<String, f64>| {
        let n = delta(a, b, "relay_batch_seconds_count");
        (n, 1000.0 * delta(a, b, "relay_batch_seconds_sum") / n.max(1.0))
    };
    let (drain_batches, drain_mean_batch_ms) = batch(&m0, &m1);
    // `published_at` is when a batch's acks were in and it was marked: draining starts when
    // the relay was healthy (or its first mark, if earlier: health polls lag); it ends when
    // the count above reached 0 (same host clock).
    let r = sqlx::query(
        "SELECT (EXTRACT(EPOCH FROM min(published_at)) * 1000)::float8 AS first_ms,
                (EXTRACT(EPOCH FROM percentile_disc(0.1) WITHIN GROUP (ORDER BY published_at)) * 1000)::float8 AS p10_ms,
                (EXTRACT(EPOCH FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY published_at)) * 1000)::float8 AS p90_ms
           FROM outbox",
    )
    .fetch_one(&db.pool)
    .await
    .context("failed to read publication times")?;
    let (first_ms, p10_ms, p90_ms): (f64, f64, f64) =
        (r.try_get("first_ms")?, r.try_get("p10_ms")?, r.try_get("p90_ms")?);
    let drain_secs = ((drained_at_ms - first_ms.min(healthy_at_ms)) / 1000.0).max(1e-3);
    let rows_per_s = n as f64 / drain_secs;
    let steady_rows_per_s = if p90_ms > p10_ms {
        0.8 * n as f64 / ((p90_ms - p10_ms) / 1000.0)
    } else {
        rows_per_s
    };
    println!("[relay] drained in {drain_secs:.2} s: {rows_per_s:.0} rows/s (steady {steady_rows_per_s:.0} rows/s)");
    println!("[relay]   {}", drain_cpu.summary());

    // 3. Commit → ack at a fixed rate, the relay running.
    let cpu = CpuSnapshot::take();
    let lat = latency_phase(&db, plan).await?;
    let latency_cpu = cpu.usage_until(&CpuSnapshot::take());
    println!("[relay]   publish watcher: {}", lat.watcher);
    let m2 = scrape(&http, &relay.url()).await;
    let (latency_batches, latency_mean_batch_ms) = batch(&m1, &m2);
    println!(
        "[relay]   relay batches: drain {drain_batches:.0} × {drain_mean_batch_ms:.0} ms; at {}/s {latency_batches:.0} × {latency_mean_batch_ms:.0} ms",
        plan.relay_latency.rate
    );
    println!(
        "[relay] commit→ack at {}/s: DB (insert → acked and marked) p50 {:.1} ms, p99 {:.1} ms; client-observed (5 ms polls) p50 {:.1} ms, p99 {:.1} ms",
        plan.relay_latency.rate,
        lat.commit_to_ack_db.p50_ms,
        lat.commit_to_ack_db.p99_ms,
        lat.commit_to_ack.p50_ms,
        lat.commit_to_ack.p99_ms
    );
    let relay_process = relay.pid().and_then(sample);
    relay.stop();

    // 4. The plain producer, same records.
    let cpu = CpuSnapshot::take();
    let (baseline_records, baseline_secs, broker_ack) =
        baseline_producer(infra, &broker.bootstrap, &prefix, &rows).await?;
    println!(
        "[relay] broker ack, one record at a time (linger {LINGER_MS} ms): p50 {:.1} ms, p99 {:.1} ms",
        broker_ack.p50_ms, broker_ack.p99_ms
    );
    let baseline_cpu = cpu.usage_until(&CpuSnapshot::take());
    let baseline_records_per_s = baseline_records as f64 / baseline_secs.max(1e-3);
    println!(
        "[relay] plain producer: {baseline_records} records in {baseline_secs:.2} s: {baseline_records_per_s:.0} records/s; relay/baseline {:.2}",
        ratio(rows_per_s, baseline_records_per_s)
    );
    println!("[relay]   {}", baseline_cpu.summary());
    db.pool.close().await;
    Ok(RelayResult {
        rows: n,
        insert_secs,
        drain_secs,
        rows_per_s,
        steady_rows_per_s,
        baseline_records_per_s,
        baseline_secs,
        broker_ack,
        ratio: ratio(rows_per_s, baseline_records_per_s),
        latency_rate: plan.relay_latency.rate,
        latency_secs: plan.relay_latency.secs,
        latency_rows: lat.rows,
        latency_insert_errors: lat.insert_errors,
        commit_to_ack: lat.commit_to_ack,
        commit_to_ack_db: Some(lat.commit_to_ack_db),
        latency_unpublished: lat.unpublished,
        watcher: lat.watcher.clone(),
        linger_ms: LINGER_MS,
        batch_size: BATCH_SIZE,
        relay_process,
        drain_cpu,
        latency_cpu,
        baseline_cpu,
        drain_batches,
        drain_mean_batch_ms,
        latency_batches,
        latency_mean_batch_ms,
    })
}

struct LatencyPhase {
    watcher: String,
    rows: u64,
    insert_errors: u64,
    commit_to_ack: Latency,
    commit_to_ack_db: Latency,
    unpublished: u64,
}

/// How the publish watcher's polls went.
#[derive(Debug, Default)]
struct Polls {
    count: u64,
    errors: u64,
    query_total: Duration,
    query_max: Duration,
}

/// Inserts rows open-loop with the store's `enqueue` (one row + `NOTIFY` per transaction: a
/// wake for every row, the relay's best case for latency) while a watcher polls which of them
/// are published.
async fn latency_phase(db: &Db, plan: &Plan) -> anyhow::Result<LatencyPhase> {
    let step = plan.relay_latency;
    let rows = Arc::new(make_rows(step.total(), "lat"));
    let insert_pool = notify_store::connect(&db.url, 16).await?;
    // Committed, not yet seen published: id → when the commit returned.
    let open: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<(i64, Duration)>>> = Arc::default();
    let inserting = Arc::new(std::sync::atomic::AtomicBool::new(true));

    let watcher = {
        let (open, seen, inserting, pool) = (open.clone(), seen.clone(), inserting.clone(), db.pool.clone());
        tokio::spawn(async move {
            let give_up = Duration::from_secs(30);
            let mut quiet_since = None::<Instant>;
            let mut polls = Polls::default();
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let ids: Vec<i64> = open
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys()
                    .copied()
                    .collect();
                let still = inserting.load(std::sync::atomic::Ordering::SeqCst);
                if ids.is_empty() {
                    if !still {
                        return polls;
                    }
                    continue;
                }
                if !still {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > give_up {
                        return polls;
                    }
                }
                let asked = Instant::now();
                let published: Vec<i64> =
                    match sqlx::query_scalar("SELECT id FROM outbox WHERE id = ANY($1) AND published_at IS NOT NULL")
                        .bind(&ids)
                        .fetch_all(&pool)
                        .await
                    {
                        Ok(p) => p,
                        Err(_) => {
                            polls.errors += 1;
                            continue;
                        }
                    };
                let now = Instant::now();
                polls.count += 1;
                polls.query_max = polls.query_max.max(now - asked);
                polls.query_total += now - asked;
                let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                for id in published {
                    if let Some(at) = open.remove(&id) {
                        seen.push((id, now - at));
                    }
                }
            }
        })
    };

    let result = {
        let (open, rows) = (open.clone(), rows.clone());
        load::open_loop(step, plan.max_in_flight, move |i| {
            let (open, rows, pool) = (open.clone(), rows.clone(), insert_pool.clone());
            async move {
                let r = &rows[usize::try_from(i).unwrap_or(0)];
                let payload = serde_json::to_value(&r.event).map_err(|e| e.to_string())?;
                let topic = TOPIC.to_string();
                let msg = NewOutboxMessage {
                    shard: notify_store::shard_of(&r.key),
                    topic: &topic,
                    message_key: &r.key,
                    event_type: NOTIFICATION_REQUESTED.subject,
                    payload: &payload,
                    headers: &r.headers,
                };
                let id = notify_store::outbox::enqueue(&pool, &msg)
                    .await
                    .map_err(|e| format!("insert: {e}"))?;
                open.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, Instant::now());
                Ok(())
            }
        })
        .await
    };
    inserting.store(false, std::sync::atomic::Ordering::SeqCst);
    let polls = watcher.await.context("the publish watcher failed")?;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    let unpublished = open.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
    let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    let db_ms: Vec<f64> = sqlx::query(
        "SELECT (EXTRACT(EPOCH FROM (published_at - created_at)) * 1000)::float8 AS ms
           FROM outbox WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&db.pool)
    .await
    .context("failed to read published_at")?
    .iter()
    .map(|r| r.try_get::<f64, _>("ms"))
    .collect::<Result<_, _>>()
    .context("bad published_at")?;
    let watcher_poll_ms = if polls.count > 0 {
        format!(
            "{} polls, query mean {:.1} ms, max {:.1} ms, {} errors",
            polls.count,
            polls.query_total.as_secs_f64() * 1000.0 / polls.count as f64,
            polls.query_max.as_secs_f64() * 1000.0,
            polls.errors
        )
    } else {
        format!("no polls, {} errors", polls.errors)
    };
    Ok(LatencyPhase {
        watcher: watcher_poll_ms,
        rows: result.ok,
        insert_errors: result.error_count(),
        commit_to_ack: Latency::of_millis(seen.iter().map(|(_, d)| d.as_secs_f64() * 1000.0)),
        commit_to_ack_db: Latency::of_millis(db_ms),
        unpublished,
    })
}

/// Produces the same records as the relay did (Avro encoded beforehand, not timed) with a
/// plain idempotent producer configured like the relay's; returns (records, seconds).
async fn baseline_producer(
    infra: &Infra,
    bootstrap: &str,
    prefix: &str,
    rows: &[RowData],
) -> anyhow::Result<(u64, f64, Latency)> {
    let registry = SchemaRegistry::new(&infra.registry).context("failed to build the registry client")?;
    let schema = registry
        .latest(NOTIFICATION_REQUESTED.subject)
        .await
        .context("failed to read the schema")?;
    let topic = Topics::new(prefix).physical(TOPIC);
    let mut records = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let payload = wire::encode(&schema.schema, schema.id, &r.event).context("encode")?;
        let mut hdrs: Vec<(String, String)> = r
            .headers
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        hdrs.push((headers::EVENT_TYPE.into(), NOTIFICATION_REQUESTED.subject.into()));
        hdrs.push((headers::OUTBOX_ID.into(), (i + 1).to_string()));
        records.push((r.key.clone(), payload, hdrs));
    }
    let producer: FutureProducer = kafka_settings(bootstrap, prefix)
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", LINGER_MS.to_string())
        .set("message.timeout.ms", "30000")
        .set("compression.type", "none")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .context("failed to create the producer")?;
    // One record first, unmeasured: metadata, connection, producer id (the relay's producer
    // is past that when it starts draining).
    if let Some((key, payload, _)) = records.first() {
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .context("the broker did not acknowledge the warm-up record")?;
    }
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for (key, payload, hdrs) in &records {
        loop {
            let mut h = OwnedHeaders::new_with_capacity(hdrs.len());
            for (k, v) in hdrs {
                h = h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let record = FutureRecord::to(&topic).key(key).payload(payload).headers(h);
            match producer.send_result(record) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e).context("the producer refused a record"),
            }
        }
    }
    let mut acked = 0u64;
    for d in deliveries {
        if matches!(d.await, Ok(Ok(_))) {
            acked += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        acked == records.len() as u64,
        "the broker acknowledged {acked} of {} baseline records",
        records.len()
    );
    // The floor of any commit → ack: one record at a time, send → ack.
    let mut h = load::histogram();
    for (key, payload, _) in records.iter().take(ACK_PROBES) {
        let t = Instant::now();
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .context("the broker did not acknowledge a probe record")?;
        load::record(&mut h, t.elapsed());
    }
    Ok((acked, secs, Latency::of(&h)))
}

/// Records sent one at a time to measure the broker's acknowledgement latency.
const ACK_PROBES: usize = 200;
