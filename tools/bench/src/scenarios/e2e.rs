//! `e2e`: notifications through the whole pipeline — gateway → outbox → relay → broker →
//! email worker → SMTP sink, statuses back through the status projector — at a fixed
//! offered rate; then again with the sink deferring a share of first attempts (retries);
//! and the sink alone, to show it is not what bounds the figures.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use anyhow::Context;
use lettre::{
    transport::smtp::{client::AsyncSmtpConnection, extension::ClientId},
    Message,
};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    load::{Latency, LoadResult},
    plan::{Plan, Step},
    procs::{delta, sample, scrape, CpuSnapshot, CpuUsage, ProcSample},
    scenarios::gateway::run_step,
    stack::{Infra, Pipeline, Sink, SinkStats, RETRY_DELAYS_MS},
};

/// Statuses after which nothing more happens to a notification in these runs.
const FINAL: &str = "('sent','delivered','bounced','skipped','dead_lettered','failed')";

/// One second of an e2e run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// Seconds since the run's first acceptance (by `created_at`).
    pub t_s: u32,
    /// Notifications accepted in that second and sent by the end.
    pub sent: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One e2e run at one failure rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct E2eRun {
    pub label: String,
    /// Share of first SMTP attempts the sink answered `451`.
    pub fail_rate: f64,
    /// The gateway side: offered, accepted, latency of the `202`.
    pub load: LoadResult,
    /// Notifications the gateway accepted.
    pub accepted: u64,
    /// Messages the sink accepted (duplicates included) and distinct Message-IDs.
    pub sink: SinkStats,
    /// Distinct deliveries per second: load start → last delivery.
    pub delivered_per_s: f64,
    /// Best 5-second window of deliveries per second.
    pub peak_delivered_per_s: f64,
    /// Whether every accepted notification reached a final status in time.
    pub drained: bool,
    /// Load end → every notification final (or the timeout).
    pub drain_secs: f64,
    /// Status `sent` at the end.
    pub sent: u64,
    /// Sent without any retry.
    pub first_pass_sent: u64,
    /// With at least one `retrying` entry, and of those, sent in the end.
    pub retried: u64,
    pub retried_sent: u64,
    pub dead_lettered: u64,
    /// Not final when the wait ended.
    pub unfinished: u64,
    /// `first_pass_sent / accepted` and `sent / accepted`.
    pub first_pass_success: f64,
    pub final_success: f64,
    /// Accepted (`created_at`) → sent (the worker's `sent` event), every sent notification.
    pub latency: Latency,
    pub latency_first_pass: Latency,
    pub latency_retried: Latency,
    pub timeline: Vec<LatencyPoint>,
    /// Deliveries per second at the sink, per second since the load started.
    pub delivered_timeline: Vec<f64>,
    /// Highest RSS / fds / sockets of each service during the run.
    pub peak_processes: BTreeMap<String, ProcSample>,
    /// CPU during the run (load and drain), by process name, machine-wide.
    #[serde(default)]
    pub cpu: CpuUsage,
    /// From the worker's metrics: attempts handled, and the mean time of the provider call
    /// (the SMTP dialogue) per attempt.
    #[serde(default)]
    pub worker_attempts: f64,
    #[serde(default)]
    pub worker_smtp_mean_ms: f64,
}

/// The sink on its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkCapacity {
    /// Mails sent over `TCP_NODELAY` connections, and what the sink took per second.
    pub mails: u64,
    /// SMTP sessions at once (the email worker's pool size).
    pub connections: usize,
    pub secs: f64,
    pub per_s: f64,
    pub errors: u64,
    /// The same over connections as lettre opens them itself (Nagle on).
    pub stock_mails: u64,
    pub stock_per_s: f64,
}

/// What the e2e scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct E2eResult {
    pub users: usize,
    /// Delays of the two retry tiers (one attempt each).
    pub retry_delays_ms: [u64; 2],
    pub runs: Vec<E2eRun>,
    pub sink_capacity: SinkCapacity,
}

