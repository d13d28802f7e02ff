//! Starts the real binaries of the pipeline, each on a free port, against a database, a topic
//! prefix and a cache prefix of the test's own, and talks to them over HTTP like a client.

use std::{collections::HashMap, time::Duration};

use notify_kit::auth::{SCOPE_READ, SCOPE_SEND, SCOPE_STATUS_WRITE, SCOPE_SUPPRESSIONS_READ, SCOPE_SUPPRESSIONS_WRITE};
use serde_json::{json, Value};
use test_support::{
    admin_database_url, kafka_bootstrap,
    process::{free_port, Proc},
    redis_url, registry_url,
    smtp::TestSmtpServer,
    topic_prefix, unique, TestDb, JWT_SECRET,
};
use uuid::Uuid;

/// The Firebase project of the push tests; FCM's send path for it is [`FCM_SEND`].
pub const FCM_PROJECT: &str = "notify-e2e";
/// `POST` path of FCM HTTP v1 for [`FCM_PROJECT`].
pub const FCM_SEND: &str = "/v1/projects/notify-e2e/messages:send";
/// The providers' test-only RSA key, as the service account's private key.
const FCM_TEST_KEY: &str = include_str!("../../../libs/providers/tests/keys/test-only-pkcs8.pem");

/// One service process that can be killed and started again with the same configuration.
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    env: Vec<(&'static str, String)>,
    proc: Option<Proc>,
}

impl Service {
    pub fn new(name: &'static str, mut env: Vec<(&'static str, String)>) -> Self {
        let port = free_port();
        env.push(("APP_PORT", port.to_string()));
        Self {
            name,
            port,
            env,
            proc: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        self.proc = Some(Proc::spawn(self.name, &self.env));
    }

    pub async fn start_healthy(&mut self) {
        self.start();
        self.wait_healthy().await;
    }

    pub async fn wait_healthy(&self) {
        let url = format!("{}/health", self.url());
        let name = self.name;
        test_support::wait_for(&format!("{name} to be healthy"), Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.child.id())
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the service runs").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// SIGTERM; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        self.proc.take().map(|mut p| p.terminate().success()).unwrap_or(false)
    }
}

/// Retry tiers for tests: seconds, not minutes.
#[derive(Clone, Copy)]
pub struct Tiers {
    pub first_delay_ms: u64,
    pub first_attempts: u32,
    pub second_delay_ms: u64,
    pub second_attempts: u32,
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            first_delay_ms: 1000,
            first_attempts: 1,
            second_delay_ms: 2000,
            second_attempts: 1,
        }
    }
}

/// Where a stack's servers are: the shared ones by default (`TEST_*`), or a test's own
/// (private PostgreSQL, Redis, broker and registry that it may crash).
#[derive(Clone)]
pub struct Servers {
    /// An admin connection URL; the stack creates its databases on that server.
    pub admin_database_url: String,
    pub redis_url: String,
    pub kafka_bootstrap: String,
    pub registry_url: String,
}

impl Default for Servers {
    fn default() -> Self {
        Self {
            admin_database_url: admin_database_url(),
            redis_url: redis_url(),
            kafka_bootstrap: kafka_bootstrap(),
            registry_url: registry_url(),
        }
    }
}

/// The pipeline of one test.
pub struct Stack {
    pub db: TestDb,
    pub prefix: String,
    pub smtp: TestSmtpServer,
    pub gateway: Service,
    pub user_svc: Service,
    pub template_svc: Service,
    pub relay: Service,
    pub projector: Service,
    pub workers: Vec<Service>,
    pub http: reqwest::Client,
    pub token: String,
    pub servers: Servers,
    common: Vec<(&'static str, String)>,
    tiers: Tiers,
}

/// user-svc's unsubscribe-link key in the tests.
const UNSUBSCRIBE_SECRET: &str = "e2e-unsubscribe-secret-e2e-unsubscribe-secret";

fn common_env(servers: &Servers, prefix: &str, cache_prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP_JWT_HS256_SECRET", JWT_SECRET.to_string()),
        ("APP_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET.to_string()),
        ("APP_KAFKA_BOOTSTRAP", servers.kafka_bootstrap.clone()),
        ("APP_KAFKA_TOPIC_PREFIX", prefix.to_string()),
        ("APP_KAFKA_PARTITIONS", "3".into()),
        ("APP_SCHEMA_REGISTRY_URL", servers.registry_url.clone()),
        ("APP_REDIS_URL", servers.redis_url.clone()),
        ("APP_CACHE_PREFIX", cache_prefix.to_string()),
        ("APP_HTTP_WORKERS", "1".into()),
        // The gateway's API limits have their own tests (gateway/tests/api/rate_limits.rs);
        // these tests send backlogs to one user on purpose.
        ("APP_RATE_LIMIT_ENABLED", "false".into()),
        ("RUST_LOG", std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into())),
        ("APP_KAFKA_DEBUG", std::env::var("E2E_KAFKA_DEBUG").unwrap_or_default()),
    ]
}

