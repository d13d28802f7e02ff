//! API tests: the real gateway on a random port against a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use gateway::{settings::Settings, startup::Application};
use notify_kit::auth::{AuthSettings, JwtIssuer, TokenUse, SCOPE_READ, SCOPE_SEND};
use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;
use test_support::{service_token, user_token, TestDb};

struct TestApp {
    base: String,
    db: TestDb,
    http: reqwest::Client,
}

async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    notify_kit::telemetry::init_test_telemetry();
    let db = TestDb::new().await;
    let mut settings = Settings {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: notify_kit::settings::SecretUrl::new(db.url.clone()),
        database_max_connections: 8,
        run_migrations: true,
        idempotency_ttl: Duration::from_secs(3600),
        max_body_bytes: 16 * 1024,
        http_workers: 2,
        auth: test_support::auth_settings(),
        lookup: None,
    };
    configure(&mut settings);
    let app = Application::build(settings).await.expect("gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        db,
        http: reqwest::Client::new(),
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

fn sender() -> String {
    service_token("billing", &[SCOPE_SEND])
}

fn body(request_id: &str) -> Value {
    json!({
        "notification_type": "email",
        "user_id": "6c1b2a3d-0000-4000-8000-000000000001",
        "template_code": "welcome_email",
        "variables": {"name": "John Doe", "link": "https://example.com"},
        "request_id": request_id,
        "priority": 1,
        "metadata": {}
    })
}

impl TestApp {
    async fn post_raw(
        &self,
        token: Option<&str>,
        body: reqwest::Body,
        content_type: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/notifications/", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, headers, json)
    }

    async fn post(&self, token: Option<&str>, body: &Value) -> (StatusCode, HeaderMap, Value) {
        self.post_raw(token, body.to_string().into(), "application/json").await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query(&format!("SELECT count(*) AS n FROM {table}"))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .get("n")
    }
}

fn assert_error_envelope(v: &Value, code: &str) {
    assert_eq!(v["success"], false, "{v}");
    assert!(v["data"].is_null(), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v.get("meta").is_some(), "{v}");
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn a_request_without_a_token_is_unauthorized() {
    let app = spawn_app().await;
    let (status, headers, v) = app.post(None, &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_error_envelope(&v, "unauthorized");
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn an_expired_token_is_unauthorized() {
    let app = spawn_app().await;
    let issuer = test_support::issuer();
    let mut claims = issuer.claims("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(60));
    claims.exp = chrono_now() - 600;
    let token = issuer.sign(&claims).unwrap();
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "token has expired");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_unauthorized() {
    let app = spawn_app().await;
    let issuer = test_support::issuer();
    let mut claims = issuer.claims("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(3600));
    claims.nbf = Some(chrono_now() + 600);
    let (status, _, v) = app.post(Some(&issuer.sign(&claims).unwrap()), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "token is not valid yet (nbf)");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_token_signed_with_the_wrong_key_is_unauthorized() {
    let app = spawn_app().await;
    let other = JwtIssuer::new(&AuthSettings::hs256("not-the-gateway-secret-not-the-gateway")).unwrap();
    let token = other
        .issue("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(60))
        .unwrap();
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "token signature is invalid");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_unauthorized() {
    let app = spawn_app().await;
    let claims = test_support::issuer().claims("billing", TokenUse::Service, &[SCOPE_SEND], Duration::from_secs(60));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_envelope(&v, "unauthorized");
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn an_end_user_token_cannot_send() {
    let app = spawn_app().await;
    let token = user_token("6c1b2a3d-0000-4000-8000-000000000001");
    let (status, _, v) = app.post(Some(&token), &body("r1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error_envelope(&v, "forbidden");
    assert!(v["message"].as_str().unwrap().contains("notifications:send"));
}

// ---------------------------------------------------------------- accepting

#[tokio::test]
async fn a_valid_request_is_accepted_with_its_row_outbox_and_key_in_one_go() {
    let app = spawn_app().await;
    let (status, headers, v) = app
        .http
        .post(format!("{}/api/v1/notifications/", app.base))
        .bearer_auth(sender())
        .header("x-correlation-id", "corr-abc-123")
        .json(&body("r1"))
        .send()
        .await
        .map(|r| (r.status(), r.headers().clone(), r))
        .map(|(s, h, r)| (s, h, futures::executor::block_on(r.json::<Value>()).unwrap()))
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-correlation-id"], "corr-abc-123");
    assert_eq!(v["success"], true);
    assert!(v["meta"].is_null());
    assert_eq!(v["data"]["status"], "pending");
    assert_eq!(v["data"]["request_id"], "r1");
    let id: uuid::Uuid = v["data"]["notification_id"].as_str().unwrap().parse().unwrap();

    let row = sqlx::query("SELECT status, correlation_id, caller FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("status"), "pending");
    assert_eq!(row.get::<String, _>("correlation_id"), "corr-abc-123");
    assert_eq!(row.get::<String, _>("caller"), "billing");
    let outbox = sqlx::query("SELECT topic, message_key, headers, payload FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(outbox.get::<String, _>("topic"), "notifications.email");
    assert_eq!(
        outbox.get::<String, _>("message_key"),
        "6c1b2a3d-0000-4000-8000-000000000001"
    );
    let h: Value = outbox.get("headers");
    assert_eq!(h["x-correlation-id"], "corr-abc-123");
    assert_eq!(h["notification-id"], id.to_string());
    assert!(h["traceparent"].as_str().unwrap().starts_with("00-"));
    let p: Value = outbox.get("payload");
    assert_eq!(p["notification_id"], id.to_string());
    assert_eq!(p["caller"], "billing");
    assert_eq!(app.count("idempotency_keys").await, 1);
}

#[tokio::test]
async fn high_priority_notifications_go_to_the_priority_topic() {
    let app = spawn_app().await;
    let mut b = body("urgent-1");
    b["priority"] = json!(9);
    b["notification_type"] = json!("push");
    let (status, _, _) = app.post(Some(&sender()), &b).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let topic: String = sqlx::query("SELECT topic FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get("topic");
    assert_eq!(topic, "notifications.push.priority");
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn camel_case_and_unknown_fields_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let mut b = body("r1");
    let obj = b.as_object_mut().unwrap();
    let v = obj.remove("template_code").unwrap();
    obj.insert("templateCode".into(), v);
    obj.insert("colour".into(), json!("blue"));
    let (status, _, v) = app.post(Some(&sender()), &b).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_envelope(&v, "validation_failed");
    let details = v["error"]["details"].as_array().unwrap();
    let field = |f: &str| {
        details
            .iter()
            .find(|d| d["field"] == f)
            .unwrap_or_else(|| panic!("no {f} in {v}"))
    };
    assert!(field("templateCode")["reason"]
        .as_str()
        .unwrap()
        .contains("template_code"));
    assert!(field("colour")["reason"].as_str().unwrap().contains("unknown field"));
    assert_eq!(field("template_code")["reason"], "is required");
    assert_eq!(app.count("notifications").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn each_invalid_field_is_reported() {
    let app = spawn_app().await;
    let cases = [
        ("notification_type", json!("sms")),
        ("user_id", json!("42")),
        ("template_code", json!("Has Spaces")),
        ("variables", json!(["not", "an", "object"])),
        ("request_id", json!("")),
        ("priority", json!(0)),
        ("metadata", json!(7)),
    ];
    for (field, bad) in cases {
        let mut b = body("r1");
        b[field] = bad.clone();
        let (status, _, v) = app.post(Some(&sender()), &b).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={bad}");
        assert_eq!(v["error"]["details"][0]["field"], field, "{v}");
    }
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = spawn_app().await;
    let (status, _, v) = app
        .post_raw(Some(&sender()), "{\"notification_type\": ".into(), "application/json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_envelope(&v, "bad_request");
}

#[tokio::test]
async fn a_non_json_content_type_is_refused() {
    let app = spawn_app().await;
    let (status, _, v) = app
        .post_raw(Some(&sender()), body("r1").to_string().into(), "text/plain")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_envelope(&v, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let app = spawn_app().await;
    let mut b = body("r1");
    b["metadata"] = json!({"blob": "x".repeat(20 * 1024)});
    let (status, _, v) = app.post(Some(&sender()), &b).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_envelope(&v, "payload_too_large");
    assert_eq!(app.count("notifications").await, 0);
}

// ---------------------------------------------------------------- idempotency

#[tokio::test]
async fn a_repeated_request_replays_the_first_answer() {
    let app = spawn_app().await;
    let (s1, h1, first) = app.post(Some(&sender()), &body("same-key")).await;
    let (s2, h2, second) = app.post(Some(&sender()), &body("same-key")).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert_eq!(s2, StatusCode::ACCEPTED);
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(first["data"]["notification_id"], second["data"]["notification_id"]);
    assert_eq!(app.count("notifications").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn a_reused_request_id_with_another_body_is_a_conflict() {
    let app = spawn_app().await;
    app.post(Some(&sender()), &body("k1")).await;
    let mut other = body("k1");
    other["variables"]["name"] = json!("Jane");
    let (status, _, v) = app.post(Some(&sender()), &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_envelope(&v, "conflict");
    assert!(v["message"].as_str().unwrap().contains("k1"));
    assert_eq!(app.count("notifications").await, 1);
}

#[tokio::test]
async fn concurrent_duplicates_create_exactly_one_notification() {
    let app = spawn_app().await;
    let token = sender();
    let b = body("burst-1");
    let results = futures::future::join_all((0..24).map(|_| app.post(Some(&token), &b))).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(s, _, v)| {
            assert_eq!(*s, StatusCode::ACCEPTED, "{v}");
            v["data"]["notification_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every duplicate got the same notification id");
    assert_eq!(app.count("notifications").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn request_ids_are_scoped_to_the_caller() {
    let app = spawn_app().await;
    let other = service_token("marketing", &[SCOPE_SEND]);
    let (_, _, a) = app.post(Some(&sender()), &body("shared")).await;
    let (_, _, b) = app.post(Some(&other), &body("shared")).await;
    assert_ne!(a["data"]["notification_id"], b["data"]["notification_id"]);
    assert_eq!(app.count("notifications").await, 2);
}

#[tokio::test]
async fn an_expired_idempotency_key_no_longer_deduplicates() {
    let app = spawn_app_with(|s| s.idempotency_ttl = Duration::ZERO).await;
    let (_, _, a) = app.post(Some(&sender()), &body("short-lived")).await;
    let (_, h, b) = app.post(Some(&sender()), &body("short-lived")).await;
    assert!(h.get("idempotent-replayed").is_none());
    assert_ne!(a["data"]["notification_id"], b["data"]["notification_id"]);
    assert_eq!(app.count("notifications").await, 2);
    assert_eq!(app.count("idempotency_keys").await, 1);
}

// ---------------------------------------------------------------- reading

#[tokio::test]
async fn an_unknown_or_malformed_id_is_not_found() {
    let app = spawn_app().await;
    let token = service_token("billing", &[SCOPE_READ]);
    let (status, v) = app
        .get(&format!("/api/v1/notifications/{}", uuid::Uuid::new_v4()), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    let (status, v) = app.get("/api/v1/notifications/not-a-uuid", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
}

#[tokio::test]
async fn the_sender_reads_status_and_history_but_another_service_cannot() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post(Some(&sender()), &body("r1")).await;
    let id = accepted["data"]["notification_id"].as_str().unwrap();
    let path = format!("/api/v1/notifications/{id}");

    let (status, v) = app.get(&path, Some(&sender())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["success"], true);
    assert_eq!(v["data"]["status"], "pending");
    assert_eq!(v["data"]["history"][0]["status"], "pending");
    assert_eq!(v["data"]["notification_type"], "email");

    let stranger = service_token("marketing", &[SCOPE_SEND]);
    let (status, _) = app.get(&path, Some(&stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let recipient = user_token("6c1b2a3d-0000-4000-8000-000000000001");
    let (status, _) = app.get(&path, Some(&recipient)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------- health, docs, routing

#[tokio::test]
async fn health_reports_postgres_and_fails_readiness_without_it() {
    let app = spawn_app().await;
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["ready"], true);
    assert_eq!(v["data"]["dependencies"][0]["name"], "postgres");

    // Take the database away under the running gateway.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&test_support::admin_database_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", app.db.name))
        .execute(&mut admin)
        .await
        .unwrap();
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["data"]["ready"], false);
    assert_eq!(v["data"]["dependencies"][0]["healthy"], false);
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoints() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["paths"]["/api/v1/notifications/"]["post"].is_object(), "{v}");
    assert!(v["paths"]["/api/v1/notifications/{id}"]["get"].is_object());
    assert!(v["components"]["schemas"]["SendNotificationBody"]["properties"]["request_id"].is_object());
    assert!(v["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn unknown_routes_answer_in_the_envelope() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
}

// ---------------------------------------------------------------- delivery reports

async fn report(app: &TestApp, channel: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(format!("{}/api/v1/{channel}/status/", app.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn reporter() -> String {
    service_token("mail-provider", &[notify_kit::auth::SCOPE_STATUS_WRITE])
}

#[tokio::test]
async fn a_delivery_report_is_queued_for_the_status_projector() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post(Some(&sender()), &body("r1")).await;
    let id = accepted["data"]["notification_id"].as_str().unwrap();
    let (status, v) = report(
        &app,
        "email",
        &reporter(),
        &json!({"notification_id": id, "status": "delivered", "timestamp": "2025-11-12T10:00:00Z", "error": null}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["data"]["status"], "delivered");
    let row =
        sqlx::query("SELECT topic, message_key, event_type, payload FROM outbox WHERE topic = 'notifications.status'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>("message_key"), id);
    assert_eq!(
        row.get::<String, _>("event_type"),
        "io.notify.events.NotificationStatusChanged"
    );
    let p: Value = row.get("payload");
    assert_eq!(p["status"], "delivered");
    assert_eq!(p["source"], "provider-report");
    assert_eq!(p["occurred_at"], 1_762_941_600_000_i64);
}

#[tokio::test]
async fn delivery_reports_are_validated() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post(Some(&sender()), &body("r1")).await;
    let id = accepted["data"]["notification_id"].as_str().unwrap();

    let (status, _) = report(
        &app,
        "email",
        &sender(),
        &json!({"notification_id": id, "status": "delivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "needs notifications:status");
    let (status, _) = report(
        &app,
        "sms",
        &reporter(),
        &json!({"notification_id": id, "status": "delivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown channel");
    let (status, v) = report(
        &app,
        "email",
        &reporter(),
        &json!({"notification_id": id, "status": "opened", "timestamp": "yesterday", "notificationId": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["notificationId", "status", "timestamp"]);
    let (status, _) = report(
        &app,
        "email",
        &reporter(),
        &json!({"notification_id": uuid::Uuid::new_v4(), "status": "delivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown notification");
    let (status, v) = report(
        &app,
        "push",
        &reporter(),
        &json!({"notification_id": id, "status": "delivered"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an email notification reported on the push channel: {v}"
    );
    let n: i64 = sqlx::query("SELECT count(*) AS n FROM outbox WHERE topic = 'notifications.status'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 0, "nothing was queued for invalid reports");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.post(None, &body("r1")).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total")
                && l.contains("route=\"/api/v1/notifications/\"")
                && l.contains("status=\"401\"")
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    assert!(line.contains("method=\"POST\""), "{line}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency is a histogram"
    );
}
