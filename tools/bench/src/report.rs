//! The results file (`<timestamp>.json`, `latest.json`) and what is made of it: a markdown
//! report (`latest.md`) and a chart of e2e latency over time (`latency.png`).
//!
//! The chart uses plotters' bitmap backend with no system font library: labels are drawn
//! only when a TrueType font file is found (`BENCH_FONT`, or DejaVu Sans where Debian,
//! Fedora or Arch put it) and rendered by `ab_glyph` (pure Rust); without one the chart
//! has lines and a grid only, and `latest.md` says what they are.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::{
    load::{Latency, LoadResult},
    plan::Plan,
    procs::{Binaries, ProcSample},
    scenarios::{e2e::E2eResult, gateway::GatewayResult, ingest::IngestResult, relay::RelayResult, soak::SoakResult},
};

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    /// `/proc/loadavg` (1, 5, 15 min) before and after the run.
    pub load_before: String,
    pub load_after: String,
}

impl Machine {
    pub fn probe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_default();
        let mem_total_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            mem_total_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// UTC, `YYYYMMDDTHHMMSSZ`: also the file name.
    pub timestamp: String,
    pub duration_secs: f64,
    pub git_commit: Option<String>,
    pub machine: Machine,
    pub binaries: Binaries,
    pub plan: Plan,
    pub gateway: Option<GatewayResult>,
    /// Absent from runs made before the scenario existed.
    #[serde(default)]
    pub ingest: Option<IngestResult>,
    pub relay: Option<RelayResult>,
    pub e2e: Option<E2eResult>,
    pub soak: Option<SoakResult>,
    /// Scenarios that failed, with the error.
    pub failures: BTreeMap<String, String>,
}

/// Writes `<dir>/<timestamp>.json` and `<dir>/latest.json`.
pub fn write_json(report: &Report, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("failed to serialise the results")?;
    let path = dir.join(format!("{}.json", report.timestamp));
    // Write then rename, so a reader never sees half a file.
    for target in [&path, &dir.join("latest.json")] {
        let tmp = target.with_extension("json.tmp");
        std::fs::write(&tmp, &json).with_context(|| format!("failed to write {}", tmp.display()))?;
        std::fs::rename(&tmp, target).with_context(|| format!("failed to write {}", target.display()))?;
    }
    Ok(path)
}

/// Reads `<dir>/latest.json`.
pub fn read_latest(dir: &Path) -> anyhow::Result<Report> {
    let path = dir.join("latest.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {} (run the benchmark first)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a results file", path.display()))
}

/// Writes `latest.md` and `latency.png` next to `latest.json`; returns the markdown.
pub fn render(report: &Report, dir: &Path) -> anyhow::Result<String> {
    let labelled = match &report.e2e {
        Some(e2e) if !e2e.runs.is_empty() => Some(chart(e2e, &dir.join("latency.png"))?),
        _ => None,
    };
    let md = markdown(report, labelled);
    std::fs::write(dir.join("latest.md"), &md)
        .with_context(|| format!("failed to write {}", dir.join("latest.md").display()))?;
    Ok(md)
}

