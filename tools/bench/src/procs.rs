//! The real binaries: where they are, starting and stopping them, and what `/proc` says
//! about them (resident memory, open file descriptors, sockets).

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Every binary a full run starts.
pub const SERVICES: [&str; 8] = [
    "gateway",
    "ingest",
    "outbox-relay",
    "email-worker",
    "status-projector",
    "user-svc",
    "template-svc",
    "smtp-sink",
];

/// Where the service binaries are taken from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Binaries {
    pub dir: PathBuf,
    /// `release` or `debug` (or `custom` for `BENCH_BIN_DIR`).
    pub profile: String,
    /// Set when the figures are not representative (debug build).
    pub warning: Option<String>,
}

impl Binaries {
    /// `BENCH_BIN_DIR` if set; otherwise `$CARGO_TARGET_DIR/release` when every service is
    /// built there, else `$CARGO_TARGET_DIR/debug` with a warning.
    pub fn locate() -> anyhow::Result<Self> {
        if let Ok(dir) = std::env::var("BENCH_BIN_DIR") {
            let dir = PathBuf::from(dir);
            let profile = match dir.file_name().and_then(|n| n.to_str()) {
                Some(p @ ("release" | "debug")) => p.to_string(),
                _ => "custom".to_string(),
            };
            let warning = (profile == "debug").then(|| DEBUG_WARNING.to_string());
            return Self::checked(dir, profile, warning);
        }
        let target = target_dir();
        let release = target.join("release");
        if missing(&release).is_empty() {
            return Self::checked(release, "release".into(), None);
        }
        eprintln!(
            "\n!!! WARNING: release binaries missing in {} ({}): falling back to DEBUG builds.\n!!! {DEBUG_WARNING}\n!!! Build them with: cargo build --release -p gateway -p ingest -p outbox-relay -p email-worker -p status-projector -p user-svc -p template-svc -p smtp-sink\n",
            release.display(),
            missing(&release).join(", ")
        );
        Self::checked(target.join("debug"), "debug".into(), Some(DEBUG_WARNING.into()))
    }

    fn checked(dir: PathBuf, profile: String, warning: Option<String>) -> anyhow::Result<Self> {
        let absent = missing(&dir);
        if !absent.is_empty() {
            bail!(
                "binaries missing in {}: {} (run `cargo build --workspace --bins`, or `make bench` for release builds)",
                dir.display(),
                absent.join(", ")
            );
        }
        Ok(Self { dir, profile, warning })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

const DEBUG_WARNING: &str = "figures from DEBUG builds are not representative (often 5-20x slower)";

fn missing(dir: &Path) -> Vec<&'static str> {
    SERVICES.into_iter().filter(|n| !dir.join(n).is_file()).collect()
}

/// `$CARGO_TARGET_DIR`, or the workspace's shared default.
pub fn target_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/notify-platform/target")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(l.local_addr().context("failed to read a bound port")?.port())
}

