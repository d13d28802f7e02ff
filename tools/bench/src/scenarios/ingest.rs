//! `ingest`: how fast the ingest service turns a backlog of producer requests
//! (`notifications.requests`, published through the producer library before it starts) into
//! notifications — producer token, decode, the API's validation, user and template checks, one
//! transaction each, offsets committed in order — reported beside the gateway's accepted/s.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use notify_producer::{ProducerSettings, RequestProducer};
use notify_schemas::{Channel, IngestRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    plan::Plan,
    procs::{sample, CpuSnapshot, CpuUsage, ProcSample},
    stack::{kafka_settings, Infra, Pipeline},
};

/// Requests handled at once by the ingest (its default).
const CONCURRENCY: usize = 8;

/// What the ingest scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    /// Requests waiting in the topic when the ingest started.
    pub backlog: u64,
    /// How fast the producer library published the backlog (acknowledged records/s).
    pub produced_per_s: f64,
    /// Notifications committed per second, from the first to the last.
    pub accepted_per_s: f64,
    /// From the first committed notification to the last.
    pub secs: f64,
    pub concurrency: usize,
    /// CPU while it drained the backlog.
    pub cpu: CpuUsage,
    /// The ingest process at the end.
    pub ingest_process: Option<ProcSample>,
}

pub async fn run(infra: &Infra, plan: &Plan) -> anyhow::Result<IngestResult> {
    // user-svc and template-svc for the reference checks (the gateway starts too, idle); the
    // stack's broker, under a topic prefix of the run's own.
    let mut p = Pipeline::start(infra, "ing", false).await?;
    let result = measure(&mut p, infra, plan).await;
    p.stop();
    p.db.pool.close().await;
    result
}

fn request(user: Uuid, i: u64) -> IngestRequest {
    IngestRequest {
        request_id: format!("bench-{i}"),
        notification_type: Channel::Email,
        user_id: user.to_string(),
        template_code: "welcome_email".into(),
        variables: r#"{"name":"Ada Lovelace","link":"https://example.com/start"}"#.into(),
        priority: 5,
        metadata: r#"{"campaign":"bench"}"#.into(),
        correlation_id: None,
    }
}

async fn measure(p: &mut Pipeline, infra: &Infra, plan: &Plan) -> anyhow::Result<IngestResult> {
    let users = p.seed(plan.e2e_users.max(1)).await?;
    let kafka = kafka_settings(&p.broker.bootstrap, p.topic_prefix());
    let topics = kafka.topics();
    notify_kafka::ensure_topics(&kafka, &[topics.producer_requests(), topics.producer_requests_dlt()]).await?;
    let producer = RequestProducer::connect(&ProducerSettings {
        kafka,
        schema_registry_url: infra.registry.clone(),
        token: infra.producer_token("bench-producer")?.into(),
    })
    .await?;

    let backlog = plan.ingest_backlog.max(1);
    println!("[ingest] publishing a backlog of {backlog} requests through the producer library");
    let started = Instant::now();
    let failed = futures::stream::iter(0..backlog)
        .map(|i| {
            let record = request(users[usize::try_from(i).unwrap_or(0) % users.len()], i);
            let producer = &producer;
            async move { producer.send_record(&record).await.is_err() }
        })
        .buffer_unordered(plan.max_in_flight.max(1))
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    anyhow::ensure!(failed == 0, "{failed} of {backlog} requests were not published");
    let produced_per_s = backlog as f64 / started.elapsed().as_secs_f64();
    println!("[ingest] published at {produced_per_s:.0}/s; starting the ingest");

    let mut ingest = p.spawn_ingest(infra, CONCURRENCY)?;
    ingest.wait_healthy("/health", Duration::from_secs(60)).await?;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notifications")
            .fetch_one(&p.db.pool)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    let deadline = Instant::now() + plan.drain_timeout();
    let cpu = CpuSnapshot::take();
    let (mut first, mut at_first) = (None, 0);
    let done = loop {
        let n = count().await.context("failed to count the notifications")?;
        if first.is_none() && n > 0 {
            first = Some(Instant::now());
            at_first = n;
        }
        if n >= backlog {
            break Instant::now();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the ingest accepted {n} of {backlog} requests in {} s; see {}",
            plan.drain_timeout_secs,
            ingest.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cpu = cpu.usage_until(&CpuSnapshot::take());
    let ingest_process = ingest.pid().and_then(sample);
    ingest.stop();
    let secs = first.map_or(0.0, |f| done.duration_since(f).as_secs_f64());
    let accepted_per_s = if secs > 0.0 {
        (backlog - at_first) as f64 / secs
    } else {
        backlog as f64
    };
    println!(
        "[ingest] {backlog} requests accepted at {accepted_per_s:.0}/s ({secs:.1} s); {}",
        cpu.summary()
    );
    Ok(IngestResult {
        backlog,
        produced_per_s,
        accepted_per_s,
        secs,
        concurrency: CONCURRENCY,
        cpu,
        ingest_process,
    })
}