/// One product target and whether the run met it.
pub struct Target {
    pub what: &'static str,
    pub measured: String,
    pub met: Option<bool>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The product targets, checked against the figures present.
pub fn targets(r: &Report) -> Vec<Target> {
    let mut t = Vec::new();
    if let Some(g) = &r.gateway {
        t.push(Target {
            what: "gateway ≥ 3,000 accepted/s",
            measured: format!("{:.0}/s", g.max_accepted_per_s),
            met: Some(g.max_accepted_per_s >= 3000.0),
        });
        t.push(Target {
            what: "gateway ≥ 50% of baseline (max accepted/s)",
            measured: format!("{:.0}%", g.max_ratio * 100.0),
            met: Some(g.max_ratio >= 0.5),
        });
        if let Some(s) = g.steps.iter().find(|s| s.gateway.offered_rate == 1000) {
            t.push(Target {
                what: "gateway p99 ≤ 10 ms at 1,000/s",
                measured: format!("{:.1} ms", s.gateway.latency.p99_ms),
                met: Some(s.gateway.latency.p99_ms <= 10.0 && s.gateway.error_count() == 0),
            });
        }
    }
    if let Some(rl) = &r.relay {
        t.push(Target {
            what: "relay ≥ 20,000 rows/s",
            measured: format!("{:.0} rows/s", rl.rows_per_s),
            met: Some(rl.rows_per_s >= 20_000.0),
        });
        t.push(Target {
            what: "relay ≥ 55% of the plain producer",
            measured: format!("{:.0}%", rl.ratio * 100.0),
            met: Some(rl.ratio >= 0.55),
        });
        // The database's figure when the run has it (no observer in it), else the client's.
        let (p99, source) = match &rl.commit_to_ack_db {
            Some(db) => (db.p99_ms, "insert → acked and marked, DB clock"),
            None => (rl.commit_to_ack.p99_ms, "client-observed"),
        };
        t.push(Target {
            what: "relay p99 commit→ack ≤ 50 ms at 1,000/s",
            measured: format!("{p99:.1} ms ({source})"),
            met: Some(p99 <= 50.0 && rl.latency_rate >= 1000),
        });
    }
    if let Some(run) = r.e2e.as_ref().and_then(|e| e.runs.first()) {
        let bounded = run.delivered_per_s >= 0.95 * f64::from(run.load.offered_rate);
        t.push(Target {
            what: "e2e ≥ 2,000 delivered/s",
            measured: format!(
                "{:.0}/s{}",
                run.delivered_per_s,
                if bounded {
                    format!(" (= offered {}/s: a lower bound)", run.load.offered_rate)
                } else {
                    String::new()
                }
            ),
            met: if run.delivered_per_s >= 2000.0 {
                Some(true)
            } else if bounded {
                None
            } else {
                Some(false)
            },
        });
        let sustained = r
            .e2e
            .as_ref()
            .and_then(|e| e.runs.get(1))
            .filter(|_| !run.drained)
            .map(|s| format!("; at {}/s: p99 {:.0} ms", s.load.offered_rate, s.latency.p99_ms))
            .unwrap_or_default();
        t.push(Target {
            what: "e2e p99 accepted→sent ≤ 500 ms at 1,000/s",
            measured: if run.drained {
                format!("{:.0} ms at {}/s", run.latency.p99_ms, run.load.offered_rate)
            } else {
                format!(
                    "not sustained at {}/s: the backlog grows ({} of {} sent when the wait ended){sustained}",
                    run.load.offered_rate, run.sent, run.accepted
                )
            },
            met: Some(run.drained && run.latency.p99_ms <= 500.0 && run.load.offered_rate >= 1000),
        });
    }
    let mut rss: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(e2e) = &r.e2e {
        for run in &e2e.runs {
            for (name, p) in &run.peak_processes {
                let e = rss.entry(name.clone()).or_default();
                *e = (*e).max(p.rss_kib);
            }
        }
    }
    if let Some(soak) = &r.soak {
        for s in &soak.summary {
            let e = rss.entry(s.service.clone()).or_default();
            *e = (*e).max(s.max.rss_kib);
        }
    }
    if let Some((name, max)) = rss.iter().max_by_key(|(_, v)| **v) {
        t.push(Target {
            what: "each service ≤ 64 MiB RSS",
            measured: format!("largest: {name} {:.1} MiB", mib(*max)),
            met: Some(*max <= 64 * 1024),
        });
    }
    t
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not shown",
    }
}

fn lat_cells(l: &Latency) -> String {
    format!(
        "{:.1} | {:.1} | {:.1} | {:.1} | {:.1}",
        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
    )
}

