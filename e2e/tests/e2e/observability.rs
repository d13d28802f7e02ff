//! The monitoring files against live metrics. Every service the dashboards and alerts look at
//! runs (the real binaries, as in the other e2e tests) beside a real Prometheus server
//! (Debian's `prometheus`, installed by `deploy/local/install-prometheus.sh`) that scrapes each
//! one every second under the job names of `deploy/prometheus/prometheus.yml`, with the alert
//! rules of `deploy/prometheus/alerts.yml` loaded. After traffic that includes failures
//! (deliveries, transient SMTP failures through a retry tier, a permanent failure to the DLT, a
//! validation error at the gateway, a delivery report), every panel query of every dashboard
//! and every alert expression, as `deploy/check-queries.py --list` gives them, must evaluate
//! through Prometheus' HTTP API, and every metric it names must have at least one series.
//! Every scrape target must be up and every alert rule must evaluate without error.
//!
//! `OBSERVABILITY_QUERY_LIST=<file>` takes the queries from that file (JSON lines as printed
//! by `--list`) instead of the script: to watch the test fail on a bogus metric, for instance.
//! `PROMETHEUS_BIN` names the server binary (default: `prometheus` on the `PATH`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::harness::{Stack, Tiers};
use serde_json::{json, Value};
use test_support::{prometheus::Prometheus, smtp::Mode};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const T: Duration = Duration::from_secs(60);

/// Jobs of `deploy/prometheus/prometheus.yml` this test does not run, and why.
const JOBS_NOT_RUN: &[(&str, &str)] = &[
    // The OpenTelemetry Collector is a compose-only component, not part of the pipeline; no
    // dashboard or alert reads its metrics (check-queries.py allows only the services' names).
    ("otel-collector", "the collector runs only in the compose stack"),
    (
        "otel-collector-exported",
        "the collector runs only in the compose stack",
    ),
];

/// Metric names that may have no series after this test's traffic, and why. Empty: every
/// service registers its counters at 0 at start, so a metric that only moves on a rare event
/// (a parked outbox row, a Redis error) exists all the same.
const METRICS_WITHOUT_SERIES: &[(&str, &str)] = &[];

/// One panel query or alert expression.
#[derive(Debug, Clone)]
struct Query {
    file: String,
    place: String,
    expr: String,
    metrics: Vec<String>,
}

impl Query {
    fn name(&self) -> String {
        format!("{}: {}", self.file, self.place)
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// Every panel query and alert expression, with the metric names each selects.
fn queries() -> Vec<Query> {
    let text = match std::env::var("OBSERVABILITY_QUERY_LIST") {
        Ok(file) => std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("OBSERVABILITY_QUERY_LIST={file}: {e}")),
        Err(_) => {
            let out = Command::new("python3")
                .arg("deploy/check-queries.py")
                .arg("--list")
                .current_dir(repo_root())
                .output()
                .expect("python3 is required (deploy/check-queries.py)");
            assert!(
                out.status.success(),
                "deploy/check-queries.py --list failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let list: Vec<Query> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad query line {line}: {e}"));
            let field = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("no `{k}` in {line}"))
                    .to_string()
            };
            Query {
                file: field("file"),
                place: field("where"),
                expr: field("expr"),
                metrics: v["metrics"]
                    .as_array()
                    .unwrap_or_else(|| panic!("no `metrics` in {line}: check-queries.py too old?"))
                    .iter()
                    .map(|m| m.as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect();
    assert!(
        list.iter().any(|q| q.file.ends_with(".json")) && list.iter().any(|q| q.file.ends_with("alerts.yml")),
        "expected dashboard and alert queries, got {} queries",
        list.len()
    );
    list
}

/// The job names of `deploy/prometheus/prometheus.yml` (its `- job_name: X` lines).
fn deployed_jobs() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/prometheus.yml")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- job_name:"))
        .map(|j| j.trim().trim_matches('"').to_string())
        .collect()
}

/// Polls `check` (every 250 ms) until it reports nothing missing; then panics naming what is.
async fn until_complete<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let missing = check().await;
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}:\n  {}",
            missing.join("\n  ")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// For each query, the metric names it uses that have no series (less the allowed ones).
fn missing_series(queries: &[Query], present: &BTreeSet<String>) -> Vec<String> {
    let allowed: BTreeSet<&str> = METRICS_WITHOUT_SERIES.iter().map(|(m, _)| *m).collect();
    queries
        .iter()
        .flat_map(|q| {
            q.metrics
                .iter()
                .filter(|m| !present.contains(*m) && !allowed.contains(m.as_str()))
                .map(move |m| format!("{}: metric `{m}` has no series (in: {})", q.name(), q.expr.trim()))
        })
        .collect()
}

