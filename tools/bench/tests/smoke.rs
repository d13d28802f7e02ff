//! `bench smoke` against the local stack (PostgreSQL, broker, registry, Redis on 127.0.0.1,
//! as for every other integration test): each scenario runs and produces figures. Nothing
//! about speed is asserted. The services are the binaries of this same build (debug under
//! `make test`), and the results go to a temporary directory, not `tools/bench/results/`.

use std::{path::Path, process::Command};

use serde_json::Value;

fn number(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key],
        };
    }
    cur.as_f64().unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

#[test]
fn the_smoke_run_produces_figures_for_every_scenario() {
    let bench = Path::new(env!("CARGO_BIN_EXE_bench"));
    let bins = bench.parent().expect("the target directory");
    let out = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));

    let status = Command::new(bench)
        .arg("smoke")
        .arg("--out")
        .arg(&out)
        .env("BENCH_BIN_DIR", bins)
        .env("BENCH_LOG_DIR", out.join("logs"))
        .status()
        .expect("bench starts");

    assert!(
        status.success(),
        "bench smoke failed ({status}); logs in {}",
        out.join("logs").display()
    );
    let text = std::fs::read_to_string(out.join("latest.json")).expect("latest.json written");
    let r: Value = serde_json::from_str(&text).expect("latest.json is JSON");
    assert_eq!(r["plan"]["mode"], "smoke");
    assert_eq!(r["failures"], serde_json::json!({}));
    for path in [
        "gateway.steps.0.gateway.ok",
        "gateway.steps.0.baseline.ok",
        "gateway.steps.0.gateway.latency.p99_ms",
        "ingest.accepted_per_s",
        "ingest.produced_per_s",
        "relay.rows_per_s",
        "relay.baseline_records_per_s",
        "relay.commit_to_ack.count",
        "e2e.sink_capacity.per_s",
        "e2e.runs.0.accepted",
        "e2e.runs.0.sent",
        "e2e.runs.0.latency.p50_ms",
        "soak.accepted",
    ] {
        assert!(number(&r, path) > 0.0, "{path} is 0 in {text}");
    }
    let runs = r["e2e"]["runs"].as_array().expect("e2e runs");
    assert!(runs.len() >= 2, "a run with transient failures too");
    assert!(
        number(runs.last().expect("a run"), "fail_rate") > 0.0,
        "the last run injects failures"
    );
    let samples = r["soak"]["samples"].as_array().expect("soak samples");
    assert!(samples.len() >= 2, "sampled over time");
    assert!(
        samples[0]["processes"]["gateway"]["rss_kib"].as_u64() > Some(0),
        "RSS of the gateway sampled"
    );
    let md = std::fs::read_to_string(out.join("latest.md")).expect("latest.md written");
    for section in ["## Gateway", "## Relay", "## End to end", "## Soak"] {
        assert!(md.contains(section), "{section} missing from latest.md");
    }
    let png = std::fs::metadata(out.join("latency.png")).expect("latency.png written");
    assert!(png.len() > 0);
    let _ = std::fs::remove_dir_all(&out);
}
