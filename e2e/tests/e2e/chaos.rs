//! The chaos run: a steady stream of notifications through the whole pipeline (gateway →
//! relay → workers → SMTP → projector) while a schedule of faults hits every part of it, then
//! a reconciliation of the database, the topics and the SMTP server's mailbox.
//!
//! Everything runs on servers of the test's own (PostgreSQL, Redis, broker, registry, SMTP),
//! so the faults never reach the shared ones. Short by default (each fault once, about a
//! minute of traffic); `CHAOS_LONG=1` runs `CHAOS_MINUTES` (10) minutes of traffic, the
//! schedule repeated until then.
//!
//! Known: the run does not drain yet. From the PostgreSQL crash on, one worker stops settling
//! the records of its partitions: they are on the topic, its group's committed offsets stay
//! where they were, it is not paused (see docs/operations.md). Hence `#[ignore]` for now.
//!
//! Also known: a worker SIGSTOPped past its consumer session (`freeze email-worker 0`) leaves one
//! partition of its group unconsumed after SIGCONT on the local broker (tansu 0.6): the run
//! then never drains. That fault runs only with `CHAOS_FREEZE=1` until it is solved.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::harness::{Servers, Stack, Tiers};
use notify_store::state_machine::{can_transition, Status};
use serde_json::{json, Value};
use sqlx::Row;
use test_support::{
    postgres::PrivatePostgres,
    redis::PrivateRedis,
    servers::{PrivateBroker, PrivateRegistry},
    smtp::Mode,
};
use uuid::Uuid;

/// Upper bound of every wait for the pipeline to make progress (a noisy 2-core machine).
const PROGRESS: Duration = Duration::from_secs(120);
/// Longest a gateway answer may take while PostgreSQL is down: the pool's acquire timeout
/// (5 s) and a wide margin for a loaded 2-core machine (9.4 s seen); beyond that it is a hang.
const GATEWAY_ANSWER_BOUND: Duration = Duration::from_secs(15);
/// The SMTP timeout of the workers in this run.
const SMTP_TIMEOUT_MS: u64 = 2000;
/// The whole retry schedule of this run: 2 × 300 ms, then 2 × 600 ms.
const TIERS: Tiers = Tiers {
    first_delay_ms: 300,
    first_attempts: 2,
    second_delay_ms: 600,
    second_attempts: 2,
};
/// How long the outages of Redis, the SMTP server and a stopped worker last: longer than the
/// retry schedule (1.8 s) and, for the stopped worker, than the consumer session (10 s).
const OUTAGE: Duration = Duration::from_secs(6);
const STOPPED_WORKER: Duration = Duration::from_secs(14);

/// One answer of the gateway to a send.
#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    latency: Duration,
    /// HTTP status, or `None` when no answer came (connection refused, client timeout).
    status: Option<u16>,
    /// `error.code` of the envelope of a failure.
    code: Option<String>,
}

/// What the traffic generator saw.
#[derive(Default)]
struct Traffic {
    /// request_id → notification id, for every request answered 202.
    accepted: HashMap<String, Uuid>,
    /// request_ids that were never answered 202 (given up at the end of the run).
    given_up: Vec<String>,
    answers: Vec<Answer>,
}

/// One fault of the schedule, once injected.
#[derive(Debug, Clone)]
struct Fault {
    kind: &'static str,
    /// Messages in the SMTP server when it was injected, and once the pipeline delivered
    /// again after it.
    delivered_before: usize,
    delivered_after: usize,
    /// Whether it could make a worker send a message twice (a worker killed or frozen
    /// between a send and its ledger write).
    may_duplicate: bool,
}

/// The kinds, in the order of one round of the schedule.
const SCHEDULE: &[&str] = &[
    "kill relay",
    "kill email-worker 0",
    "kill projector",
    "stop postgres",
    "kill email-worker 1",
    "kill broker",
    "stop redis",
    "kill registry",
    "smtp refuses",
    "smtp hangs",
    "freeze email-worker 0",
];

