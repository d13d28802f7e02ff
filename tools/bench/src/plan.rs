//! What a run does: the scenarios to run and their sizes, from the command line.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// One phase of open-loop load: `rate` requests per second for `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub rate: u32,
    pub secs: f64,
}

impl Step {
    pub const fn new(rate: u32, secs: f64) -> Self {
        Self { rate, secs }
    }

    /// Requests in this step (at least one).
    pub fn total(&self) -> u64 {
        ((f64::from(self.rate) * self.secs).round() as u64).max(1)
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        let (rate, secs) = s
            .split_once('x')
            .with_context(|| format!("`{s}` is not RATExSECONDS, e.g. 1000x20"))?;
        Ok(Self {
            rate: rate.parse().with_context(|| format!("bad rate in `{s}`"))?,
            secs: secs.parse().with_context(|| format!("bad seconds in `{s}`"))?,
        })
    }
}

/// A scenario of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Gateway,
    Ingest,
    Relay,
    E2e,
    Soak,
}

impl Scenario {
    pub const ALL: [Self; 5] = [Self::Gateway, Self::Ingest, Self::Relay, Self::E2e, Self::Soak];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Ingest => "ingest",
            Self::Relay => "relay",
            Self::E2e => "e2e",
            Self::Soak => "soak",
        }
    }
}

/// Sizes of every scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// `standard`, `quick`, `long` or `smoke`.
    pub mode: String,
    /// Requests allowed in flight at once; a request due while this many are open is dropped
    /// (counted as an error) instead of waiting, so the schedule never slows down.
    pub max_in_flight: usize,
    /// Unmeasured load before the first gateway step (connections, caches).
    pub gateway_warmup: Step,
    /// Offered rates of the gateway and of its baseline.
    pub gateway_steps: Vec<Step>,
    /// Producer requests published to `notifications.requests` before the ingest starts.
    #[serde(default = "default_ingest_backlog")]
    pub ingest_backlog: u64,
    /// Outbox rows inserted before the relay starts.
    pub relay_rows: u64,
    /// Rows inserted at a fixed rate while the relay runs (commit → ack latency).
    pub relay_latency: Step,
    /// Offered load through the whole pipeline.
    pub e2e: Step,
    /// Recipients created for the e2e and soak scenarios.
    pub e2e_users: usize,
    /// The share of first SMTP attempts the sink defers in the second e2e run.
    pub e2e_fail_rate: f64,
    /// How long to wait for the pipeline to finish after the load stops.
    pub drain_timeout_secs: u64,
    /// Mails sent straight to the SMTP sink to measure its capacity.
    pub sink_mails: u64,
    /// Offered load of the soak scenario.
    pub soak: Step,
    /// Sampling interval of the soak scenario.
    pub soak_sample_secs: u64,
    /// Use the stack's broker instead of a private one per scenario (`--shared-broker`).
    #[serde(default)]
    pub shared_broker: bool,
}

fn default_ingest_backlog() -> u64 {
    20_000
}

impl Plan {
    /// `make bench`: under 15 minutes on 2 cores.
    pub fn standard() -> Self {
        Self {
            mode: "standard".into(),
            max_in_flight: 512,
            gateway_warmup: Step::new(500, 2.0),
            gateway_steps: vec![Step::new(1000, 20.0), Step::new(3000, 10.0), Step::new(5000, 10.0)],
            ingest_backlog: default_ingest_backlog(),
            relay_rows: 50_000,
            relay_latency: Step::new(1000, 20.0),
            e2e: Step::new(1000, 30.0),
            e2e_users: 200,
            e2e_fail_rate: 0.05,
            drain_timeout_secs: 120,
            sink_mails: 10_000,
            soak: Step::new(200, 180.0),
            soak_sample_secs: 5,
            shared_broker: false,
        }
    }

    /// `--quick`: the same shape, about half the time.
    pub fn quick() -> Self {
        Self {
            mode: "quick".into(),
            gateway_steps: vec![Step::new(1000, 10.0), Step::new(3000, 5.0), Step::new(5000, 5.0)],
            ingest_backlog: 10_000,
            relay_rows: 20_000,
            relay_latency: Step::new(1000, 10.0),
            e2e: Step::new(1000, 15.0),
            drain_timeout_secs: 90,
            sink_mails: 5_000,
            soak: Step::new(200, 60.0),
            ..Self::standard()
        }
    }

