//! What every scenario starts from: the shared servers (PostgreSQL, broker, registry, Redis
//! on 127.0.0.1), databases and a topic prefix of the run's own, tokens, and the whole
//! pipeline as real processes.

use std::{
    path::PathBuf,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use anyhow::{bail, Context};
use notify_kafka::{KafkaSettings, Topics};
use notify_kit::auth::{AuthSettings, JwtIssuer, TokenUse, SCOPE_READ, SCOPE_SEND};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::procs::{free_port, Binaries, Service};

/// Partitions of the run's topics (the services' default).
pub const PARTITIONS: i32 = 6;

/// Retry tiers of the e2e runs: seconds, not minutes, so retried notifications finish
/// within the run (stated in the output).
pub const RETRY_DELAYS_MS: [u64; 2] = [1000, 2000];

/// The shared servers and what the run created on them (removed by [`Infra::cleanup`]).
pub struct Infra {
    /// Short random id: database names, topic prefixes, cache keys.
    pub run_id: String,
    pub admin_url: String,
    pub kafka: String,
    pub registry: String,
    pub redis: String,
    jwt_secret: String,
    pub bins: Binaries,
    /// Where service logs go.
    pub logs: PathBuf,
    /// Use the stack's broker (`TEST_KAFKA_BOOTSTRAP`) instead of a private one per scenario.
    pub shared_broker: bool,
    dbs: Mutex<Vec<String>>,
    /// Topic prefixes created on the shared broker (reported, not deleted, at the end).
    prefixes: Mutex<Vec<String>>,
}

/// A database of the run.
pub struct Db {
    pub url: String,
    pub pool: PgPool,
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

impl Infra {
    /// Checks the servers answer and registers the schemas (the deploy step; idempotent).
    pub async fn new(bins: Binaries, logs: PathBuf, shared_broker: bool) -> anyhow::Result<Self> {
        let run_id = Uuid::new_v4().simple().to_string()[..10].to_string();
        let infra = Self {
            run_id,
            admin_url: env_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
            kafka: env_or("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            registry: env_or("TEST_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            redis: env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379"),
            jwt_secret: format!("bench-{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            bins,
            logs,
            shared_broker,
            dbs: Mutex::default(),
            prefixes: Mutex::default(),
        };
        for url in [&infra.admin_url, &infra.kafka, &infra.registry, &infra.redis] {
            if !(url.contains("127.0.0.1") || url.contains("localhost")) {
                bail!("the benchmark loads only servers on 127.0.0.1, not {url}");
            }
        }
        PgConnection::connect(&infra.admin_url)
            .await
            .context("PostgreSQL must run on 127.0.0.1:5432 (bash deploy/local/stack.sh up)")?
            .close()
            .await
            .ok();
        let registry = notify_schemas::registry::SchemaRegistry::new(&infra.registry)
            .context("failed to build the registry client")?;
        registry
            .register_all(notify_schemas::CONTRACTS, "BACKWARD")
            .await
            .context("the schema registry must run on 127.0.0.1:8081 (bash deploy/local/stack.sh up)")?;
        Ok(infra)
    }

    /// Creates `bench_<run>_<tag>` and runs the notification store's migrations in it.
    pub async fn notify_db(&self, tag: &str) -> anyhow::Result<Db> {
        let name = self.db_name(tag);
        let mut conn = PgConnection::connect(&self.admin_url)
            .await
            .context("failed to connect to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("failed to create database {name}"))?;
        conn.close().await.ok();
        self.remember_db(&name);
        let url = self.db_url(&name);
        let pool = notify_store::connect(&url, 8).await?;
        notify_store::MIGRATOR
            .run(&pool)
            .await
            .context("failed to migrate the benchmark database")?;
        Ok(Db { url, pool })
    }

    /// Name for a database of the run (services that create their own take it too).
    pub fn db_name(&self, tag: &str) -> String {
        format!("bench_{}_{tag}", self.run_id)
    }

    pub fn db_url(&self, name: &str) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    /// Records a database to drop at the end (user-svc and template-svc create theirs).
    pub fn remember_db(&self, name: &str) {
        self.dbs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_string());
    }

    /// A topic prefix of the run's own on `broker`, its topics created with [`PARTITIONS`].
    pub async fn topic_prefix(&self, broker: &Broker, tag: &str) -> anyhow::Result<String> {
        let prefix = format!("bench{}{tag}.", self.run_id);
        if broker.child.is_none() {
            self.prefixes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(prefix.clone());
        }
        notify_kafka::ensure_topics(&kafka_settings(&broker.bootstrap, &prefix), &Topics::new(&prefix).all())
            .await
            .with_context(|| format!("failed to create the topics on {}", broker.bootstrap))?;
        Ok(prefix)
    }

    /// A broker for one scenario: a private tansu (SQLite storage, like the stack's) on a
    /// free port with an empty database, or the stack's with `--shared-broker`. A private
    /// one keeps the figures independent of what earlier runs and other tests left in the
    /// shared broker, and the load away from them.
    pub async fn broker(&self, tag: &str) -> anyhow::Result<Broker> {
        if self.shared_broker {
            return Ok(Broker {
                bootstrap: self.kafka.clone(),
                child: None,
                dir: None,
            });
        }
        let bin = std::env::var("TANSU_BIN").map(PathBuf::from).unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            let cache = std::env::var("NOTIFY_CACHE").unwrap_or_else(|_| format!("{home}/.cache/notify-platform"));
            PathBuf::from(cache).join("tools/tansu-0.6.0/bin/tansu")
        });
        anyhow::ensure!(
            bin.is_file(),
            "{} is missing: run `bash deploy/local/stack.sh up` (installs it), or pass --shared-broker",
            bin.display()
        );
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("bench-tansu-{}-{tag}", self.run_id));
        std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let log_path = self.logs.join(format!("{tag}-tansu.log"));
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("failed to open {}", log_path.display()))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&bin)
            .current_dir(&dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().context("failed to share the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("failed to start {}", bin.display()))?;
        let db = dir.join("tansu.db");
        let mut broker = Broker {
            bootstrap: format!("127.0.0.1:{port}"),
            child: Some(child),
            dir: Some(dir),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(c) = broker.child.as_mut() {
                if let Some(status) = c.try_wait().context("failed to poll the broker")? {
                    bail!("tansu exited at start ({status}); see {}", log_path.display());
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "tansu did not listen on {port}; see {}",
                log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        index_tansu_storage(&db)?;
        Ok(broker)
    }
}

/// Adds the header index tansu's SQLite storage lacks, as `stack.sh` does for the stack's
/// broker (`deploy/local/tansu-index.py` says why), so a private broker performs like it.
fn index_tansu_storage(db: &std::path::Path) -> anyhow::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/local/tansu-index.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(db)
        .status()
        .context("failed to run python3 (needed to index the broker's storage)")?;
    anyhow::ensure!(status.success(), "{script} failed ({status})");
    Ok(())
}

/// Kafka settings for `prefix` on `bootstrap`, with the run's partition count.
pub fn kafka_settings(bootstrap: &str, prefix: &str) -> KafkaSettings {
    KafkaSettings {
        bootstrap: bootstrap.to_string(),
        topic_prefix: prefix.to_string(),
        partitions: PARTITIONS,
        replication: 1,
    }
}

/// The broker of a scenario; a private one is stopped and its storage removed when dropped.
pub struct Broker {
    pub bootstrap: String,
    child: Option<std::process::Child>,
    dir: Option<PathBuf>,
}

impl Broker {
    /// Stops a private broker and removes its storage (the shared one is left alone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Infra {
    /// A service token with `scopes`, valid for a day.
    pub fn token(&self, subject: &str, scopes: &[&str]) -> anyhow::Result<String> {
        JwtIssuer::new(&AuthSettings::hs256(&self.jwt_secret))?.issue(
            subject,
            TokenUse::Service,
            scopes,
            Duration::from_secs(86_400),
        )
    }

    /// A producer token for `subject` (audience `notify-ingest`, scope
    /// `notifications:produce`), valid for a day.
    pub fn producer_token(&self, subject: &str) -> anyhow::Result<String> {
        let mut auth = AuthSettings::hs256(&self.jwt_secret);
        auth.audience = "notify-ingest".into();
        JwtIssuer::new(&auth)?.issue(
            subject,
            TokenUse::Service,
            &["notifications:produce"],
            Duration::from_secs(86_400),
        )
    }

    /// The configuration every service of a pipeline shares.
    pub fn common_env(&self, bootstrap: &str, prefix: &str, cache_prefix: &str) -> Vec<(String, String)> {
        [
            ("APP_HOST", "127.0.0.1".to_string()),
            ("APP_JWT_HS256_SECRET", self.jwt_secret.clone()),
            // user-svc signs unsubscribe links with a key of its own (any fresh one will do).
            ("APP_UNSUBSCRIBE_SECRET", format!("unsubscribe-{}", self.jwt_secret)),
            ("APP_KAFKA_BOOTSTRAP", bootstrap.to_string()),
            ("APP_KAFKA_TOPIC_PREFIX", prefix.to_string()),
            ("APP_KAFKA_PARTITIONS", PARTITIONS.to_string()),
            ("APP_SCHEMA_REGISTRY_URL", self.registry.clone()),
            ("APP_REDIS_URL", self.redis.clone()),
            ("APP_CACHE_PREFIX", cache_prefix.to_string()),
            // The benchmark measures the pipeline, not the API's per-caller limits.
            ("APP_RATE_LIMIT_ENABLED", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Starts an `APP_*` service on a free port (log `<logs>/<log_name>.log`); does not wait.
    pub fn spawn_app(&self, name: &'static str, log_name: &str, env: &[(String, String)]) -> anyhow::Result<Service> {
        let port = free_port()?;
        let mut env = env.to_vec();
        env.push(("APP_PORT".into(), port.to_string()));
        Service::spawn(&self.bins, &self.logs, name, log_name, port, &env, false)
    }

    /// Drops the run's databases and deletes its topics (best effort).
    pub async fn cleanup(&self) {
        let dbs: Vec<String> = self
            .dbs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        // Concurrently: each drop waits for a checkpoint.
        futures::future::join_all(dbs.iter().map(|db| async move {
            if let Ok(mut conn) = PgConnection::connect(&self.admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                conn.close().await.ok();
            }
        }))
        .await;
        let prefixes = self.prefixes.lock().unwrap_or_else(PoisonError::into_inner).len();
        if prefixes > 0 {
            // Not deleted: tansu 0.6 can panic on a fetch racing a topic deletion, which
            // takes the whole shared broker down.
            println!(
                "[bench] left {prefixes} topic prefix(es) `bench{}*` on the shared broker",
                self.run_id
            );
        }
    }
}

/// Drops the `bench_*` databases interrupted runs left (only while no benchmark runs).
/// Topics are left alone: deleting topics on tansu 0.6 while a client fetches from them can
/// crash its storage, and the broker with it.
pub async fn cleanup_leftovers() -> anyhow::Result<()> {
    let admin_url = env_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let mut conn = PgConnection::connect(&admin_url)
        .await
        .context("failed to connect to PostgreSQL")?;
    let dbs: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")
        .fetch_all(&mut conn)
        .await
        .context("failed to list databases")?;
    for db in &dbs {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("failed to drop {db}"))?;
    }
    println!("[cleanup] dropped {} databases", dbs.len());
    Ok(())
}

/// Counters of the SMTP sink (`GET /stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStats {
    pub received: u64,
    pub unique_message_ids: u64,
    pub deferred: u64,
}

/// An SMTP sink process.
pub struct Sink {
    pub service: Service,
    pub smtp_port: u16,
    http: reqwest::Client,
}

impl Sink {
    /// Starts `smtp-sink` on free ports, deferring `fail_rate` of first attempts.
    pub async fn start(infra: &Infra, log_name: &str, fail_rate: f64) -> anyhow::Result<Self> {
        let smtp_port = free_port()?;
        let http_port = free_port()?;
        let env = vec![
            ("SMTP_SINK_ADDR".to_string(), format!("127.0.0.1:{smtp_port}")),
            ("SMTP_SINK_HTTP_ADDR".to_string(), format!("127.0.0.1:{http_port}")),
            ("SMTP_SINK_FAIL_RATE".to_string(), fail_rate.to_string()),
        ];
        // Its stdout is one JSON line per message: not worth the disk at these rates.
        let mut service = Service::spawn(&infra.bins, &infra.logs, "smtp-sink", log_name, http_port, &env, true)?;
        service.wait_healthy("/health", Duration::from_secs(30)).await?;
        Ok(Self {
            service,
            smtp_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .context("failed to build an HTTP client")?,
        })
    }

    pub async fn stats(&self) -> anyhow::Result<SinkStats> {
        self.http
            .get(format!("{}/stats", self.service.url()))
            .send()
            .await
            .context("failed to read the sink's stats")?
            .json()
            .await
            .context("the sink's stats are not JSON")
    }
}

/// The whole pipeline of one scenario, as real processes: user-svc, template-svc, gateway,
/// outbox-relay, status-projector, and an email worker delivering to an SMTP sink.
pub struct Pipeline {
    pub broker: Broker,
    pub db: Db,
    pub user_svc: Service,
    pub template_svc: Service,
    pub gateway: Service,
    /// Absent in a gateway-only pipeline.
    pub relay: Option<Service>,
    pub projector: Option<Service>,
    pub worker: Option<Service>,
    pub sink: Option<Sink>,
    env: Vec<(String, String)>,
    tag: String,
    /// `notifications:send` and `notifications:read`.
    pub send_token: String,
    admin_token: String,
    pub http: reqwest::Client,
}

impl Pipeline {
    /// Starts everything but the worker and the sink ([`Pipeline::deliver_to_new_sink`]);
    /// with `full == false` only user-svc, template-svc and the gateway (which checks
    /// recipients and templates against them), on no broker.
    pub async fn start(infra: &Infra, tag: &str, full: bool) -> anyhow::Result<Self> {
        let broker = if full {
            infra.broker(tag).await?
        } else {
            Broker {
                bootstrap: infra.kafka.clone(),
                child: None,
                dir: None,
            }
        };
        let db = infra.notify_db(tag).await?;
        let prefix = if full {
            infra.topic_prefix(&broker, tag).await?
        } else {
            format!("bench{}{tag}.", infra.run_id)
        };
        let cache_prefix = format!("bench{}{tag}:", infra.run_id);
        let env = infra.common_env(&broker.bootstrap, &prefix, &cache_prefix);
        let with_db = |url: &str| {
            let mut e = env.clone();
            e.push(("APP_DATABASE_URL".into(), url.to_string()));
            e
        };
        let users_db = infra.db_name(&format!("{tag}_users"));
        let templates_db = infra.db_name(&format!("{tag}_templates"));
        infra.remember_db(&users_db);
        infra.remember_db(&templates_db);
        let mut user_svc = infra.spawn_app(
            "user-svc",
            &format!("{tag}-user-svc"),
            &with_db(&infra.db_url(&users_db)),
        )?;
        let mut template_svc = infra.spawn_app(
            "template-svc",
            &format!("{tag}-template-svc"),
            &with_db(&infra.db_url(&templates_db)),
        )?;
        let mut gateway_env = with_db(&db.url);
        gateway_env.push(("APP_USER_SVC_URL".into(), user_svc.url()));
        gateway_env.push(("APP_TEMPLATE_SVC_URL".into(), template_svc.url()));
        let mut gateway = infra.spawn_app("gateway", &format!("{tag}-gateway"), &gateway_env)?;
        let (mut relay, mut projector) = if full {
            (
                Some(infra.spawn_app("outbox-relay", &format!("{tag}-outbox-relay"), &with_db(&db.url))?),
                Some(infra.spawn_app(
                    "status-projector",
                    &format!("{tag}-status-projector"),
                    &with_db(&db.url),
                )?),
            )
        } else {
            (None, None)
        };
        let timeout = Duration::from_secs(60);
        for s in [
            Some(&mut user_svc),
            Some(&mut template_svc),
            Some(&mut gateway),
            relay.as_mut(),
            projector.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            s.wait_healthy("/health", timeout).await?;
        }
        let send_token = infra.token("bench", &[SCOPE_SEND, SCOPE_READ])?;
        let admin_token = infra.token(
            "bench-admin",
            &["users:read", "users:write", "templates:read", "templates:write"],
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("failed to build an HTTP client")?;
        Ok(Self {
            broker,
            db,
            user_svc,
            template_svc,
            gateway,
            relay,
            projector,
            worker: None,
            sink: None,
            env,
            tag: tag.to_string(),
            send_token,
            admin_token,
            http,
        })
    }

    /// Stops the current worker and sink (if any) and starts a fresh sink deferring
    /// `fail_rate` of first attempts, and an email worker delivering to it. The worker's
    /// consumer group is the same, so it carries on where the previous one stopped.
    pub async fn deliver_to_new_sink(&mut self, infra: &Infra, fail_rate: f64, label: &str) -> anyhow::Result<()> {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        if let Some(mut s) = self.sink.take() {
            s.service.stop();
        }
        let sink = Sink::start(infra, &format!("{}-smtp-sink-{label}", self.tag), fail_rate).await?;
        let mut env = self.env.clone();
        env.extend(
            [
                ("APP_USER_SVC_URL", self.user_svc.url()),
                ("APP_TEMPLATE_SVC_URL", self.template_svc.url()),
                ("APP_RETRY_TIER1_DELAY_MS", RETRY_DELAYS_MS[0].to_string()),
                ("APP_RETRY_TIER1_ATTEMPTS", "1".to_string()),
                ("APP_RETRY_TIER2_DELAY_MS", RETRY_DELAYS_MS[1].to_string()),
                ("APP_RETRY_TIER2_ATTEMPTS", "1".to_string()),
                ("APP_LEDGER_TTL_SECS", "3600".to_string()),
                ("APP_SMTP_HOST", "127.0.0.1".to_string()),
                ("APP_SMTP_PORT", sink.smtp_port.to_string()),
                ("APP_SMTP_FROM", "Notifications <no-reply@notify.test>".to_string()),
                ("APP_SMTP_MESSAGE_ID_DOMAIN", "notify.test".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        let mut worker = infra.spawn_app("email-worker", &format!("{}-email-worker", self.tag), &env)?;
        worker.wait_healthy("/health", Duration::from_secs(60)).await?;
        self.worker = Some(worker);
        self.sink = Some(sink);
        Ok(())
    }

    /// The topic prefix of this pipeline.
    pub fn topic_prefix(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == "APP_KAFKA_TOPIC_PREFIX")
            .map_or("", |(_, v)| v.as_str())
    }

    /// Starts an ingest service on this pipeline's database, topics, user-svc and
    /// template-svc, handling `concurrency` requests at once; does not wait.
    pub fn spawn_ingest(&self, infra: &Infra, concurrency: usize) -> anyhow::Result<Service> {
        let mut env = self.env.clone();
        env.extend(
            [
                ("APP_DATABASE_URL", self.db.url.clone()),
                ("APP_USER_SVC_URL", self.user_svc.url()),
                ("APP_TEMPLATE_SVC_URL", self.template_svc.url()),
                ("APP_INGEST_CONCURRENCY", concurrency.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        infra.spawn_app("ingest", &format!("{}-ingest", self.tag), &env)
    }

    /// Every running service process: name and pid.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut all: Vec<&Service> = vec![&self.gateway];
        all.extend(self.relay.as_ref());
        all.extend(self.projector.as_ref());
        all.extend([&self.user_svc, &self.template_svc]);
        all.extend(self.worker.as_ref());
        all.extend(self.sink.as_ref().map(|s| &s.service));
        all.into_iter().filter_map(|s| s.pid().map(|p| (s.name, p))).collect()
    }

    /// The sink's counters.
    pub async fn sink_stats(&self) -> anyhow::Result<SinkStats> {
        match &self.sink {
            Some(s) => s.stats().await,
            None => bail!("no sink is running"),
        }
    }

    async fn admin_post(&self, url: String, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url} failed"))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {url} answered {status}: {v}");
        }
        Ok(v)
    }

    /// Creates `n` recipients (email on) and the `welcome_email` template.
    pub async fn seed(&self, n: usize) -> anyhow::Result<Vec<Uuid>> {
        self.admin_post(
            format!("{}/api/v1/templates/", self.template_svc.url()),
            json!({
                "code": "welcome_email",
                "channel": "email",
                "default_language": "en",
                "name": "Welcome",
                "content": {"en": {
                    "subject": "Welcome, {{ name }}",
                    "text_body": "Hello {{ name }}, start at {{ link }}",
                    "html_body": "<p>Hello <b>{{ name }}</b>, <a href=\"{{ link }}\">start here</a></p>"
                }}
            }),
        )
        .await?;
        let url = format!("{}/api/v1/users/", self.user_svc.url());
        let mut ids = Vec::with_capacity(n);
        // A few at a time: user creation hashes a password (Argon2id), on purpose slow.
        for chunk in (0..n).collect::<Vec<_>>().chunks(4) {
            let created = futures::future::join_all(chunk.iter().map(|i| {
                self.admin_post(
                    url.clone(),
                    json!({
                        "name": format!("Bench User {i}"),
                        "email": format!("bench-{i}@example.com"),
                        "preferences": {"email": true, "push": true},
                        "password": "correct horse battery staple"
                    }),
                )
            }))
            .await;
            for v in created {
                let v = v?;
                let id = v["data"]["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .with_context(|| format!("user-svc answered no id: {v}"))?;
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// SIGTERM to every process (the worker first, so it finishes its record).
    pub fn stop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        let mut all: Vec<&mut Service> = vec![&mut self.gateway, &mut self.user_svc, &mut self.template_svc];
        all.extend(self.relay.as_mut());
        all.extend(self.projector.as_mut());
        all.extend(self.sink.as_mut().map(|s| &mut s.service));
        // All at once, then wait for each.
        for s in &all {
            s.terminate();
        }
        for s in all {
            s.stop();
        }
        self.sink = None;
        self.broker.stop();
    }
}

/// The JSON body of one notification request, as an upstream service sends it.
pub fn notification_body(user: Uuid, request_id: &str) -> serde_json::Value {
    json!({
        "notification_type": "email",
        "user_id": user,
        "template_code": "welcome_email",
        "variables": {"name": "Ada Lovelace", "link": "https://example.com/start"},
        "request_id": request_id,
        "priority": 5,
        "metadata": {"campaign": "bench"}
    })
}
