//! `gateway`: open-loop `POST /api/v1/notifications/` at fixed rates, against the baseline
//! (one plain `INSERT` behind the same framework) at the same rates.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    baseline::Baseline,
    load::{self, http_error_kind, LoadResult},
    plan::{Plan, Step},
    procs::{sample, CpuSnapshot, CpuUsage, ProcSample},
    stack::{notification_body, Infra, Pipeline},
};

/// One offered rate, gateway and baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayStep {
    pub gateway: LoadResult,
    pub baseline: LoadResult,
    /// CPU used during each (by process name, machine-wide; the baseline runs in `bench`).
    #[serde(default)]
    pub gateway_cpu: CpuUsage,
    #[serde(default)]
    pub baseline_cpu: CpuUsage,
    /// Gateway accepted/s ÷ baseline accepted/s.
    pub ratio: f64,
}

/// What the gateway scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayResult {
    pub steps: Vec<GatewayStep>,
    /// Highest accepted/s over the steps.
    pub max_accepted_per_s: f64,
    pub baseline_max_accepted_per_s: f64,
    /// `max_accepted_per_s / baseline_max_accepted_per_s`.
    pub max_ratio: f64,
    /// actix workers of both servers and their pool sizes.
    pub http_workers: usize,
    pub db_pool: u32,
    /// The gateway process at the end.
    pub gateway_process: Option<ProcSample>,
}

/// The same worker count and pool size as the gateway's defaults.
const DB_POOL: u32 = 16;

/// Sends `step` to `url`, one notification request each, with request ids `<tag>-<i>`
/// (plus a random part unless `exact_ids`) to one of `users` (random ids when empty);
/// 202 is success.
pub async fn run_step(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    step: Step,
    max_in_flight: usize,
    tag: &str,
    users: &[Uuid],
) -> LoadResult {
    let (http, url, token) = (http.clone(), Arc::<str>::from(url), token.map(Arc::<str>::from));
    let tag = format!("{tag}-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let users: Arc<[Uuid]> = users.into();
    load::open_loop(step, max_in_flight, move |i| {
        let user = if users.is_empty() {
            Uuid::new_v4()
        } else {
            users[usize::try_from(i).unwrap_or(0) % users.len()]
        };
        let body = notification_body(user, &format!("{tag}-{i}"));
        let mut req = http
            .post(url.as_ref())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = &token {
            req = req.bearer_auth(t.as_ref());
        }
        async move {
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // Read the body so the connection goes back to the pool.
                    let _ = r.bytes().await;
                    if status == 202 {
                        Ok(())
                    } else {
                        Err(format!("http {status}"))
                    }
                }
                Err(e) => Err(http_error_kind(&e)),
            }
        }
    })
    .await
}

pub async fn run(infra: &Infra, plan: &Plan) -> anyhow::Result<GatewayResult> {
    // The gateway checks recipients and templates against user-svc and template-svc (through
    // the Redis cache), so they run too, with real recipients; no broker, no relay.
    let mut p = Pipeline::start(infra, "gw", false).await?;
    let result = measure(&p, plan).await;
    p.stop();
    p.db.pool.close().await;
    result
}

async fn measure(p: &Pipeline, plan: &Plan) -> anyhow::Result<GatewayResult> {
    let users = p.seed(plan.e2e_users).await?;
    // The gateway's defaults: one actix worker per CPU, a pool of 16.
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let baseline = Baseline::start(&p.db.url, workers, DB_POOL).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.max_in_flight)
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .context("failed to build the HTTP client")?;
    let gw_url = format!("{}/api/v1/notifications/", p.gateway.url());
    let token = Some(p.send_token.as_str());

    println!(
        "[gateway] warm-up {}/s for {} s (not measured)",
        plan.gateway_warmup.rate, plan.gateway_warmup.secs
    );
    let warm = plan.gateway_warmup;
    let w = run_step(&http, &gw_url, token, warm, plan.max_in_flight, "warm", &users).await;
    anyhow::ensure!(
        w.ok > 0,
        "the gateway accepted nothing during the warm-up: {:?}; see {}",
        w.errors,
        p.gateway.log.display()
    );
    run_step(&http, &baseline.url(), None, warm, plan.max_in_flight, "warm", &users).await;

    let mut steps = Vec::new();
    for &step in &plan.gateway_steps {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu = CpuSnapshot::take();
        let g = run_step(&http, &gw_url, token, step, plan.max_in_flight, "gw", &users).await;
        let gateway_cpu = cpu.usage_until(&CpuSnapshot::take());
        println!("[gateway] {}", line("gateway ", &g));
        println!("[gateway]   {}", gateway_cpu.summary());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu = CpuSnapshot::take();
        let b = run_step(&http, &baseline.url(), None, step, plan.max_in_flight, "base", &users).await;
        let baseline_cpu = cpu.usage_until(&CpuSnapshot::take());
        println!("[gateway] {}", line("baseline", &b));
        println!("[gateway]   {}", baseline_cpu.summary());
        steps.push(GatewayStep {
            gateway_cpu,
            baseline_cpu,
            ratio: ratio(g.accepted_per_s, b.accepted_per_s),
            gateway: g,
            baseline: b,
        });
    }
    let gateway_process = p.gateway.pid().and_then(sample);
    baseline.stop().await;

    let max = |f: fn(&GatewayStep) -> f64| steps.iter().map(f).fold(0.0, f64::max);
    let max_accepted_per_s = max(|s| s.gateway.accepted_per_s);
    let baseline_max_accepted_per_s = max(|s| s.baseline.accepted_per_s);
    Ok(GatewayResult {
        max_ratio: ratio(max_accepted_per_s, baseline_max_accepted_per_s),
        max_accepted_per_s,
        baseline_max_accepted_per_s,
        steps,
        http_workers: workers,
        db_pool: DB_POOL,
        gateway_process,
    })
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn line(who: &str, r: &LoadResult) -> String {
    format!(
        "{who} offered {:>5}/s × {:>4} s: accepted {:>7.0}/s, p50 {:>7.2} ms, p99 {:>8.2} ms, p99.9 {:>8.2} ms, errors {}",
        r.offered_rate,
        r.secs,
        r.accepted_per_s,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.latency.p999_ms,
        r.error_count()
    )
}