    /// `--long`: the e2e run and the soak last 5 minutes.
    pub fn long() -> Self {
        Self {
            mode: "long".into(),
            e2e: Step::new(1000, 300.0),
            drain_timeout_secs: 300,
            soak: Step::new(200, 300.0),
            ..Self::standard()
        }
    }

    /// `smoke`: tiny numbers, proves each scenario runs and produces figures.
    pub fn smoke() -> Self {
        Self {
            mode: "smoke".into(),
            max_in_flight: 64,
            gateway_warmup: Step::new(10, 0.5),
            gateway_steps: vec![Step::new(50, 1.0)],
            ingest_backlog: 200,
            relay_rows: 200,
            relay_latency: Step::new(50, 1.0),
            e2e: Step::new(20, 1.0),
            e2e_users: 3,
            e2e_fail_rate: 0.05,
            drain_timeout_secs: 45,
            sink_mails: 50,
            soak: Step::new(20, 5.0),
            soak_sample_secs: 1,
            shared_broker: false,
        }
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run scenarios, write the results and the report.
    Run { scenarios: Vec<Scenario>, plan: Box<Plan> },
    /// Turn `<out>/latest.json` into `latest.md` and `latency.png`.
    Report,
    /// Drop the databases interrupted runs left.
    Cleanup,
}

/// Parsed arguments.
#[derive(Debug)]
pub struct Args {
    pub command: Command,
    /// Where results go (`--out`, default `tools/bench/results` of the workspace).
    pub out: PathBuf,
}

pub const USAGE: &str = "\
usage: bench [all | smoke | gateway | ingest | relay | e2e | soak ...] [options]
       bench report [--out DIR]
       bench cleanup