fn with(mut base: Vec<(&'static str, String)>, more: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    base.extend(more.iter().cloned());
    base
}

impl Stack {
    /// Starts everything but the workers (see [`Stack::add_email_worker`]).
    pub async fn start(tiers: Tiers) -> Self {
        Self::start_with_env(tiers, &[]).await
    }

    /// [`Stack::start`] with more environment for every service (workers added later too).
    pub async fn start_with_env(tiers: Tiers, extra: &[(&'static str, String)]) -> Self {
        Self::start_on(Servers::default(), tiers, extra).await
    }

    /// [`Stack::start_with_env`] on `servers`.
    pub async fn start_on(servers: Servers, tiers: Tiers, extra: &[(&'static str, String)]) -> Self {
        test_support::ensure_schemas_at(&servers.registry_url).await;
        let db = TestDb::on(&servers.admin_database_url, &notify_store::MIGRATOR).await;
        let prefix = topic_prefix();
        let cache_prefix = format!("{}:", unique("c"));
        let common = with(common_env(&servers, &prefix, &cache_prefix), extra);
        let base_db = db.url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        let smtp = TestSmtpServer::start();

        let mut user_svc = Service::new(
            "user-svc",
            with(
                common.clone(),
                &[("APP_DATABASE_URL", format!("{base_db}/{}_users", db.name))],
            ),
        );
        // Unsubscribe links point at this user-svc, so a test can follow them.
        let public_base_url = user_svc.url();
        user_svc.env.push(("APP_PUBLIC_BASE_URL", public_base_url));
        let mut template_svc = Service::new(
            "template-svc",
            with(
                common.clone(),
                &[("APP_DATABASE_URL", format!("{base_db}/{}_templates", db.name))],
            ),
        );
        let mut gateway = Service::new(
            "gateway",
            with(
                common.clone(),
                &[
                    ("APP_DATABASE_URL", db.url.clone()),
                    ("APP_USER_SVC_URL", user_svc.url()),
                    ("APP_TEMPLATE_SVC_URL", template_svc.url()),
                ],
            ),
        );
        let mut relay = Service::new(
            "outbox-relay",
            with(
                common.clone(),
                &[
                    ("APP_DATABASE_URL", db.url.clone()),
                    ("APP_RELAY_POLL_INTERVAL_MS", "200".into()),
                    ("APP_RELAY_REBALANCE_INTERVAL_MS", "500".into()),
                ],
            ),
        );
        let mut projector = Service::new(
            "status-projector",
            with(
                common.clone(),
                &[
                    ("APP_DATABASE_URL", db.url.clone()),
                    // Static membership, as the workers that tests SIGKILL: see
                    // `add_email_worker_with`.
                    ("APP_CONSUMER_INSTANCE_ID", "projector-0".into()),
                ],
            ),
        );
        user_svc.start();
        template_svc.start();
        gateway.start();
        relay.start();
        projector.start();
        for s in [&user_svc, &template_svc, &gateway, &relay, &projector] {
            s.wait_healthy().await;
        }
        let token = test_support::service_token(
            "e2e",
            &[
                SCOPE_SEND,
                SCOPE_READ,
                SCOPE_STATUS_WRITE,
                "users:read",
                "users:write",
                "templates:read",
                "templates:write",
                SCOPE_SUPPRESSIONS_READ,
                SCOPE_SUPPRESSIONS_WRITE,
            ],
        );
        Self {
            db,
            prefix,
            smtp,
            gateway,
            user_svc,
            template_svc,
            relay,
            projector,
            workers: Vec::new(),
            http: reqwest::Client::new(),
            token,
            servers,
            common,
            tiers,
        }
    }

    fn worker_env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let t = self.tiers;
        let mut env = with(
            self.common.clone(),
            &[
                ("APP_USER_SVC_URL", self.user_svc.url()),
                ("APP_TEMPLATE_SVC_URL", self.template_svc.url()),
                ("APP_RETRY_TIER1_DELAY_MS", t.first_delay_ms.to_string()),
                ("APP_RETRY_TIER1_ATTEMPTS", t.first_attempts.to_string()),
                ("APP_RETRY_TIER2_DELAY_MS", t.second_delay_ms.to_string()),
                ("APP_RETRY_TIER2_ATTEMPTS", t.second_attempts.to_string()),
                ("APP_DIRECTORY_CACHE_TTL_SECS", "1".into()),
            ],
        );
        env.extend(extra.iter().cloned());
        env
    }

    /// Adds (and starts) an email worker delivering to the test's SMTP server.
    pub async fn add_email_worker(&mut self) -> usize {
        self.add_email_worker_with(None).await
    }

    /// Adds an email worker with static group membership (`APP_CONSUMER_INSTANCE_ID`): a
    /// restarted instance takes its old place at once. The local broker (tansu) does not
    /// reliably expire a member that died without leaving, so the tests that SIGKILL a worker
    /// use it, as a deployment with stable instance names (a StatefulSet) would.
    pub async fn add_email_worker_with(&mut self, instance_id: Option<&str>) -> usize {
        let extra: Vec<(&'static str, String)> = instance_id
            .map(|id| ("APP_CONSUMER_INSTANCE_ID", id.to_string()))
            .into_iter()
            .collect();
        self.add_email_worker_env(&extra).await
    }

    /// Adds an email worker with more (or overriding) environment.
    pub async fn add_email_worker_env(&mut self, extra: &[(&'static str, String)]) -> usize {
        let mut env = self.worker_env(&[
            ("APP_SMTP_HOST", "127.0.0.1".into()),
            ("APP_SMTP_PORT", self.smtp.port().to_string()),
            ("APP_SMTP_FROM", "Notifications <no-reply@notify.test>".into()),
            ("APP_SMTP_MESSAGE_ID_DOMAIN", "notify.test".into()),
        ]);
        env.extend(extra.iter().cloned());
        let mut w = Service::new("email-worker", env);
        w.start_healthy().await;
        self.workers.push(w);
        self.workers.len() - 1
    }

    /// Adds (and starts) a push worker sending through FCM HTTP v1 to `fcm` (a fake that
    /// also plays Google's token endpoint, mounted here): project [`FCM_PROJECT`], the
    /// providers' test-only service account.
    pub async fn add_push_worker(&mut self, fcm: &wiremock::MockServer) -> usize {
        self.add_push_worker_with(fcm, &[]).await
    }

    /// [`Stack::add_push_worker`] with more environment (`APP_PUSH_PROVIDERS` and the
    /// settings of more providers).
    pub async fn add_push_worker_with(
        &mut self,
        fcm: &wiremock::MockServer,
        extra: &[(&'static str, String)],
    ) -> usize {
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/token"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "ya29.e2e", "expires_in": 3599, "token_type": "Bearer"})),
            )
            .mount(fcm)
            .await;
        let service_account = json!({
            "type": "service_account",
            "project_id": FCM_PROJECT,
            "private_key_id": "e2e",
            "private_key": FCM_TEST_KEY,
            "client_email": "push@notify-e2e.iam.gserviceaccount.com",
            "token_uri": format!("{}/token", fcm.uri()),
        });
        let env = self.worker_env(&[
            ("APP_PUSH_PROVIDERS", "fcm".into()),
            ("APP_FCM_BASE_URL", fcm.uri()),
            ("APP_FCM_PROJECT_ID", FCM_PROJECT.into()),
            ("APP_FCM_SERVICE_ACCOUNT_JSON", service_account.to_string()),
        ]);
        let env = with(env, extra);
        let mut w = Service::new("push-worker", env);
        w.start_healthy().await;
        self.workers.push(w);
        self.workers.len() - 1
    }

    /// `worker_consumption_paused` of worker `i`'s main consumer group, from its `/metrics`
    /// (`None` while it does not answer).
    pub async fn worker_paused(&self, i: usize) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.workers[i].url()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .filter(|l| l.starts_with("worker_consumption_paused{") && !l.contains(".priority"))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// How many deliveries worker `i` has sent (`worker_deliveries_total` with
    /// `outcome="sent"`, every provider), from its `/metrics` (`None` while it does not answer).
    pub async fn worker_sent(&self, i: usize) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.workers[i].url()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(
            text.lines()
                .filter(|l| l.starts_with("worker_deliveries_total{") && l.contains(r#"outcome="sent""#))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// Waits until worker `i`'s main consumer group is paused (`true`) or running (`false`).
    pub async fn wait_worker_paused(&self, i: usize, paused: bool, timeout: Duration) {
        let want = if paused { 1.0 } else { 0.0 };
        test_support::wait_for(&format!("worker {i} paused = {paused}"), timeout, || async {
            (self.worker_paused(i).await == Some(want)).then_some(())
        })
        .await;
    }

    pub async fn call(&self, method: reqwest::Method, url: String, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a user; returns its id.
    pub async fn create_user(&self, email: &str, push_token: Option<&str>, preferences: Value) -> Uuid {
        let mut body = json!({"name": "Ada Lovelace", "email": email, "preferences": preferences, "password": "correct horse battery staple"});
        if let Some(t) = push_token {
            body["push_token"] = json!(t);
        }
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                format!("{}/api/v1/users/", self.user_svc.url()),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["data"]["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn create_template(&self, body: Value) {
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                format!("{}/api/v1/templates/", self.template_svc.url()),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }

    /// The standard email template used by most tests.
    pub async fn welcome_template(&self) {
        self.create_template(json!({
            "code": "welcome_email",
            "channel": "email",
            "default_language": "en",
            "name": "Welcome",
            "content": {
                "en": {"subject": "Welcome, {{ name }}", "text_body": "Hello {{ name }}, start at {{ link }}", "html_body": "<p>Hello <b>{{ name }}</b></p>"},
                "fr": {"subject": "Bienvenue, {{ name }}", "text_body": "Bonjour {{ name }}", "html_body": "<p>Bonjour {{ name }}</p>"}
            }
        }))
        .await;
    }

    /// Sends a notification through the gateway; returns its id.
    pub async fn send(
        &self,
        channel: &str,
        user: Uuid,
        template: &str,
        variables: Value,
        request_id: &str,
        priority: i32,
    ) -> Uuid {
        let body = json!({
            "notification_type": channel,
            "user_id": user,
            "template_code": template,
            "variables": variables,
            "request_id": request_id,
            "priority": priority,
            "metadata": {}
        });
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                format!("{}/api/v1/notifications/", self.gateway.url()),
                Some(&body),
            )
            .await;
        assert_eq!(status, 202, "{v}");
        v["data"]["notification_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn notification(&self, id: Uuid) -> Value {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                format!("{}/api/v1/notifications/{id}", self.gateway.url()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["data"].clone()
    }

    /// Waits until the notification's status is `status`.
    pub async fn wait_status(&self, id: Uuid, status: &str, timeout: Duration) -> Value {
        test_support::wait_for(&format!("notification {id} to be {status}"), timeout, || async {
            let n = self.notification(id).await;
            (n["status"] == status).then_some(n)
        })
        .await
    }

    /// Waits until the relay has published every outbox row.
    pub async fn wait_outbox_published(&self, timeout: Duration) {
        test_support::wait_for("the relay to publish every outbox row", timeout, || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.db.pool)
                .await
                .unwrap();
            (n == 0).then_some(())
        })
        .await;
    }

    /// Every record on `topics` (physical names built from logical ones).
    pub async fn records(&self, logical: &[&str], expected: usize) -> Vec<test_support::kafka::Record> {
        let topics: Vec<String> = logical.iter().map(|t| format!("{}{t}", self.prefix)).collect();
        let bootstrap = self.servers.kafka_bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            test_support::kafka::read_all(
                &bootstrap,
                &topics,
                expected,
                Duration::from_secs(30),
                Duration::from_millis(500),
            )
        })
        .await
        .unwrap()
    }
}

/// A notification's history (as `GET /api/v1/notifications/{id}` returns it): status and
/// attempt of each entry, oldest first.
pub fn history(n: &Value) -> Vec<(String, i64)> {
    n["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["status"].as_str().unwrap().to_string(),
                h["attempt"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The statuses of a notification's history, oldest first.
pub fn statuses(n: &Value) -> Vec<String> {
    history(n).into_iter().map(|(status, _)| status).collect()
}

/// Counts of each value.
pub fn counts<T: std::hash::Hash + Eq + Clone>(items: &[T]) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i.clone()).or_default() += 1;
    }
    m
}

/// What one run of a command-line tool printed, and how it exited.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Stack {
    /// Runs the real `notifyctl` binary with the services' environment (broker, topic prefix,
    /// secrets; not their `RUST_LOG`: the tool's own default shows its progress) and waits for
    /// it to exit.
    pub async fn notifyctl(&self, args: &[&str]) -> CliRun {
        let env: Vec<(&'static str, String)> = self.common.iter().filter(|(k, _)| *k != "RUST_LOG").cloned().collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(test_support::process::binary("notifyctl"))
                .args(&args)
                .envs(env)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("notifyctl runs");
            let run = CliRun {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            eprintln!(
                "$ notifyctl {} → exit {:?}\n{}",
                args.join(" "),
                run.code,
                run.stderr.trim_end()
            );
            run
        })
        .await
        .unwrap()
    }
}

impl Stack {
    /// An ingest service (not started) reading the test's `notifications.requests`, with the
    /// stack's database, user-svc and template-svc, and more environment.
    pub fn ingest(&self, extra: &[(&'static str, String)]) -> Service {
        let mut env = with(
            self.common.clone(),
            &[
                ("APP_DATABASE_URL", self.db.url.clone()),
                ("APP_USER_SVC_URL", self.user_svc.url()),
                ("APP_TEMPLATE_SVC_URL", self.template_svc.url()),
                ("APP_DIRECTORY_CACHE_TTL_SECS", "1".into()),
            ],
        );
        env.extend(extra.iter().cloned());
        Service::new("ingest", env)
    }
}