/// A run whose queue drained within this many seconds of the load's end kept up with it (the
/// last notifications' own latency plus the status hop is well under it).
const KEPT_UP_DRAIN_SECS: f64 = 3.0;

/// The email worker's default SMTP pool size.
const SMTP_CONNECTIONS: usize = 8;

pub async fn run(infra: &Infra, plan: &Plan) -> anyhow::Result<E2eResult> {
    let sink_capacity = sink_capacity(infra, plan.sink_mails, SMTP_CONNECTIONS).await?;
    println!(
        "[e2e] sink alone: {} mails over {} TCP_NODELAY connections in {:.2} s: {:.0} mails/s (lettre's own connections, Nagle on: {:.0} mails/s)",
        sink_capacity.mails,
        sink_capacity.connections,
        sink_capacity.secs,
        sink_capacity.per_s,
        sink_capacity.stock_per_s
    );
    let mut runs = Vec::new();

    // 1. The offered rate. When the pipeline cannot keep up, its backlog stays in this
    //    pipeline's topics, so the next runs get a pipeline of their own.
    let (mut a, users) = prepared_pipeline(infra, plan, "e2e").await?;
    let label = format!("offered {}/s", plan.e2e.rate);
    let r0 = run_once(&a, &users, plan, plan.e2e, "e2e0", label, 0.0).await;
    a.stop();
    a.db.pool.close().await;
    let r0 = r0?;

    // 2. A rate the pipeline sustains: the offered rate if the first run kept up (its queue
    //    drained within KEPT_UP_DRAIN_SECS of the load's end), else 75% of the rate it delivered
    //    (load start → last delivery, i.e. its capacity while overloaded), rounded down to 10/s:
    //    latency without a growing queue, then the same with transient failures.
    let kept_up = r0.drained && r0.drain_secs <= KEPT_UP_DRAIN_SECS;
    let sustainable = if kept_up {
        plan.e2e.rate
    } else {
        let rate = (r0.delivered_per_s * 0.75 / 10.0).floor() as u32 * 10;
        rate.clamp(1, plan.e2e.rate)
    };
    let drained_first = kept_up;
    runs.push(r0);
    let step = Step::new(sustainable, plan.e2e.secs);
    let (mut b, users) = prepared_pipeline(infra, plan, "e2s").await?;
    let more = async {
        let mut out = Vec::new();
        if !drained_first {
            let label = format!("{sustainable}/s (sustainable), no failures");
            out.push(run_once(&b, &users, plan, step, "e2e1", label, 0.0).await?);
        }
        b.deliver_to_new_sink(infra, plan.e2e_fail_rate, "fail").await?;
        warm_up(&b, &users, "warmf", plan).await?;
        let label = format!(
            "{sustainable}/s, {:.0}% transient SMTP failures",
            plan.e2e_fail_rate * 100.0
        );
        out.push(run_once(&b, &users, plan, step, "e2e2", label, plan.e2e_fail_rate).await?);
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    b.stop();
    b.db.pool.close().await;
    runs.extend(more?);
    Ok(E2eResult {
        users: plan.e2e_users,
        retry_delays_ms: RETRY_DELAYS_MS,
        runs,
        sink_capacity,
    })
}

/// A pipeline with recipients, the template, and a worker delivering to a sink without
/// failures, warmed up.
async fn prepared_pipeline(infra: &Infra, plan: &Plan, tag: &str) -> anyhow::Result<(Pipeline, Vec<Uuid>)> {
    let mut p = Pipeline::start(infra, tag, true).await?;
    let users = p.seed(plan.e2e_users).await?;
    p.deliver_to_new_sink(infra, 0.0, "ok").await?;
    warm_up(&p, &users, &format!("warm{tag}"), plan).await?;
    Ok((p, users))
}

fn print_run(r: &E2eRun) {
    println!("[e2e]   {}", r.cpu.summary());
    println!(
        "[e2e]   worker: {:.0} SMTP attempts, {:.1} ms each on average",
        r.worker_attempts, r.worker_smtp_mean_ms
    );
    println!(
        "[e2e] {}: offered {}/s × {} s, accepted {}, delivered {:.0}/s (peak {:.0}/s), accepted→sent p50 {:.1} ms p99 {:.1} ms, first-pass {:.2}%, final {:.2}%, retried {}{}",
        r.label,
        r.load.offered_rate,
        r.load.secs,
        r.accepted,
        r.delivered_per_s,
        r.peak_delivered_per_s,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.first_pass_success * 100.0,
        r.final_success * 100.0,
        r.retried,
        if r.drained { "" } else { " (NOT drained)" }
    );
}

/// A few notifications, waited for: caches warm, consumers assigned.
pub async fn warm_up(p: &Pipeline, users: &[Uuid], tag: &str, plan: &Plan) -> anyhow::Result<()> {
    let step = Step::new(20, 1.0);
    let load = send(p, users, step, plan, tag).await;
    anyhow::ensure!(
        load.ok > 0,
        "the gateway accepted nothing during the warm-up: {:?}",
        load.errors
    );
    wait_final(&p.db.pool, tag, load.ok, Duration::from_secs(60)).await?;
    Ok(())
}

pub async fn send(p: &Pipeline, users: &[Uuid], step: Step, plan: &Plan, tag: &str) -> LoadResult {
    run_step(
        &p.http,
        &format!("{}/api/v1/notifications/", p.gateway.url()),
        Some(&p.send_token),
        step,
        plan.max_in_flight,
        tag,
        users,
    )
    .await
}

/// Samples the sink's counters every 250 ms and every service's `/proc` every second, until
/// stopped.
struct Monitor {
    sink: Arc<Mutex<Vec<(f64, u64)>>>,
    peaks: Arc<Mutex<BTreeMap<String, ProcSample>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    fn start(p: &Pipeline, t0: Instant) -> anyhow::Result<Self> {
        let sink_url = p
            .sink
            .as_ref()
            .map(|s: &Sink| format!("{}/stats", s.service.url()))
            .context("no sink")?;
        let procs = p.processes();
        let sink: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
        let peaks: Arc<Mutex<BTreeMap<String, ProcSample>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let http = p.http.clone();
        let task = {
            let (sink, peaks, stop) = (sink.clone(), peaks.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(r) = http.get(&sink_url).send().await {
                        if let Ok(s) = r.json::<SinkStats>().await {
                            sink.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((t0.elapsed().as_secs_f64(), s.unique_message_ids));
                        }
                    }
                    if tick.is_multiple_of(4) {
                        let mut peaks = peaks.lock().unwrap_or_else(PoisonError::into_inner);
                        for (name, pid) in &procs {
                            if let Some(s) = sample(*pid) {
                                let e = peaks.entry((*name).to_string()).or_default();
                                e.rss_kib = e.rss_kib.max(s.rss_kib);
                                e.fds = e.fds.max(s.fds);
                                e.sockets = e.sockets.max(s.sockets);
                            }
                        }
                    }
                    tick += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        Ok(Self {
            sink,
            peaks,
            stop,
            task,
        })
    }

    async fn finish(self) -> (Vec<(f64, u64)>, BTreeMap<String, ProcSample>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let sink = std::mem::take(&mut *self.sink.lock().unwrap_or_else(PoisonError::into_inner));
        let peaks = std::mem::take(&mut *self.peaks.lock().unwrap_or_else(PoisonError::into_inner));
        (sink, peaks)
    }
}

/// One run: the load, the wait for the pipeline to finish, the figures.
#[allow(clippy::too_many_arguments)]
async fn run_once(
    p: &Pipeline,
    users: &[Uuid],
    plan: &Plan,
    step: Step,
    tag: &str,
    label: String,
    fail_rate: f64,
) -> anyhow::Result<E2eRun> {
    let before = p.sink_stats().await?;
    let worker_url = p.worker.as_ref().map(|w| w.url()).unwrap_or_default();
    let m0 = scrape(&p.http, &worker_url).await;
    let cpu = CpuSnapshot::take();
    let t0 = Instant::now();
    let monitor = Monitor::start(p, t0)?;
    let load = send(p, users, step, plan, tag).await;
    let load_end = Instant::now();
    let drained = wait_final(&p.db.pool, tag, load.ok, plan.drain_timeout()).await.is_ok();
    let drain_secs = load_end.elapsed().as_secs_f64();
    let cpu = cpu.usage_until(&CpuSnapshot::take());
    let m1 = scrape(&p.http, &worker_url).await;
    // One more sample after the last delivery.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sink_samples, peak_processes) = monitor.finish().await;
    let after = p.sink_stats().await?;
    let sink = SinkStats {
        received: after.received - before.received,
        unique_message_ids: after.unique_message_ids - before.unique_message_ids,
        deferred: after.deferred - before.deferred,
    };
    let outcomes = outcomes(&p.db.pool, tag).await?;
    let (delivered_per_s, peak_delivered_per_s, delivered_timeline) = delivery_rates(&sink_samples);
    let mut run = summarise(
        label,
        fail_rate,
        load,
        sink,
        &outcomes,
        drained,
        drain_secs,
        delivered_per_s,
        peak_delivered_per_s,
        delivered_timeline,
        peak_processes,
    );
    run.cpu = cpu;
    run.worker_attempts = delta(&m0, &m1, "worker_delivery_duration_seconds_count");
    run.worker_smtp_mean_ms =
        1000.0 * delta(&m0, &m1, "worker_delivery_duration_seconds_sum") / run.worker_attempts.max(1.0);
    print_run(&run);
    Ok(run)
}

/// (deliveries per second over the whole run, best 5-second window, per-second series).
fn delivery_rates(samples: &[(f64, u64)]) -> (f64, f64, Vec<f64>) {
    let Some(&(_, last)) = samples.last() else {
        return (0.0, 0.0, Vec::new());
    };
    let first = samples.first().map_or(0, |s| s.1);
    let done_at = samples.iter().find(|(_, n)| *n == last).map_or(0.0, |(t, _)| *t);
    let overall = if done_at > 0.0 {
        (last - first) as f64 / done_at
    } else {
        0.0
    };
    let count_at = |t: f64| {
        samples
            .iter()
            .take_while(|(ts, _)| *ts <= t)
            .last()
            .map_or(first, |s| s.1)
    };
    let end = samples.last().map_or(0.0, |s| s.0);
    let mut peak: f64 = 0.0;
    let mut series = Vec::new();
    let mut t = 0.0;
    while t + 1.0 <= end {
        series.push((count_at(t + 1.0) - count_at(t)) as f64);
        if t + 5.0 <= end {
            peak = peak.max((count_at(t + 5.0) - count_at(t)) as f64 / 5.0);
        }
        t += 1.0;
    }
    if peak == 0.0 {
        peak = overall;
    }
    (overall, peak, series)
}

/// Waits until every notification of the run (`request_id` starting with `<tag>-`) has a
/// final status. Errors after `timeout`, or earlier once the pace of the last 5 s cannot
/// finish the rest in the time left (an overloaded pipeline: no point waiting).
pub async fn wait_final(pool: &PgPool, tag: &str, expected: u64, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + timeout;
    let pattern = format!("{tag}-%");
    let mut history: std::collections::VecDeque<(Instant, u64)> = Default::default();
    loop {
        let done: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM notifications WHERE request_id LIKE $1 AND status IN {FINAL}"
        ))
        .bind(&pattern)
        .fetch_one(pool)
        .await
        .context("failed to count final notifications")?;
        let done = u64::try_from(done).unwrap_or(0);
        if done >= expected {
            return Ok(());
        }
        let now = Instant::now();
        anyhow::ensure!(
            now < deadline,
            "{done} of {expected} notifications final after {timeout:?}"
        );
        history.push_back((now, done));
        while history.len() > 1 && now - history[0].0 > Duration::from_secs(5) {
            history.pop_front();
        }
        if let Some(&(t, d)) = history.front() {
            let window = (now - t).as_secs_f64();
            if window >= 4.0 && now - started >= Duration::from_secs(5) {
                let pace = (done - d) as f64 / window;
                let needed = (expected - done) as f64 / pace.max(1e-9);
                anyhow::ensure!(
                    needed <= (deadline - now).as_secs_f64(),
                    "{done} of {expected} notifications final; at {pace:.0}/s the rest needs {needed:.0} s, more than the {timeout:?} allowed"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What happened to one notification.
pub struct NotificationOutcome {
    pub created_ms: f64,
    pub status: String,
    /// Accepted → the worker's `sent` event.
    pub sent_after_ms: Option<f64>,
    pub retried: bool,
}

/// Every notification of the run, read back from the database.
pub async fn outcomes(pool: &PgPool, tag: &str) -> anyhow::Result<Vec<NotificationOutcome>> {
    let rows = sqlx::query(
        "SELECT (EXTRACT(EPOCH FROM n.created_at) * 1000)::float8 AS created_ms,
                n.status,
                (SELECT (EXTRACT(EPOCH FROM min(h.occurred_at) - n.created_at) * 1000)::float8
                   FROM notification_status_history h
                  WHERE h.notification_id = n.id AND h.status = 'sent') AS sent_after_ms,
                EXISTS (SELECT 1 FROM notification_status_history h
                         WHERE h.notification_id = n.id AND h.status = 'retrying') AS retried
           FROM notifications n
          WHERE n.request_id LIKE $1",
    )
    .bind(format!("{tag}-%"))
    .fetch_all(pool)
    .await
    .context("failed to read the outcomes")?;
    rows.iter()
        .map(|r| {
            Ok(NotificationOutcome {
                created_ms: r.try_get("created_ms")?,
                status: r.try_get("status")?,
                sent_after_ms: r.try_get("sent_after_ms")?,
                retried: r.try_get("retried")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("bad outcome row")
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    label: String,
    fail_rate: f64,
    load: LoadResult,
    sink: SinkStats,
    outcomes: &[NotificationOutcome],
    drained: bool,
    drain_secs: f64,
    delivered_per_s: f64,
    peak_delivered_per_s: f64,
    delivered_timeline: Vec<f64>,
    peak_processes: BTreeMap<String, ProcSample>,
) -> E2eRun {
    let accepted = outcomes.len() as u64;
    let count = |f: &dyn Fn(&NotificationOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as u64;
    let sent = count(&|o| o.status == "sent" || o.status == "delivered");
    let first_pass_sent = count(&|o| o.sent_after_ms.is_some() && !o.retried);
    let retried = count(&|o| o.retried);
    let retried_sent = count(&|o| o.retried && o.sent_after_ms.is_some());
    let dead_lettered = count(&|o| o.status == "dead_lettered");
    let unfinished = count(&|o| o.status == "pending" || o.status == "retrying");
    let lat = |f: &dyn Fn(&NotificationOutcome) -> bool| {
        Latency::of_millis(outcomes.iter().filter(|o| f(o)).filter_map(|o| o.sent_after_ms))
    };
    let share = |n: u64| {
        if accepted > 0 {
            n as f64 / accepted as f64
        } else {
            0.0
        }
    };
    E2eRun {
        label,
        fail_rate,
        accepted,
        sink,
        delivered_per_s,
        peak_delivered_per_s,
        drained,
        drain_secs,
        sent,
        first_pass_sent,
        retried,
        retried_sent,
        dead_lettered,
        unfinished,
        first_pass_success: share(first_pass_sent),
        final_success: share(sent),
        latency: lat(&|_| true),
        latency_first_pass: lat(&|o| !o.retried),
        latency_retried: lat(&|o| o.retried),
        timeline: timeline(outcomes),
        delivered_timeline,
        peak_processes,
        load,
        cpu: CpuUsage::default(),
        worker_attempts: 0.0,
        worker_smtp_mean_ms: 0.0,
    }
}

/// p50/p99 of accepted → sent per second of acceptance.
pub fn timeline(outcomes: &[NotificationOutcome]) -> Vec<LatencyPoint> {
    let Some(start) = outcomes.iter().map(|o| o.created_ms).min_by(f64::total_cmp) else {
        return Vec::new();
    };
    let mut by_second: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for o in outcomes {
        if let Some(ms) = o.sent_after_ms {
            let s = ((o.created_ms - start) / 1000.0).max(0.0) as u32;
            by_second.entry(s).or_default().push(ms);
        }
    }
    by_second
        .into_iter()
        .map(|(t_s, v)| {
            let l = Latency::of_millis(v);
            LatencyPoint {
                t_s,
                sent: l.count,
                p50_ms: l.p50_ms,
                p99_ms: l.p99_ms,
            }
        })
        .collect()
}

/// Sends mails straight to a fresh sink with lettre, `connections` sessions at once: first
/// over plain TCP connections as lettre opens them itself, then over connections with
/// `TCP_NODELAY` (as the email worker's pool opens them). lettre writes a message's body and its final `.` in two
/// writes before reading the reply; with Nagle's algorithm on, the second waits for the
/// server's (delayed) ACK of the first, about 40 ms on Linux, so the first figure is bounded
/// by that stall and the second shows what the sink itself can take.
async fn sink_capacity(infra: &Infra, mails: u64, connections: usize) -> anyhow::Result<SinkCapacity> {
    let mut sink = Sink::start(infra, "e2e-smtp-sink-alone", 0.0).await?;
    let port = sink.smtp_port;
    let conns = u64::try_from(connections.max(1)).unwrap_or(1);
    let per_conn = mails.div_ceil(conns).max(1);
    // Nagle on: the stall makes this slow, so fewer mails suffice.
    let stock_per_conn = per_conn.min(40);
    let (stock_secs, stock_errors) = send_mails(port, conns, stock_per_conn, false).await?;
    let before = sink.stats().await?.received;
    let (secs, errors) = send_mails(port, conns, per_conn, true).await?;
    let received = sink.stats().await?.received - before;
    sink.service.stop();
    Ok(SinkCapacity {
        mails: conns * per_conn,
        connections,
        secs,
        per_s: received as f64 / secs.max(1e-3),
        errors,
        stock_mails: conns * stock_per_conn,
        stock_per_s: (conns * stock_per_conn - stock_errors) as f64 / stock_secs.max(1e-3),
    })
}

/// `conns` sessions sending `each` mails one after the other; returns (seconds, errors).
async fn send_mails(port: u16, conns: u64, each: u64, nodelay: bool) -> anyhow::Result<(f64, u64)> {
    let message = |i: u64| -> anyhow::Result<Message> {
        Message::builder()
            .from("Notifications <no-reply@notify.test>".parse()?)
            .to(format!("bench-{}@example.com", i % 200).parse()?)
            .subject("Welcome, Ada Lovelace")
            .message_id(Some(format!("<{}@bench.test>", Uuid::new_v4())))
            .body("Hello Ada Lovelace, start at https://example.com/start".to_string())
            .context("failed to build a message")
    };
    let started = Instant::now();
    let sessions = (0..conns).map(|c| async move {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .context("failed to connect to the sink")?;
        stream.set_nodelay(nodelay).context("failed to set TCP_NODELAY")?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::default())
            .await
            .context("SMTP greeting failed")?;
        let mut errors = 0u64;
        for i in 0..each {
            let m = message(c * each + i)?;
            if conn.send(m.envelope(), &m.formatted()).await.is_err() {
                errors += 1;
            }
        }
        let _ = conn.quit().await;
        Ok::<_, anyhow::Error>(errors)
    });
    let mut errors = 0;
    for r in futures::future::join_all(sessions).await {
        errors += r?;
    }
    Ok((started.elapsed().as_secs_f64(), errors))
}
