//! `soak`: a moderate steady rate through the whole pipeline for minutes, sampling every
//! service's resident memory, open file descriptors and sockets, to show what grows.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::{
    load::{Latency, LoadResult},
    plan::Plan,
    procs::{sample, CpuSnapshot, CpuUsage, ProcSample},
    scenarios::e2e::{outcomes, send, wait_final, warm_up},
    stack::{Infra, Pipeline},
};

/// Every service at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakSample {
    pub t_s: f64,
    pub processes: BTreeMap<String, ProcSample>,
}

/// First, highest and last sample of one service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub service: String,
    pub first: ProcSample,
    pub max: ProcSample,
    pub last: ProcSample,
}

/// What the soak measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakResult {
    pub rate: u32,
    pub secs: f64,
    pub sample_secs: u64,
    pub load: LoadResult,
    pub accepted: u64,
    pub sent: u64,
    pub drained: bool,
    /// Accepted → sent.
    pub latency: Latency,
    pub samples: Vec<SoakSample>,
    pub summary: Vec<ProcessSummary>,
    /// CPU during the soak, by process name, machine-wide.
    #[serde(default)]
    pub cpu: CpuUsage,
}

pub async fn run(infra: &Infra, plan: &Plan) -> anyhow::Result<SoakResult> {
    let mut p = Pipeline::start(infra, "soak", true).await?;
    let result = soak(infra, plan, &mut p).await;
    p.stop();
    p.db.pool.close().await;
    result
}

async fn soak(infra: &Infra, plan: &Plan, p: &mut Pipeline) -> anyhow::Result<SoakResult> {
    let users = p.seed(plan.e2e_users).await?;
    p.deliver_to_new_sink(infra, 0.0, "soak").await?;
    warm_up(p, &users, "warm", plan).await?;

    let procs = p.processes();
    let samples: Arc<Mutex<Vec<SoakSample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_secs(plan.soak_sample_secs.max(1));
    let t0 = Instant::now();
    let take = {
        let procs = procs.clone();
        move || SoakSample {
            t_s: t0.elapsed().as_secs_f64(),
            processes: procs
                .iter()
                .filter_map(|(name, pid)| sample(*pid).map(|s| ((*name).to_string(), s)))
                .collect(),
        }
    };
    let sampler = {
        let (samples, stop, take) = (samples.clone(), stop.clone(), take.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let s = take();
                print_sample(&s);
                samples.lock().unwrap_or_else(PoisonError::into_inner).push(s);
            }
        })
    };
    let cpu = CpuSnapshot::take();
    let load = send(p, &users, plan.soak, plan, "soak").await;
    let drained = wait_final(&p.db.pool, "soak", load.ok, plan.drain_timeout())
        .await
        .is_ok();
    let cpu = cpu.usage_until(&CpuSnapshot::take());
    println!("[soak]   {}", cpu.summary());
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.await;
    let mut samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    let last = take();
    print_sample(&last);
    samples.push(last);

    let outcomes = outcomes(&p.db.pool, "soak").await?;
    let sent = outcomes
        .iter()
        .filter(|o| o.status == "sent" || o.status == "delivered")
        .count() as u64;
    let latency = Latency::of_millis(outcomes.iter().filter_map(|o| o.sent_after_ms));
    Ok(SoakResult {
        rate: plan.soak.rate,
        secs: plan.soak.secs,
        sample_secs: plan.soak_sample_secs,
        accepted: outcomes.len() as u64,
        sent,
        drained,
        latency,
        summary: summarise(&samples),
        cpu,
        samples,
        load,
    })
}

fn print_sample(s: &SoakSample) {
    let cols: Vec<String> = s
        .processes
        .iter()
        .map(|(n, p)| format!("{n} {:.1} MiB/{} fd", p.rss_kib as f64 / 1024.0, p.fds))
        .collect();
    println!("[soak] t={:>5.0} s  {}", s.t_s, cols.join(", "));
}

fn summarise(samples: &[SoakSample]) -> Vec<ProcessSummary> {
    let mut out: BTreeMap<String, ProcessSummary> = BTreeMap::new();
    for s in samples {
        for (name, p) in &s.processes {
            let e = out.entry(name.clone()).or_insert_with(|| ProcessSummary {
                service: name.clone(),
                first: *p,
                max: *p,
                last: *p,
            });
            e.max.rss_kib = e.max.rss_kib.max(p.rss_kib);
            e.max.fds = e.max.fds.max(p.fds);
            e.max.sockets = e.max.sockets.max(p.sockets);
            e.last = *p;
        }
    }
    out.into_values().collect()
}