fn errors(r: &LoadResult) -> String {
    if r.errors.is_empty() {
        "0".into()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The markdown report.
pub fn markdown(r: &Report, chart_labelled: Option<bool>) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# Benchmark results {}\n", r.timestamp);
    let _ = writeln!(
        s,
        "Machine: {} CPUs ({}), {} MiB RAM, Linux {}, **shared with other work** (load average {} before, {} after). \
         Everything runs on it at once: load generator, services, PostgreSQL, broker (tansu, SQLite storage), registry, Redis. \
         Absolute figures are noisy; read them as ratios to the baselines measured in the same run.\n",
        m.cpus, m.cpu_model, m.mem_total_mib, m.kernel, m.load_before, m.load_after
    );
    let _ = writeln!(
        s,
        "Binaries: {} (`{}`){}. Mode: `{}`. Commit: {}. Run time: {:.1} min.\n",
        r.binaries.profile,
        r.binaries.dir.display(),
        r.binaries
            .warning
            .as_ref()
            .map(|w| format!(" — **WARNING: {w}**"))
            .unwrap_or_default(),
        r.plan.mode,
        r.git_commit.as_deref().unwrap_or("unknown"),
        r.duration_secs / 60.0
    );
    for (scenario, err) in &r.failures {
        let _ = writeln!(s, "**{scenario} failed:** `{err}`\n");
    }

    let t = targets(r);
    if !t.is_empty() {
        let _ = writeln!(s, "## Targets\n\n| target | measured | met |\n|---|---|---|");
        for x in &t {
            let _ = writeln!(s, "| {} | {} | {} |", x.what, x.measured, yes_no(x.met));
        }
        s.push('\n');
    }

    if let Some(g) = &r.gateway {
        let _ = writeln!(
            s,
            "## Gateway\n\nOpen loop (request *i* due at t0 + i/R whatever the answers; latency from the due time; \
             at most {} requests open, more are dropped and counted as errors). `POST /api/v1/notifications/` \
             (JWT, validation, recipient and template checked against user-svc and template-svc through the Redis \
             cache, idempotency record, notification, history, outbox row in one statement, then a coalesced `NOTIFY`; {} recipients) \
             against the baseline: a bare actix-web handler doing one `INSERT` of the same row shape. Both: {} \
             HTTP workers, a pool of {} connections.\n",
            r.plan.max_in_flight, r.plan.e2e_users, g.http_workers, g.db_pool
        );
        let _ = writeln!(
            s,
            "| server | offered/s | seconds | accepted/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | gateway/baseline |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for step in &g.steps {
            for (who, l, ratio) in [
                ("gateway", &step.gateway, format!("{:.2}", step.ratio)),
                ("baseline", &step.baseline, String::new()),
            ] {
                let _ = writeln!(
                    s,
                    "| {who} | {} | {} | {:.0} | {} | {} | {ratio} |",
                    l.offered_rate,
                    l.secs,
                    l.accepted_per_s,
                    lat_cells(&l.latency),
                    errors(l)
                );
            }
        }
        let _ = writeln!(
            s,
            "\nMax accepted/s: gateway {:.0}, baseline {:.0}, ratio **{:.2}**.\n\nCPU during each step (cores by process name, machine-wide; the baseline server runs inside `bench`, the load generator too):\n",
            g.max_accepted_per_s, g.baseline_max_accepted_per_s, g.max_ratio
        );
        for step in &g.steps {
            let _ = writeln!(
                s,
                "- {}/s gateway: {}\n- {}/s baseline: {}",
                step.gateway.offered_rate,
                step.gateway_cpu.summary(),
                step.baseline.offered_rate,
                step.baseline_cpu.summary()
            );
        }
        s.push('\n');
    }

    if let Some(i) = &r.ingest {
        let gateway = r.gateway.as_ref().map_or("not measured in this run".to_string(), |g| {
            format!("{:.0}/s", g.max_accepted_per_s)
        });
        let _ = writeln!(
            s,
            "## Ingest (internal producers)

A backlog of {} requests published to `notifications.requests` through the \
             producer library ({:.0}/s acknowledged) while no ingest runs, then one ingest ({} at once): producer token, \
             decode, the API's validation, user and template checks, one transaction each, offsets committed in order.\n\n\
             | | accepted/s | seconds |\n|---|---|---|\n| ingest (from a backlog) | **{:.0}** | {:.1} |\n\
             | gateway (max over its steps, open loop) | {gateway} | |\n\n\
             CPU while draining: {}. Ingest process at the end: {}.\n",
            i.backlog,
            i.produced_per_s,
            i.concurrency,
            i.accepted_per_s,
            i.secs,
            i.cpu.summary(),
            i.ingest_process
                .as_ref()
                .map_or("not sampled".to_string(), |p| format!("{:.1} MiB RSS", mib(p.rss_kib)))
        );
    }

    if let Some(rl) = &r.relay {
        let _ = writeln!(
            s,
            "## Relay\n\nA backlog of {} outbox rows (bulk-inserted in {:.1} s while no relay runs), then one relay \
             (batch {}, linger {} ms, idempotent producer, acks=all) until `published_at IS NULL` counts 0. \
             Baseline: a plain rdkafka `FutureProducer` (same settings) writing the same records — same Avro bytes, \
             keys, headers, topic — straight to the broker.\n",
            rl.rows, rl.insert_secs, rl.batch_size, rl.linger_ms
        );
        let _ = writeln!(
            s,
            "| figure | relay | plain producer | relay/baseline |\n|---|---|---|---|\n\
             | backlog drain, rows/s | {:.0} ({:.2} s; steady 10–90%: {:.0}) | {:.0} ({:.2} s) | **{:.2}** |\n",
            rl.rows_per_s, rl.drain_secs, rl.steady_rows_per_s, rl.baseline_records_per_s, rl.baseline_secs, rl.ratio
        );
        let _ = writeln!(
            s,
            "Commit → ack while rows are inserted one per transaction at {}/s for {} s ({} rows, {} insert errors, {} not published in time):\n\n\
             | latency | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|\n\
             | commit → acknowledged and marked (client clock, polled every 5 ms) | {} |\n\
             | `published_at - created_at` (DB: insert → acknowledged and marked) | {} |\n\
             | the broker alone: one record at a time, send → ack (plain producer, linger {} ms) | {} |\n",
            rl.latency_rate,
            rl.latency_secs,
            rl.latency_rows,
            rl.latency_insert_errors,
            rl.latency_unpublished,
            lat_cells(&rl.commit_to_ack),
            rl.commit_to_ack_db.as_ref().map_or_else(|| "— | — | — | — | —".to_string(), lat_cells),
            rl.linger_ms,
            lat_cells(&rl.broker_ack)
        );
        if !rl.watcher.is_empty() {
            let _ = writeln!(
                s,
                "The first row includes the observer's delay: 5 ms sleeps between polls and the poll query itself ({}).\n",
                rl.watcher
            );
        }
        let _ = writeln!(
            s,
            "The relay's own metrics: drain {:.0} batches of {:.0} ms on average (claim → publish → acks → mark → commit); \
             at {}/s {:.0} batches of {:.0} ms ({:.0} rows each).\n",
            rl.drain_batches,
            rl.drain_mean_batch_ms,
            rl.latency_rate,
            rl.latency_batches,
            rl.latency_mean_batch_ms,
            rl.latency_rows as f64 / rl.latency_batches.max(1.0)
        );
        let _ = writeln!(
            s,
            "CPU: drain — {}; plain producer — {}; latency phase — {}.\n",
            rl.drain_cpu.summary(),
            rl.baseline_cpu.summary(),
            rl.latency_cpu.summary()
        );
    }

    if let Some(e) = &r.e2e {
        let _ = writeln!(
            s,
            "## End to end\n\ngateway → outbox → relay → broker → email-worker → SMTP sink, statuses back through \
             status-projector; {} recipients. Latency: the notification's `created_at` → its `sent` history entry \
             (the worker's time of delivery). Retry tiers for these runs: {} ms then {} ms, one attempt each \
             (production: 30 s and 5 min). Runs: the offered rate on a pipeline of its own; then, on a second \
             pipeline, a rate it sustains (the offered rate if the first run drained within 3 s of the load's end, else 75% of the rate it delivered) \
             without and with transient failures (the sink answers `451` to that share of first attempts).\n",
            e.users, e.retry_delays_ms[0], e.retry_delays_ms[1]
        );
        let _ = writeln!(
            s,
            "| run | offered | accepted | delivered/s (best 5 s) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | first-pass success | final success | retried (sent) | dead-lettered | drained |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for run in &e.runs {
            let _ = writeln!(
                s,
                "| {} | {}/s × {} s | {} | {:.0} ({:.0}) | {} | {:.2}% | {:.2}% | {} ({}) | {} | {} |",
                run.label,
                run.load.offered_rate,
                run.load.secs,
                run.accepted,
                run.delivered_per_s,
                run.peak_delivered_per_s,
                lat_cells(&run.latency),
                run.first_pass_success * 100.0,
                run.final_success * 100.0,
                run.retried,
                run.retried_sent,
                run.dead_lettered,
                if run.drained {
                    format!("yes, {:.0} s after the load", run.drain_secs)
                } else {
                    format!("**no** ({} unfinished)", run.unfinished)
                }
            );
        }
        for run in e.runs.iter().filter(|r| r.retried > 0) {
            let _ = writeln!(
                s,
                "\n{}: first-pass ones p50 {:.1} / p99 {:.1} ms; retried ones ({}) p50 {:.0} / p99 {:.0} ms. Sink: {} accepted, {} distinct, {} deferred.",
                run.label,
                run.latency_first_pass.p50_ms,
                run.latency_first_pass.p99_ms,
                run.retried,
                run.latency_retried.p50_ms,
                run.latency_retried.p99_ms,
                run.sink.received,
                run.sink.unique_message_ids,
                run.sink.deferred
            );
        }
        for run in &e.runs {
            let _ = writeln!(
                s,
                "\n{}: the worker made {:.0} SMTP attempts, {:.1} ms each on average. CPU: {}.",
                run.label,
                run.worker_attempts,
                run.worker_smtp_mean_ms,
                run.cpu.summary()
            );
        }
        let c = &e.sink_capacity;
        let _ = writeln!(
            s,
            "\nThe SMTP sink alone (lettre, {} sessions at once like the worker's pool, {} mails, `TCP_NODELAY`): **{:.0} mails/s** ({} errors). \
             Over connections as lettre opens them itself (Nagle on): {:.0} mails/s ({} mails) — lettre writes the body \
             and the final `.` separately, and the second write waits for the server's delayed ACK (~40 ms); the worker's \
             SMTP pool sets `TCP_NODELAY` (see the worker's mean SMTP time per attempt above).\n",
            c.connections, c.mails, c.per_s, c.errors, c.stock_per_s, c.stock_mails
        );
        if let Some(run) = e.runs.first() {
            let _ = writeln!(
                s,
                "Gateway side of the first run: accepted {:.0}/s, `202` p50 {:.1} ms, p99 {:.1} ms, errors {}.\n",
                run.load.accepted_per_s,
                run.load.latency.p50_ms,
                run.load.latency.p99_ms,
                errors(&run.load)
            );
        }
        let _ = writeln!(
            s,
            "Peak per service during the e2e runs:\n\n| service | RSS MiB | fds | sockets |\n|---|---|---|---|"
        );
        let mut peaks: BTreeMap<&str, ProcSample> = BTreeMap::new();
        for run in &e.runs {
            for (n, p) in &run.peak_processes {
                let e = peaks.entry(n).or_default();
                e.rss_kib = e.rss_kib.max(p.rss_kib);
                e.fds = e.fds.max(p.fds);
                e.sockets = e.sockets.max(p.sockets);
            }
        }
        for (n, p) in peaks {
            let _ = writeln!(s, "| {n} | {:.1} | {} | {} |", mib(p.rss_kib), p.fds, p.sockets);
        }
        match chart_labelled {
            Some(true) => {
                let _ = writeln!(s, "\n![e2e latency over time](latency.png)\n");
            }
            Some(false) => {
                let _ = writeln!(
                    s,
                    "\n![e2e latency over time](latency.png)\n\nThe chart (drawn without text: no font file was found): one panel per run, top to bottom in the table's order; \
                     x = seconds since the run's first acceptance, grid every 5 s; y = accepted → sent in ms from 0, grid lines every {} ms; \
                     blue = p50, red = p99 of the notifications accepted in that second.\n",
                    grid_step(max_p99(e))
                );
            }
            None => {}
        }
    }

    if let Some(k) = &r.soak {
        let _ = writeln!(
            s,
            "## Soak\n\n{}/s for {} s through the whole pipeline ({} accepted, {} sent, drained: {}; accepted → sent p50 {:.1} ms, p99 {:.1} ms), \
             every service sampled every {} s from `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/fd`.\n",
            k.rate,
            k.secs,
            k.accepted,
            k.sent,
            if k.drained { "yes" } else { "**no**" },
            k.latency.p50_ms,
            k.latency.p99_ms,
            k.sample_secs
        );
        let _ = writeln!(s, "CPU during the soak: {}.\n", k.cpu.summary());
        let _ = writeln!(
            s,
            "| service | RSS MiB first / max / last | fds first / max / last | sockets first / max / last |\n|---|---|---|---|"
        );
        for p in &k.summary {
            let _ = writeln!(
                s,
                "| {} | {:.1} / {:.1} / {:.1} | {} / {} / {} | {} / {} / {} |",
                p.service,
                mib(p.first.rss_kib),
                mib(p.max.rss_kib),
                mib(p.last.rss_kib),
                p.first.fds,
                p.max.fds,
                p.last.fds,
                p.first.sockets,
                p.max.sockets,
                p.last.sockets
            );
        }
        // RSS over time, at most ~13 rows.
        if let Some(first) = k.samples.first() {
            let names: Vec<&String> = first.processes.keys().collect();
            let _ = writeln!(
                s,
                "\nRSS (MiB) over time:\n\n| t (s) | {} |\n|---|{}",
                names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" | "),
                "---|".repeat(names.len())
            );
            let every = k.samples.len().div_ceil(12).max(1);
            let last = k.samples.len() - 1;
            for (i, smp) in k.samples.iter().enumerate() {
                if i % every != 0 && i != last {
                    continue;
                }
                let cells: Vec<String> = names
                    .iter()
                    .map(|n| {
                        smp.processes
                            .get(*n)
                            .map_or("-".into(), |p| format!("{:.1}", mib(p.rss_kib)))
                    })
                    .collect();
                let _ = writeln!(s, "| {:.0} | {} |", smp.t_s, cells.join(" | "));
            }
            s.push('\n');
        }
    }
    s
}