async fn send_traffic(s: &Stack) {
    s.welcome_template().await;
    s.create_template(json!({
        "code": "order_shipped",
        "channel": "push",
        "default_language": "en",
        "name": "Order shipped",
        "content": {"en": {"title": "Order {{ order }} shipped", "body": "It arrives {{ when }}"}}
    }))
    .await;
    let mail_user = s
        .create_user("obs@example.com", None, json!({"email": true, "push": false}))
        .await;
    let push_user = s
        .create_user(
            "obs-phone@example.com",
            Some("device-1"),
            json!({"email": false, "push": true}),
        )
        .await;
    let vars = json!({"name": "Obs", "link": "https://x.test"});

    // A delivery, a permanent failure (a missing template variable: straight to the DLT) and a
    // push delivery, side by side.
    let sent = s
        .send("email", mail_user, "welcome_email", vars.clone(), "obs-sent", 5)
        .await;
    let permanent = s
        .send(
            "email",
            mail_user,
            "welcome_email",
            json!({"name": "Obs"}),
            "obs-dlt",
            5,
        )
        .await;
    let push = s
        .send(
            "push",
            push_user,
            "order_shipped",
            json!({"order": "A-1", "when": "soon"}),
            "obs-push",
            5,
        )
        .await;
    s.wait_status(sent, "sent", T).await;
    s.wait_status(permanent, "dead_lettered", T).await;
    s.wait_status(push, "sent", T).await;

    // A delivery report from the provider.
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/v1/email/status/", s.gateway.url()),
            Some(&json!({"notification_id": sent, "status": "delivered", "timestamp": "2030-01-01T10:00:00Z", "error": null})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    s.wait_status(sent, "delivered", T).await;

    // A validation error at the gateway.
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/v1/notifications/", s.gateway.url()),
            Some(&json!({"notification_type": "fax", "user_id": "not-a-uuid", "request_id": "obs-invalid"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");

    // Transient SMTP failures: the first attempt goes to the retry tier, the retry succeeds.
    s.smtp.set_mode(Mode::TransientFailure);
    let retried = s.send("email", mail_user, "welcome_email", vars, "obs-retry", 5).await;
    s.wait_status(retried, "retrying", T).await;
    s.smtp.set_mode(Mode::Accept);
    s.wait_status(retried, "sent", T).await;
}

#[tokio::test]
async fn every_dashboard_query_and_alert_finds_live_series_in_prometheus() {
    let started = Instant::now();
    let queries = queries();

    let fcm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(crate::harness::FCM_SEND))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "projects/p/messages/1"})))
        .mount(&fcm)
        .await;
    let mut s = Stack::start(Tiers {
        first_delay_ms: 1000,
        first_attempts: 1,
        second_delay_ms: 1000,
        second_attempts: 1,
    })
    .await;
    let email = s.add_email_worker().await;
    let push = s.add_push_worker(&fcm).await;
    let mut ingest = s.ingest(&[]);
    ingest.start_healthy().await;

    // Job names as deploy/prometheus/prometheus.yml has them (dashboards and alerts filter on
    // them, e.g. `up{job="gateway"}`).
    let targets = [
        (s.gateway.name, s.gateway.port),
        (s.relay.name, s.relay.port),
        (s.user_svc.name, s.user_svc.port),
        (s.template_svc.name, s.template_svc.port),
        (s.workers[email].name, s.workers[email].port),
        (s.workers[push].name, s.workers[push].port),
        (s.projector.name, s.projector.port),
        (ingest.name, ingest.port),
    ];
    let mut jobs: BTreeSet<String> = targets.iter().map(|(j, _)| j.to_string()).collect();
    jobs.insert("prometheus".into());
    let deployed = deployed_jobs();
    let not_run: BTreeSet<String> = JOBS_NOT_RUN.iter().map(|(j, _)| j.to_string()).collect();
    assert_eq!(
        jobs,
        &deployed - &not_run,
        "the jobs scraped here must be those of deploy/prometheus/prometheus.yml (less JOBS_NOT_RUN)"
    );

    let prometheus = Prometheus::start(&targets, &repo_root().join("deploy/prometheus/alerts.yml")).await;
    prometheus.wait_targets_up(&jobs).await;

    send_traffic(&s).await;

    // The traffic as Prometheus has scraped it: each figure at least what was sent.
    let expected: &[(&str, f64)] = &[
        (r#"sum(worker_deliveries_total{channel="email",outcome="sent"})"#, 2.0),
        (
            r#"sum(worker_deliveries_total{channel="email",outcome="retried"})"#,
            1.0,
        ),
        (
            r#"sum(worker_deliveries_total{channel="email",outcome="dead_lettered"})"#,
            1.0,
        ),
        (r#"sum(worker_deliveries_total{channel="push",outcome="sent"})"#, 1.0),
        (r#"sum(worker_retried_total{channel="email",tier="retry-30s"})"#, 1.0),
        (
            r#"sum(worker_dead_lettered_total{channel="email",reason="permanent"})"#,
            1.0,
        ),
        (r#"sum(notification_end_to_end_seconds_count)"#, 3.0),
        (r#"sum(worker_delivery_duration_seconds_count)"#, 3.0),
        (
            r#"sum(http_requests_total{service="gateway",route="/api/v1/notifications/",status="202"})"#,
            4.0,
        ),
        (r#"sum(http_requests_total{service="gateway",status="422"})"#, 1.0),
        (
            r#"sum(http_requests_total{service="gateway",route="/api/v1/{channel}/status/",status="202"})"#,
            1.0,
        ),
        // 4 notifications and the delivery report.
        (r#"sum(relay_published_total)"#, 5.0),
        (r#"sum(relay_batch_seconds_count)"#, 1.0),
        // sent, delivered, dead_lettered, sent (push), retrying, sent.
        (r#"sum(status_events_total)"#, 6.0),
        (r#"count(kafka_consumer_lag)"#, 1.0),
        (r#"count(db_pool_connections)"#, 10.0),
    ];
    until_complete("the traffic in the scraped metrics", T, || async {
        let mut missing = Vec::new();
        for (expr, min) in expected {
            let got = prometheus.value(expr).await;
            if got.is_none_or(|v| v < *min) {
                missing.push(format!("{expr}: {got:?}, expected at least {min}"));
            }
        }
        missing
    })
    .await;

    // Every metric name of every query has a series.
    let names: BTreeSet<String> = queries.iter().flat_map(|q| q.metrics.iter().cloned()).collect();
    until_complete("a series of every metric the dashboards and alerts use", T, || async {
        missing_series(&queries, &prometheus.present(&names).await)
    })
    .await;

    // Every query evaluates.
    let mut failures = Vec::new();
    for q in &queries {
        if let Err(e) = prometheus.query(&q.expr).await {
            failures.push(format!("{}: does not evaluate: {e} (in: {})", q.name(), q.expr.trim()));
        }
    }
    assert!(failures.is_empty(), "queries that fail:\n  {}", failures.join("\n  "));

    // Every alert of alerts.yml is loaded and evaluates without error.
    let alerts: BTreeSet<String> = queries
        .iter()
        .filter(|q| q.file.ends_with("alerts.yml"))
        .map(|q| q.place.clone())
        .collect();
    until_complete("every alert rule to evaluate", T, || async {
        let answer = prometheus.api("rules", &[]).await;
        let mut loaded = BTreeMap::new();
        for group in answer["data"]["groups"].as_array().cloned().unwrap_or_default() {
            for rule in group["rules"].as_array().cloned().unwrap_or_default() {
                loaded.insert(
                    format!(
                        "{} / {}",
                        group["name"].as_str().unwrap_or("?"),
                        rule["name"].as_str().unwrap_or("?")
                    ),
                    (
                        rule["health"].as_str().unwrap_or("?").to_string(),
                        rule["lastError"].as_str().unwrap_or("").to_string(),
                    ),
                );
            }
        }
        let mut missing: Vec<String> = alerts
            .iter()
            .filter_map(|a| match loaded.get(a) {
                None => Some(format!("deploy/prometheus/alerts.yml: {a}: not loaded")),
                Some((health, error)) if health != "ok" => {
                    Some(format!("deploy/prometheus/alerts.yml: {a}: health {health} {error}"))
                }
                Some(_) => None,
            })
            .collect();
        missing.extend(
            loaded
                .keys()
                .filter(|k| !alerts.contains(*k))
                .map(|k| format!("{k}: loaded but not listed")),
        );
        missing
    })
    .await;

    // Every target is still up after the traffic.
    let down: Vec<String> = prometheus
        .targets()
        .await
        .into_iter()
        .filter(|(_, (health, _))| health != "up")
        .map(|(job, (health, error))| format!("{job}: {health} {error}"))
        .collect();
    assert!(down.is_empty(), "scrape targets down: {down:?}");

    // The check itself can fail: a metric nothing emits is reported, naming the query.
    let bogus = Query {
        file: "self-check".into(),
        place: "bogus panel".into(),
        expr: "sum(no_such_metric_total)".into(),
        metrics: vec!["no_such_metric_total".into()],
    };
    let reported = missing_series(
        std::slice::from_ref(&bogus),
        &prometheus.present(&bogus.metrics.iter().cloned().collect()).await,
    );
    assert_eq!(
        reported,
        vec!["self-check: bogus panel: metric `no_such_metric_total` has no series (in: sum(no_such_metric_total))"]
    );

    eprintln!(
        "{} queries of {} files checked against live series in {:?}",
        queries.len(),
        queries.iter().map(|q| q.file.as_str()).collect::<BTreeSet<_>>().len(),
        started.elapsed()
    );
}
