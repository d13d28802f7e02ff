//! A Prometheus server of a test's own (Debian's `prometheus`, installed by
//! `deploy/local/install-prometheus.sh`; `PROMETHEUS_BIN` names another binary), and its HTTP
//! API: instant queries, which metrics have series, the scrape targets' health.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{process::free_port, unique};

/// How long the server may take to be ready, and the targets to be scraped.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A Prometheus server of the test's own: a free port, storage in a temporary directory
/// (removed when dropped, kept with its log if the test failed), killed when dropped.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts a server scraping `targets` (job name → port on 127.0.0.1) every second, and
    /// itself as job `prometheus`, with `rule_file` (the alert rules) loaded.
    pub async fn start(targets: &[(&str, u16)], rule_file: &Path) -> Self {
        let dir = std::env::temp_dir().join(unique("notify-prometheus-"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = free_port();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n",
            rule_file.display()
        );
        for (job, p) in targets.iter().copied().chain([("prometheus", port)]) {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [\"127.0.0.1:{p}\"]\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin}` ({e}): install it with `bash deploy/local/install-prometheus.sh`")
            });
        let mut server = Self {
            child,
            dir,
            port,
            http: reqwest::Client::new(),
        };
        let ready = format!("{}/-/ready", server.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = server.http.get(&ready).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("prometheus exited ({status}); log:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready; log:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: the whole answer (`status`, `data` or `errorType`/`error`).
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        self.http
            .get(format!("{}/api/v1/{path}", self.url()))
            .query(params)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An instant query: its result, or Prometheus' error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let answer = self.api("query", &[("query", expr)]).await;
        if answer["status"] == "success" {
            Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
        } else {
            Err(format!("{}: {}", answer["errorType"], answer["error"]))
        }
    }

    /// The value of a query that returns one sample (e.g. a `sum`); `None` when it returns none.
    pub async fn value(&self, expr: &str) -> Option<f64> {
        let result = self
            .query(expr)
            .await
            .unwrap_or_else(|e| panic!("query {expr} failed: {e}"));
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Which of `names` have at least one series.
    pub async fn present(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        if names.is_empty() {
            return BTreeSet::new();
        }
        let alternatives: Vec<&str> = names.iter().map(String::as_str).collect();
        let expr = format!("count by (__name__) ({{__name__=~\"{}\"}})", alternatives.join("|"));
        self.query(&expr)
            .await
            .unwrap_or_else(|e| panic!("query {expr} failed: {e}"))
            .iter()
            .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_string))
            .collect()
    }

    /// The active targets: job → (health, last error).
    pub async fn targets(&self) -> BTreeMap<String, (String, String)> {
        let answer = self.api("targets", &[("state", "active")]).await;
        answer["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or("?").to_string(),
                    (
                        t["health"].as_str().unwrap_or("?").to_string(),
                        t["lastError"].as_str().unwrap_or("").to_string(),
                    ),
                )
            })
            .collect()
    }

    /// Waits until every target of `jobs` has been scraped successfully.
    pub async fn wait_targets_up(&self, jobs: &BTreeSet<String>) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let targets = self.targets().await;
            let down: Vec<String> = jobs
                .iter()
                .filter(|j| targets.get(*j).is_none_or(|(health, _)| health != "up"))
                .map(|j| format!("{j}: {:?}", targets.get(j)))
                .collect();
            if down.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "scrape targets not up: {down:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("prometheus data, config and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