struct Run {
    stack: Stack,
    pg: PrivatePostgres,
    redis: PrivateRedis,
    broker: PrivateBroker,
    registry: PrivateRegistry,
    faults: Vec<Fault>,
    /// The gateway's answers while PostgreSQL was down: (longest, count, every one a 503
    /// with the envelope).
    pg_outage_latency: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "does not drain yet: from the PostgreSQL crash on, one worker stops settling the \
            records of its partitions (committed offsets stay, not paused); run with \
            --ignored (docs/operations.md#the-chaos-run)"]
async fn chaos_every_accepted_notification_is_delivered_or_dead_lettered_once_through_a_schedule_of_faults() {
    let long = std::env::var("CHAOS_LONG").is_ok_and(|v| v == "1");
    let traffic_for = if long {
        let minutes: u64 = std::env::var("CHAOS_MINUTES")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(10);
        Duration::from_secs(60 * minutes)
    } else {
        Duration::from_secs(60)
    };
    let rate: u32 = std::env::var("CHAOS_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let started = Instant::now();

    // Arrange: servers of our own, every service, two email workers, users and a template.
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await.unwrap();
    let redis = tokio::task::spawn_blocking(PrivateRedis::start_persistent)
        .await
        .unwrap();
    let broker = tokio::task::spawn_blocking(PrivateBroker::start).await.unwrap();
    let registry = tokio::task::spawn_blocking(PrivateRegistry::start).await.unwrap();
    let servers = Servers {
        admin_database_url: pg.admin_url(),
        redis_url: redis.url(),
        kafka_bootstrap: broker.bootstrap(),
        registry_url: registry.url(),
    };
    // Services log errors only (CHAOS_LOG to change it): the faults make them warn a lot.
    let env = [
        ("APP_SMTP_TIMEOUT_MS", SMTP_TIMEOUT_MS.to_string()),
        (
            "RUST_LOG",
            std::env::var("CHAOS_LOG").unwrap_or_else(|_| "error".into()),
        ),
    ];
    let mut stack = Stack::start_on(servers, TIERS, &env).await;
    stack.welcome_template().await;
    let mut users = Vec::new();
    for i in 0..24 {
        users.push(
            stack
                .create_user(
                    &format!("user{i}@example.com"),
                    None,
                    json!({"email": true, "push": false}),
                )
                .await,
        );
    }
    // One user opted out of email: their notifications are `skipped`.
    let opted_out = stack
        .create_user("quiet@example.com", None, json!({"email": false, "push": false}))
        .await;
    users.push(opted_out);
    // Static membership: a restarted worker takes its old place at once (see the harness).
    stack.add_email_worker_with(Some("chaos-0")).await;
    stack.add_email_worker_with(Some("chaos-1")).await;
    eprintln!("chaos: stack up after {:?}", started.elapsed());

    // Act: traffic, and the schedule of faults while it flows.
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(send_steadily(
        stack.gateway.url(),
        stack.token.clone(),
        users,
        rate,
        Arc::clone(&traffic),
        Arc::clone(&stop),
    ));
    let mut run = Run {
        stack,
        pg,
        redis,
        broker,
        registry,
        faults: Vec::new(),
        pg_outage_latency: Duration::ZERO,
    };
    let traffic_started = Instant::now();
    let mut round = 0;
    // The frozen worker stalls a partition on the local broker (see the module doc): only
    // with CHAOS_FREEZE=1 until that is solved.
    let freeze = std::env::var("CHAOS_FREEZE").is_ok_and(|v| v == "1");
    loop {
        for kind in SCHEDULE.iter().filter(|k| freeze || !k.starts_with("freeze")) {
            run.inject(kind, &traffic).await;
        }
        round += 1;
        if !long || traffic_started.elapsed() >= traffic_for {
            break;
        }
    }
    // Keep the stream going for the rest of its time (conditions are on the clock here: the
    // traffic itself is timed).
    while traffic_started.elapsed() < traffic_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    let traffic_secs = traffic_started.elapsed().as_secs_f64();
    eprintln!("chaos: {round} round(s) of faults, traffic stopped after {traffic_secs:.0} s; draining");

    // Assert: everything accepted reaches a final state, then reconcile.
    let (accepted, given_up) = {
        let t = lock(&traffic);
        (t.accepted.clone(), t.given_up.clone())
    };
    assert!(
        given_up.is_empty(),
        "requests never accepted (a client would retry them): {given_up:?}"
    );
    run.drain(accepted.len()).await;
    run.reconcile(&accepted, traffic_secs, started).await;
}

/// Sends `rate` notifications a second until `stop`, each (like a careful client) retried with
/// its `request_id` until it is answered 202; records every answer.
async fn send_steadily(
    gateway: String,
    token: String,
    users: Vec<Uuid>,
    rate: u32,
    traffic: Arc<Mutex<Traffic>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = Vec::new();
    let mut i: usize = 0;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let user = users[i % users.len()];
        let request_id = format!("chaos-{i}");
        // Mostly normal priority; every tenth one high (the priority topic and loop).
        let priority = if i.is_multiple_of(10) {
            9
        } else {
            1 + i32::try_from(i % 5).unwrap()
        };
        let body = json!({
            "notification_type": "email",
            "user_id": user,
            "template_code": "welcome_email",
            "variables": {"name": format!("User {i}"), "link": "https://x.test"},
            "request_id": request_id,
            "priority": priority,
            "metadata": {}
        });
        let (http, url, token, traffic) = (
            http.clone(),
            format!("{gateway}/api/v1/notifications/"),
            token.clone(),
            Arc::clone(&traffic),
        );
        tasks.push(tokio::spawn(async move {
            let give_up = Instant::now() + Duration::from_secs(180);
            loop {
                let at = Instant::now();
                let resp = http.post(&url).bearer_auth(&token).json(&body).send().await;
                let (status, v) = match resp {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (Some(status), r.json::<Value>().await.unwrap_or(Value::Null))
                    }
                    Err(_) => (None, Value::Null),
                };
                let answer = Answer {
                    at,
                    latency: at.elapsed(),
                    status,
                    code: v["error"]["code"].as_str().map(str::to_string),
                };
                let done = {
                    let mut t = lock(&traffic);
                    t.answers.push(answer);
                    if status == Some(202) {
                        let id = v["data"]["notification_id"].as_str().unwrap().parse().unwrap();
                        let previous = t.accepted.insert(request_id.clone(), id);
                        assert!(previous.is_none_or(|p| p == id), "request {request_id}: two ids");
                        true
                    } else if Instant::now() > give_up {
                        t.given_up.push(request_id.clone());
                        true
                    } else {
                        false
                    }
                };
                if done {
                    return;
                }
                // The client's back-off between tries, not a wait for a condition.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
        i += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The traffic record, even after a panic elsewhere (the test fails with the first panic's
/// message, not a cascade of poisoned locks).
fn lock(traffic: &Mutex<Traffic>) -> std::sync::MutexGuard<'_, Traffic> {
    traffic.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

impl Run {
    fn delivered(&self) -> usize {
        self.stack.smtp.messages().len()
    }

    /// Waits until the SMTP server received more than `than` messages; on time-out, says
    /// where the pipeline stands.
    async fn wait_delivered_more_than(&self, than: usize, after: &str) -> usize {
        let deadline = Instant::now() + PROGRESS;
        loop {
            let n = self.delivered();
            if n > than {
                return n;
            }
            if Instant::now() > deadline {
                panic!(
                    "no delivery beyond {than} within {PROGRESS:?} after {after}: {}",
                    self.where_it_stands().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The statuses, the outbox, each worker's pause gauges and consumer lag, the SMTP
    /// server's counters: what a stalled run reports.
    async fn where_it_stands(&self) -> String {
        let pool = &self.stack.db.pool;
        let statuses: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM notifications GROUP BY status")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
        let unpublished: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(pool)
            .await
            .ok();
        let mut workers = Vec::new();
        for w in &self.stack.workers {
            let metrics = match reqwest::get(format!("{}/metrics", w.url())).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => format!("no answer: {e}"),
            };
            let lines: Vec<&str> = metrics
                .lines()
                .filter(|l| {
                    (l.starts_with("worker_consumption_paused") || l.starts_with("kafka_consumer_lag"))
                        && !l.ends_with(" 0")
                })
                .collect();
            workers.push(lines.join("; "));
        }
        format!(
            "statuses {statuses:?}, unpublished outbox rows {unpublished:?}, delivered {}, smtp refused {} hung {}, \
             workers (non-zero gauges) {workers:#?}",
            self.delivered(),
            self.stack.smtp.refused(),
            self.stack.smtp.hung()
        )
    }

    /// Injects one fault mid-stream: waits for deliveries since the last one (the stream
    /// flows), injects it, shows it landed (the process is gone, the outage is seen), ends it,
    /// and waits for deliveries after it.
    async fn inject(&mut self, kind: &'static str, traffic: &Mutex<Traffic>) {
        let last = self.faults.last().map_or(0, |f| f.delivered_after);
        // At least 20 deliveries between two faults.
        let before = self.wait_delivered_more_than(last + 19, "the previous fault").await;
        let t0 = Instant::now();
        let mut may_duplicate = false;
        match kind {
            "kill relay" => kill_and_restart(&mut self.stack.relay).await,
            "kill projector" => kill_and_restart(&mut self.stack.projector).await,
            "kill email-worker 0" | "kill email-worker 1" => {
                let i = if kind.ends_with('0') { 0 } else { 1 };
                kill_and_restart(&mut self.stack.workers[i]).await;
                may_duplicate = true;
            }
            "freeze email-worker 0" => {
                let w = &self.stack.workers[0];
                w.signal("STOP");
                let state = std::fs::read_to_string(format!("/proc/{}/stat", w.pid().unwrap())).unwrap();
                assert!(state.contains(") T "), "the worker is stopped: {state}");
                // Past its consumer session (10 s); meanwhile the other worker delivers.
                let during = self.delivered();
                tokio::time::sleep(STOPPED_WORKER).await;
                w.signal("CONT");
                eprintln!(
                    "chaos: {} delivered while worker 0 was frozen",
                    self.delivered() - during
                );
                w.wait_healthy().await;
                may_duplicate = true;
            }
            "kill broker" => {
                let pid = self.broker.pid().unwrap();
                self.broker.stop();
                assert!(!pid_alive(pid), "the broker is gone");
                tokio::time::sleep(Duration::from_secs(3)).await;
                let b = &mut self.broker;
                tokio::task::block_in_place(|| b.restart());
            }
            "kill registry" => {
                let pid = self.registry.pid().unwrap();
                self.registry.stop();
                assert!(!pid_alive(pid), "the registry is gone");
                tokio::time::sleep(Duration::from_secs(3)).await;
                let r = &mut self.registry;
                tokio::task::block_in_place(|| r.restart());
                // It keeps schemas in memory: the deploy step registers them again.
                test_support::ensure_schemas_at(&self.registry.url()).await;
            }
            "stop redis" => {
                let pid = self.redis.pid().unwrap();
                self.redis.stop();
                assert!(!pid_alive(pid), "redis is gone");
                tokio::time::sleep(OUTAGE).await;
                let r = &mut self.redis;
                tokio::task::block_in_place(|| r.restart());
            }
            "smtp refuses" => {
                let refused = self.stack.smtp.refused();
                self.stack.smtp.set_mode(Mode::TransientFailure);
                test_support::wait_for("the SMTP server to refuse a message", PROGRESS, || async {
                    (self.stack.smtp.refused() > refused).then_some(())
                })
                .await;
                tokio::time::sleep(OUTAGE).await;
                self.stack.smtp.set_mode(Mode::Accept);
            }
            "smtp hangs" => {
                let hung = self.stack.smtp.hung();
                self.stack.smtp.set_mode(Mode::Hang);
                test_support::wait_for("the SMTP server to hold a session", PROGRESS, || async {
                    (self.stack.smtp.hung() > hung).then_some(())
                })
                .await;
                tokio::time::sleep(OUTAGE).await;
                self.stack.smtp.set_mode(Mode::Accept);
            }
            "stop postgres" => self.postgres_outage(traffic).await,
            other => panic!("unknown fault {other}"),
        }
        let after = self.wait_delivered_more_than(self.delivered(), kind).await;
        eprintln!(
            "chaos: {kind}: {before} delivered before, {after} after, {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        self.faults.push(Fault {
            kind,
            delivered_before: before,
            delivered_after: after,
            may_duplicate,
        });
    }

    /// PostgreSQL crashes for [`OUTAGE`]: the gateway answers every send with a 503 and the
    /// envelope within [`GATEWAY_ANSWER_BOUND`], its readiness says so, and it recovers by
    /// itself once PostgreSQL is back.
    async fn postgres_outage(&mut self, traffic: &Mutex<Traffic>) {
        let health = format!("{}/health", self.stack.gateway.url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let pid = self.pg.pid().unwrap();
        let down_at = Instant::now();
        let pg = &mut self.pg;
        tokio::task::block_in_place(|| pg.stop());
        assert!(!pid_alive(pid), "postgres is gone");
        test_support::wait_for("the gateway's readiness to fail", GATEWAY_ANSWER_BOUND * 2, || async {
            let r = http.get(&health).send().await.ok()?;
            (r.status().as_u16() == 503).then_some(())
        })
        .await;
        // Let the stream hit the gateway for the whole outage.
        tokio::time::sleep(OUTAGE).await;
        let back_at = Instant::now();
        let pg = &mut self.pg;
        tokio::task::block_in_place(|| pg.restart());
        let up_at = Instant::now();
        test_support::wait_for("the gateway's readiness to recover", PROGRESS, || async {
            let r = http.get(&health).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        test_support::wait_for("the gateway to accept again", PROGRESS, || async {
            let t = lock(traffic);
            t.answers
                .iter()
                .any(|a| a.at > up_at && a.status == Some(202))
                .then_some(())
        })
        .await;
        // Every send made while it was down was answered in time: 503 with the envelope if
        // the answer came before PostgreSQL was started again, 503 or 202 after (a send that
        // waited for a connection gets one once the server is back).
        let t = lock(traffic);
        let during: Vec<&Answer> = t
            .answers
            .iter()
            .filter(|a| a.at >= down_at + Duration::from_millis(500) && a.at < up_at)
            .collect();
        let unavailable = |a: &Answer| a.status == Some(503) && a.code.as_deref() == Some("unavailable");
        for a in &during {
            assert!(a.latency <= GATEWAY_ANSWER_BOUND, "answered within its timeout: {a:?}");
            if a.at + a.latency < back_at {
                assert!(unavailable(a), "a 503 with the envelope while down: {a:?}");
            } else {
                assert!(unavailable(a) || a.status == Some(202), "503 or 202 once back: {a:?}");
            }
        }
        assert!(
            during.iter().filter(|a| unavailable(a)).count() > 0,
            "the stream met the outage: {during:?}"
        );
        self.pg_outage_latency = during.iter().map(|a| a.latency).max().unwrap_or_default();
        eprintln!(
            "chaos: postgres down {:.1} s: {} sends answered 503, longest {:?}",
            (up_at - down_at).as_secs_f64(),
            during.len(),
            self.pg_outage_latency
        );
    }

    /// Waits until the relay published every outbox row and no accepted notification is
    /// still on its way (`pending` or `retrying`).
    async fn drain(&self, accepted: usize) {
        let pool = &self.stack.db.pool;
        let deadline = Instant::now() + PROGRESS * 3;
        loop {
            let row = sqlx::query(
                "SELECT (SELECT count(*) FROM notifications) AS total, \
                        (SELECT count(*) FROM notifications WHERE status IN ('pending', 'retrying')) AS open, \
                        (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished",
            )
            .fetch_one(pool)
            .await
            .ok();
            if let Some(row) = row {
                let (total, open, unpublished): (i64, i64, i64) =
                    (row.get("total"), row.get("open"), row.get("unpublished"));
                if total as usize >= accepted && open == 0 && unpublished == 0 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "the pipeline did not drain within {:?}: {}",
                    PROGRESS * 3,
                    self.where_it_stands().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn reconcile(&self, accepted: &HashMap<String, Uuid>, traffic_secs: f64, started: Instant) {
        let pool = &self.stack.db.pool;
        let accepted_ids: HashSet<Uuid> = accepted.values().copied().collect();
        assert_eq!(accepted_ids.len(), accepted.len(), "one notification per request_id");

        // The database: exactly the accepted notifications, each status the fold of its history.
        let rows = sqlx::query("SELECT id, request_id, status, attempts FROM notifications")
            .fetch_all(pool)
            .await
            .unwrap();
        let mut status_of: HashMap<Uuid, String> = HashMap::new();
        for r in &rows {
            let id: Uuid = r.get("id");
            let request_id: String = r.get("request_id");
            assert_eq!(
                accepted.get(&request_id),
                Some(&id),
                "a stored notification was accepted"
            );
            status_of.insert(id, r.get("status"));
        }
        assert_eq!(status_of.len(), accepted.len(), "every accepted notification is stored");
        let history = sqlx::query(
            "SELECT notification_id, status, attempt, applied FROM notification_status_history ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let mut histories: HashMap<Uuid, Vec<(String, i32, bool)>> = HashMap::new();
        for h in &history {
            histories.entry(h.get("notification_id")).or_default().push((
                h.get("status"),
                h.get("attempt"),
                h.get("applied"),
            ));
        }
        let attempts_of: HashMap<Uuid, i32> = rows.iter().map(|r| (r.get("id"), r.get("attempts"))).collect();
        let mut inconsistent = Vec::new();
        for (id, status) in &status_of {
            let h = histories.get(id).map(Vec::as_slice).unwrap_or_default();
            let (folded, attempt) = fold(h);
            if Some(status.as_str()) != folded.map(Status::as_str) || attempts_of[id] != attempt {
                inconsistent.push((*id, status.clone(), h.to_vec()));
            }
        }

        // The SMTP server: receipts per notification id (its Message-ID).
        let mut receipts: HashMap<Uuid, usize> = HashMap::new();
        for mid in self.stack.smtp.message_ids() {
            let id = mid
                .trim_start_matches('<')
                .split('@')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a Message-ID of ours: {mid}"));
            *receipts.entry(id).or_default() += 1;
        }
        let duplicates: usize = receipts.values().map(|n| n - 1).sum();
        let delivered: HashSet<Uuid> = receipts.keys().copied().collect();
        assert!(
            delivered.is_subset(&accepted_ids),
            "only accepted notifications were sent"
        );

        // The dead-letter topic: each record's notification and reason.
        let dead_in_db: HashSet<Uuid> = status_of
            .iter()
            .filter(|(_, s)| matches!(s.as_str(), "dead_lettered" | "failed"))
            .map(|(id, _)| *id)
            .collect();
        let dlt = self.stack.records(&["notifications.email.dlt"], dead_in_db.len()).await;
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut dead_lettered: HashSet<Uuid> = HashSet::new();
        for r in &dlt {
            let class = r.headers.get("x-error-class").cloned().unwrap_or_default();
            let message = r.headers.get("x-error-message").cloned().unwrap_or_default();
            assert!(
                !class.is_empty() && !message.is_empty(),
                "a dead letter says why: {r:?}"
            );
            *reasons.entry(format!("{class}: {message}")).or_default() += 1;
            dead_lettered.insert(r.headers["notification-id"].parse().unwrap());
        }
        assert_eq!(dead_lettered, dead_in_db, "the DLT and the statuses agree");
        let skipped: HashSet<Uuid> = status_of
            .iter()
            .filter(|(_, s)| s.as_str() == "skipped")
            .map(|(id, _)| *id)
            .collect();
        for id in &delivered {
            assert_eq!(status_of[id], "sent", "a sent notification says so");
        }
        let settled: HashSet<Uuid> = delivered
            .iter()
            .chain(&dead_lettered)
            .chain(&skipped)
            .copied()
            .collect();
        let lost: Vec<&Uuid> = accepted_ids.difference(&settled).collect();
        let both = delivered.intersection(&dead_lettered).count();

        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.faults {
            *by_kind.entry(f.kind).or_default() += 1;
        }
        let duplicate_bound = self.faults.iter().filter(|f| f.may_duplicate).count();
        let table = [
            ("notifications accepted (202)", accepted.len().to_string()),
            ("traffic", format!("{traffic_secs:.0} s")),
            ("faults injected", self.faults.len().to_string()),
        ]
        .into_iter()
        .chain(by_kind.iter().map(|(k, n)| (*k, n.to_string())))
        .chain([
            ("delivered (distinct, SMTP)", delivered.len().to_string()),
            ("dead-lettered", dead_lettered.len().to_string()),
            ("skipped", skipped.len().to_string()),
            ("lost", lost.len().to_string()),
            ("delivered and dead-lettered", both.to_string()),
            ("duplicates (receipts - 1)", duplicates.to_string()),
            (
                "duplicate bound (kills/freezes of a worker)",
                duplicate_bound.to_string(),
            ),
            (
                "statuses inconsistent with their history",
                inconsistent.len().to_string(),
            ),
            (
                "max gateway latency, PostgreSQL down",
                format!("{:?}", self.pg_outage_latency),
            ),
            ("run", format!("{:.0} s", started.elapsed().as_secs_f64())),
        ])
        .map(|(k, v)| format!("| {k:<44} | {v:>10} |"))
        .collect::<Vec<_>>()
        .join("\n");
        eprintln!("\nchaos reconciliation\n{table}");
        for (reason, n) in &reasons {
            eprintln!("  dead letter × {n}: {reason}");
        }
        for f in &self.faults {
            eprintln!(
                "  {}: {} delivered before, {} after",
                f.kind, f.delivered_before, f.delivered_after
            );
        }

        assert!(lost.is_empty(), "lost notifications: {lost:?}");
        assert_eq!(both, 0, "no notification both sent and dead-lettered");
        assert!(
            duplicates <= duplicate_bound,
            "{duplicates} duplicates > {duplicate_bound}: {:?}",
            receipts.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
        );
        assert!(
            inconsistent.is_empty(),
            "statuses that are not their history's fold: {inconsistent:?}"
        );
        assert!(!skipped.is_empty(), "the opted-out user's notifications are skipped");
        for f in &self.faults {
            assert!(f.delivered_after > f.delivered_before, "{} landed mid-run", f.kind);
        }
    }
}

/// The status (and attempt) the state machine reaches from a history, oldest first: the first
/// entry, then every entry the state machine allows from where it stands. Also checks that each
/// entry's `applied` flag says what the state machine decided.
fn fold(history: &[(String, i32, bool)]) -> (Option<Status>, i32) {
    let mut current: Option<(Status, i32)> = None;
    let mut attempts = 0;
    for (status, attempt, applied) in history {
        let Some(to) = Status::parse(status) else {
            return (None, attempts);
        };
        let allowed = match current {
            None => true,
            Some((from, from_attempt)) => can_transition(from, from_attempt, to, *attempt),
        };
        if allowed != *applied {
            return (None, attempts);
        }
        if allowed {
            current = Some((to, *attempt));
            attempts = attempts.max(*attempt);
        }
    }
    (current.map(|(s, _)| s), attempts)
}

/// SIGKILL, check the process is gone, start it again and wait until it is healthy (a new pid).
async fn kill_and_restart(service: &mut crate::harness::Service) {
    let pid = service.pid().expect("running");
    service.kill();
    assert!(!pid_alive(pid), "{} (pid {pid}) is gone", service.name);
    service.start_healthy().await;
    assert_ne!(service.pid(), Some(pid), "{} restarted", service.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(entries: &[(&str, i32, bool)]) -> Vec<(String, i32, bool)> {
        entries.iter().map(|(s, a, ap)| (s.to_string(), *a, *ap)).collect()
    }

    #[test]
    fn a_late_retrying_after_sent_is_recorded_but_does_not_move_the_fold() {
        let history = h(&[("pending", 0, true), ("sent", 1, true), ("retrying", 1, false)]);

        assert_eq!(fold(&history), (Some(Status::Sent), 1));
    }

    #[test]
    fn an_applied_flag_the_state_machine_would_not_set_breaks_the_fold() {
        let history = h(&[("pending", 0, true), ("sent", 1, true), ("retrying", 1, true)]);

        assert_eq!(fold(&history).0, None);
    }
}