  all (default)   every scenario: gateway, ingest, relay, e2e, soak
  smoke           every scenario with tiny numbers (asserts nothing about speed)
  report          render DIR/latest.json as DIR/latest.md and DIR/latency.png
  cleanup         drop the bench_* databases interrupted runs leave (only while no
                  benchmark runs)

options:
  --quick                  shorter runs (about half)
  --long                   e2e and soak run 5 minutes each
  --out DIR                results directory (default: tools/bench/results)
  --gateway-steps R1xS1,…  offered rates and seconds of the gateway steps, e.g. 1000x20,3000x10
  --ingest-backlog N       producer requests waiting when the ingest starts
  --relay-rows N           outbox backlog size
  --e2e RxS                e2e offered rate and seconds, e.g. 1000x30
  --soak RxS               soak offered rate and seconds, e.g. 200x180
  --max-in-flight N        open requests at once before new ones are dropped
  --shared-broker          use the stack's broker (127.0.0.1:9092) instead of a private
                           tansu per scenario (fresh SQLite storage, deleted afterwards)

environment: BENCH_BIN_DIR (binaries to run; default $CARGO_TARGET_DIR/release, else debug),
TANSU_BIN (the private broker; default ~/.cache/notify-platform/tools/tansu-0.6.0/bin/tansu),
TEST_DATABASE_URL, TEST_KAFKA_BOOTSTRAP, TEST_SCHEMA_REGISTRY_URL, TEST_REDIS_URL.";

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut scenarios = Vec::new();
        let mut report = false;
        let mut cleanup = false;
        let mut smoke = false;
        let mut quick = false;
        let mut long = false;
        let mut out = None;
        let mut steps = None;
        let mut relay_rows = None;
        let mut ingest_backlog = None;
        let mut e2e = None;
        let mut soak = None;
        let mut max_in_flight = None;
        let mut shared_broker = false;
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
            match a.as_str() {
                "all" => scenarios.extend(Scenario::ALL),
                "gateway" => scenarios.push(Scenario::Gateway),
                "ingest" => scenarios.push(Scenario::Ingest),
                "relay" => scenarios.push(Scenario::Relay),
                "e2e" => scenarios.push(Scenario::E2e),
                "soak" => scenarios.push(Scenario::Soak),
                "smoke" => smoke = true,
                "report" => report = true,
                "cleanup" => cleanup = true,
                "--quick" => quick = true,
                "--shared-broker" => shared_broker = true,
                "--long" => long = true,
                "--out" => out = Some(PathBuf::from(value("--out")?)),
                "--gateway-steps" => {
                    steps = Some(
                        value("--gateway-steps")?
                            .split(',')
                            .map(Step::parse)
                            .collect::<anyhow::Result<Vec<_>>>()?,
                    );
                }
                "--relay-rows" => {
                    relay_rows = Some(value("--relay-rows")?.parse().context("--relay-rows")?);
                }
                "--ingest-backlog" => {
                    ingest_backlog = Some(value("--ingest-backlog")?.parse().context("--ingest-backlog")?);
                }
                "--e2e" => e2e = Some(Step::parse(&value("--e2e")?)?),
                "--soak" => soak = Some(Step::parse(&value("--soak")?)?),
                "--max-in-flight" => {
                    max_in_flight = Some(value("--max-in-flight")?.parse().context("--max-in-flight")?);
                }
                "-h" | "--help" | "help" => bail!("{USAGE}"),
                other => bail!("unknown argument `{other}`\n{USAGE}"),
            }
        }
        let out = out.unwrap_or_else(default_out_dir);
        if cleanup {
            return Ok(Self {
                command: Command::Cleanup,
                out,
            });
        }
        if report {
            return Ok(Self {
                command: Command::Report,
                out,
            });
        }
        let mut plan = match (smoke, quick, long) {
            (true, _, _) => Plan::smoke(),
            (false, true, true) => bail!("--quick and --long exclude each other"),
            (false, true, false) => Plan::quick(),
            (false, false, true) => Plan::long(),
            (false, false, false) => Plan::standard(),
        };
        if let Some(s) = steps {
            plan.gateway_steps = s;
        }
        if let Some(n) = ingest_backlog {
            plan.ingest_backlog = n;
        }
        if let Some(n) = relay_rows {
            plan.relay_rows = n;
        }
        if let Some(s) = e2e {
            plan.e2e = s;
        }
        if let Some(s) = soak {
            plan.soak = s;
        }
        if let Some(n) = max_in_flight {
            plan.max_in_flight = n;
        }
        plan.shared_broker = shared_broker;
        if scenarios.is_empty() {
            scenarios.extend(Scenario::ALL);
        }
        // In the standard order, once each.
        let scenarios = Scenario::ALL.into_iter().filter(|s| scenarios.contains(s)).collect();
        Ok(Self {
            command: Command::Run {
                scenarios,
                plan: Box::new(plan),
            },
            out,
        })
    }
}

/// `results/` beside this crate (`tools/bench/results`), kept in git with the README's figures.
fn default_out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::canonicalize(&dir).unwrap_or(dir).join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Args {
        Args::parse(s.split_whitespace().map(str::to_string)).expect("valid arguments")
    }

    #[test]
    fn no_argument_runs_every_scenario_with_the_standard_plan() {
        let Command::Run { scenarios, plan } = parse("").command else {
            panic!("expected a run")
        };
        assert_eq!(scenarios, Scenario::ALL.to_vec());
        assert_eq!(plan.mode, "standard");
    }

    #[test]
    fn overrides_and_selected_scenarios_are_kept_in_standard_order() {
        let Command::Run { scenarios, plan } =
            parse("soak gateway --quick --e2e 500x3 --gateway-steps 10x1,20x2").command
        else {
            panic!("expected a run")
        };
        assert_eq!(scenarios, vec![Scenario::Gateway, Scenario::Soak]);
        assert_eq!(plan.mode, "quick");
        assert_eq!(plan.e2e, Step::new(500, 3.0));
        assert_eq!(plan.gateway_steps, vec![Step::new(10, 1.0), Step::new(20, 2.0)]);
    }

    #[test]
    fn a_bad_argument_is_refused_with_the_usage() {
        let err = Args::parse(["--bogus".to_string()]).expect_err("refused");
        assert!(err.to_string().contains("usage"), "{err}");
    }
}