fn max_p99(e: &E2eResult) -> f64 {
    e.runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p.p99_ms))
        .fold(1.0, f64::max)
}

/// A round grid spacing (1, 2 or 5 × 10^k) giving at most 10 lines up to `max`.
fn grid_step(max: f64) -> f64 {
    let mut magnitude = 1.0;
    while magnitude < 1e12 {
        for m in [1.0, 2.0, 5.0] {
            if max / (m * magnitude) <= 10.0 {
                return m * magnitude;
            }
        }
        magnitude *= 10.0;
    }
    magnitude
}

/// A TrueType font, if one can be found, registered as `sans-serif`.
fn register_font() -> bool {
    let candidates = std::env::var("BENCH_FONT").into_iter().chain(
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        ]
        .map(String::from),
    );
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// Draws p50 and p99 of accepted → sent per second, one panel per run. Returns whether
/// text was drawn.
fn chart(e2e: &E2eResult, path: &Path) -> anyhow::Result<bool> {
    use plotters::prelude::*;

    let fonts = register_font();
    let root = BitMapBackend::new(path, (1200, 400 * e2e.runs.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((e2e.runs.len(), 1));
    for (run, area) in e2e.runs.iter().zip(panels.iter()) {
        let x_max = run
            .timeline
            .last()
            .map_or(1.0, |p| f64::from(p.t_s) + 1.0)
            .max(run.load.secs);
        let y_max = run.timeline.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 1.1;
        let p50: Vec<(f64, f64)> = run.timeline.iter().map(|p| (f64::from(p.t_s), p.p50_ms)).collect();
        let p99: Vec<(f64, f64)> = run.timeline.iter().map(|p| (f64::from(p.t_s), p.p99_ms)).collect();
        let mut builder = ChartBuilder::on(area);
        builder.margin(15);
        if fonts {
            builder
                .caption(
                    format!(
                        "e2e {}: accepted → sent per second of acceptance ({}/s offered)",
                        run.label, run.load.offered_rate
                    ),
                    ("sans-serif", 20),
                )
                .x_label_area_size(40)
                .y_label_area_size(60);
        }
        let mut chart = builder.build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        if fonts {
            chart
                .configure_mesh()
                .x_desc("seconds since the first acceptance")
                .y_desc("ms")
                .draw()?;
        } else {
            // Grid without labels: every 5 s and every `grid_step` ms.
            let grey = RGBColor(220, 220, 220);
            let mut x = 0.0;
            while x <= x_max {
                chart.draw_series(LineSeries::new([(x, 0.0), (x, y_max)], grey))?;
                x += 5.0;
            }
            let step = grid_step(max_p99(e2e));
            let mut y = 0.0;
            while y <= y_max {
                chart.draw_series(LineSeries::new([(0.0, y), (x_max, y)], grey))?;
                y += step;
            }
            chart.draw_series(LineSeries::new([(0.0, 0.0), (x_max, 0.0)], BLACK))?;
            chart.draw_series(LineSeries::new([(0.0, 0.0), (0.0, y_max)], BLACK))?;
        }
        let blue = RGBColor(31, 119, 180);
        let red = RGBColor(214, 39, 40);
        let s50 = chart.draw_series(LineSeries::new(p50, blue.stroke_width(2)).point_size(2))?;
        if fonts {
            s50.label("p50")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue));
        }
        let s99 = chart.draw_series(LineSeries::new(p99, red.stroke_width(2)).point_size(2))?;
        if fonts {
            s99.label("p99")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], red));
            chart
                .configure_series_labels()
                // Top left: the lines start low and end where the run ends, under a right legend.
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(fonts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_steps_are_round_and_give_at_most_ten_lines() {
        for (max, want) in [(8.0, 1.0), (35.0, 5.0), (180.0, 20.0), (900.0, 100.0), (4000.0, 500.0)] {
            let step = grid_step(max);
            assert!(max / step <= 10.0, "{max}: {step}");
            assert_eq!(step, want, "{max}");
        }
    }
}