/// One running service process. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Service {
    pub name: &'static str,
    /// Its HTTP port (health, metrics, API).
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Service {
    /// Starts `bins/<name>` with `env` (added to the bench's environment), stdout and stderr
    /// appended to `<logs>/<log_name>.log`. `port` is where it answers HTTP.
    pub fn spawn(
        bins: &Binaries,
        logs: &Path,
        name: &'static str,
        log_name: &str,
        port: u16,
        env: &[(String, String)],
        quiet_stdout: bool,
    ) -> anyhow::Result<Self> {
        let log = logs.join(format!("{log_name}.log"));
        let file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("failed to open {}", log.display()))?;
        let stdout = if quiet_stdout {
            Stdio::null()
        } else {
            Stdio::from(file.try_clone().context("failed to share the log file")?)
        };
        let mut cmd = Command::new(bins.path(name));
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {}", bins.path(name).display()))?;
        Ok(Self {
            name,
            port,
            log,
            child: Some(child),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until `GET <path>` answers 2xx; fails early if the process exits.
    pub async fn wait_healthy(&mut self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("failed to build an HTTP client")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("failed to poll a child")? {
                    bail!(
                        "{} exited during start-up ({status}); see {}",
                        self.name,
                        self.log.display()
                    );
                }
            }
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not healthy at {url} after {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM without waiting (see [`Service::stop`]), so several services can shut
    /// down at once.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        self.terminate();
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What `/proc/<pid>` says about a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub fds: u64,
    /// Of those, sockets (TCP connections, listeners and the odd Unix socket).
    pub sockets: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/fd`; `None` when the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut fds = 0;
    let mut sockets = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        if std::fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false)
        {
            sockets += 1;
        }
    }
    Some(ProcSample { rss_kib, fds, sockets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_is_attributed_to_the_busy_process() {
        let before = CpuSnapshot::take();
        let until = Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        let usage = before.usage_until(&CpuSnapshot::take());
        assert!(x != 1, "keep the loop");
        assert!(usage.machine_busy_pct > 0.0, "{usage:?}");
        assert!(!usage.top.is_empty(), "{usage:?}");
    }

    #[test]
    fn the_own_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0 && s.fds > 0, "{s:?}");
    }
}

/// CPU time of every process on the machine, by command name, at one moment.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    /// `/proc/stat`: all jiffies and the idle ones.
    total: u64,
    idle: u64,
    /// pid → (`comm`, `utime + stime` in clock ticks).
    by_pid: BTreeMap<u32, (String, u64)>,
}

/// CPU used between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Share of all cores busy (0–100).
    pub machine_busy_pct: f64,
    /// The largest users: process name and cores used on average (1.0 = one core).
    pub top: Vec<(String, f64)>,
}

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`) on every common
/// architecture.
const TICKS_PER_SEC: f64 = 100.0;

impl CpuSnapshot {
    pub fn take() -> Self {
        let (total, idle) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.strip_prefix("cpu ")?.to_string();
                let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                Some((v.iter().take(8).sum(), idle))
            })
            .unwrap_or((0, 0));
        let mut by_pid = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let name = e.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                    continue;
                };
                // Kernel workers rename themselves per work item: one name for all.
                let comm = match &stat[open + 1..close] {
                    c if c.starts_with("kworker") => "kworker".to_string(),
                    c => c.to_string(),
                };
                let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
                // Fields 14 and 15 (utime, stime) are 11 and 12 after the state.
                let ticks: u64 = [11, 12]
                    .iter()
                    .filter_map(|i| rest.get(*i).and_then(|v| v.parse::<u64>().ok()))
                    .sum();
                by_pid.insert(pid, (comm, ticks));
            }
        }
        Self {
            at: Instant::now(),
            total,
            idle,
            by_pid,
        }
    }

    /// What was used from `self` to `later` (processes that exited in between are missed).
    pub fn usage_until(&self, later: &Self) -> CpuUsage {
        let secs = (later.at - self.at).as_secs_f64().max(1e-3);
        let total = later.total.saturating_sub(self.total);
        let idle = later.idle.saturating_sub(self.idle);
        let machine_busy_pct = if total > 0 {
            100.0 * (total - idle.min(total)) as f64 / total as f64
        } else {
            0.0
        };
        // Per process (a process started in between counts whole), then by name.
        let mut by_comm: BTreeMap<&str, u64> = BTreeMap::new();
        for (pid, (comm, ticks)) in &later.by_pid {
            let before = self.by_pid.get(pid).map_or(0, |(_, t)| *t);
            *by_comm.entry(comm).or_default() += ticks.saturating_sub(before);
        }
        let mut top: Vec<(String, f64)> = by_comm
            .into_iter()
            .map(|(comm, ticks)| {
                let cores = ticks as f64 / TICKS_PER_SEC / secs;
                (comm.to_string(), (cores * 100.0).round() / 100.0)
            })
            .filter(|(_, c)| *c >= 0.01)
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(8);
        CpuUsage {
            machine_busy_pct: (machine_busy_pct * 10.0).round() / 10.0,
            top,
        }
    }
}

impl CpuUsage {
    /// `gateway 0.9, postgres 0.7, …` (cores).
    pub fn summary(&self) -> String {
        let top: Vec<String> = self.top.iter().take(6).map(|(n, c)| format!("{n} {c:.2}")).collect();
        format!("machine {:.0}% busy; cores: {}", self.machine_busy_pct, top.join(", "))
    }
}

/// A service's Prometheus metrics (`GET <url>/metrics`), each name summed over its labels.
pub async fn scrape(http: &reqwest::Client, base_url: &str) -> BTreeMap<String, f64> {
    let Ok(resp) = http.get(format!("{base_url}/metrics")).send().await else {
        return BTreeMap::new();
    };
    let text = resp.text().await.unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_string()).or_default() += v;
        }
    }
    out
}

/// `after[name] - before[name]`.
pub fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}
