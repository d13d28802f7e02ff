//! `bench`: measures the pipeline end to end against baselines, with the real binaries.
//!
//! Each scenario starts what it measures as real processes (release builds from
//! `$CARGO_TARGET_DIR/release`, or debug with a warning), on free ports, with databases and a
//! topic prefix of the run's own, against the local stack (PostgreSQL, broker, registry,
//! Redis on 127.0.0.1). Results go to `tools/bench/results/<timestamp>.json` and `latest.json`,
//! rendered as `latest.md` and `latency.png`. `bench --help` lists the scenarios.

mod baseline;
mod load;
mod plan;
mod procs;
mod report;
mod scenarios;
mod stack;

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use anyhow::Context;

use crate::{
    plan::{Args, Command, Plan, Scenario},
    procs::Binaries,
    report::{Machine, Report},
    stack::Infra,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    match args.command {
        Command::Report => {
            let report = report::read_latest(&args.out)?;
            let md = report::render(&report, &args.out)?;
            println!("{md}");
            println!(
                "[bench] wrote {} and {}",
                args.out.join("latest.md").display(),
                args.out.join("latency.png").display()
            );
            Ok(())
        }
        Command::Cleanup => stack::cleanup_leftovers().await,
        Command::Run { scenarios, plan } => {
            // Ctrl-C / SIGTERM drop the run, which stops every process it started.
            let report = tokio::select! {
                r = run(&scenarios, *plan, &args.out) => r?,
                _ = shutdown_signal() => anyhow::bail!("interrupted; the services started by the run were stopped"),
            };
            if report.failures.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} scenario(s) failed: {}",
                    report.failures.len(),
                    report.failures.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn run(scenarios: &[Scenario], plan: Plan, out: &std::path::Path) -> anyhow::Result<Report> {
    let started = Instant::now();
    let timestamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let bins = Binaries::locate()?;
    let logs = std::env::var("BENCH_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".run/bench").join(&timestamp));
    std::fs::create_dir_all(&logs).with_context(|| format!("failed to create {}", logs.display()))?;
    println!(
        "[bench] mode {}, scenarios {}, {} binaries from {}, service logs in {}",
        plan.mode,
        scenarios.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        bins.profile,
        bins.dir.display(),
        logs.display()
    );
    let machine = Machine::probe();
    let infra = Infra::new(bins.clone(), logs, plan.shared_broker).await?;
    let mut report = Report {
        timestamp,
        duration_secs: 0.0,
        git_commit: git_commit(),
        machine,
        binaries: bins,
        plan: plan.clone(),
        gateway: None,
        ingest: None,
        relay: None,
        e2e: None,
        soak: None,
        failures: BTreeMap::new(),
    };
    for &scenario in scenarios {
        let t = Instant::now();
        println!("[bench] === {} ===", scenario.name());
        let outcome = match scenario {
            Scenario::Gateway => scenarios::gateway::run(&infra, &plan)
                .await
                .map(|r| report.gateway = Some(r)),
            Scenario::Ingest => scenarios::ingest::run(&infra, &plan)
                .await
                .map(|r| report.ingest = Some(r)),
            Scenario::Relay => scenarios::relay::run(&infra, &plan)
                .await
                .map(|r| report.relay = Some(r)),
            Scenario::E2e => scenarios::e2e::run(&infra, &plan).await.map(|r| report.e2e = Some(r)),
            Scenario::Soak => scenarios::soak::run(&infra, &plan).await.map(|r| report.soak = Some(r)),
        };
        match outcome {
            Ok(()) => println!("[bench] {} done in {:.0} s", scenario.name(), t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("[bench] {} FAILED: {e:#}", scenario.name());
                report.failures.insert(scenario.name().to_string(), format!("{e:#}"));
            }
        }
    }
    infra.cleanup().await;
    report.machine.load_after = report::load_average();
    report.duration_secs = started.elapsed().as_secs_f64();
    let path = report::write_json(&report, out)?;
    let md = report::render(&report, out)?;
    println!("\n{md}");
    println!(
        "[bench] results: {} (and latest.json, latest.md, latency.png in {})",
        path.display(),
        out.display()
    );
    Ok(report)
}
