//! API tests: the real user-svc on a random port against a fresh PostgreSQL database and
//! Redis (keys under a prefix of each test's own).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    sync::{Mutex, Once, OnceLock},
    time::Duration,
};

use notify_kit::auth::{JwtVerifier, TokenUse, SCOPE_SEND};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;
use test_support::{service_token, user_token, TestDb};
use user_svc::{
    password::HashingParams, settings::Settings, startup::Application, SCOPE_USERS_READ, SCOPE_USERS_WRITE,
};

// ---------------------------------------------------------------- log capture

/// Every log line of this test binary, at every level, for the "never logged" checks.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured_logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::{fmt, prelude::*, EnvFilter};
        tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(|| CaptureWriter),
            )
            .init();
    });
}

fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---------------------------------------------------------------- harness

struct TestApp {
    base: String,
    db: TestDb,
    http: reqwest::Client,
}

async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    install_log_capture();
    let db = TestDb::with_migrator(&user_svc::db::MIGRATOR).await;
    let mut settings = Settings {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: notify_kit::settings::SecretUrl::new(db.url.clone()),
        database_max_connections: 4,
        run_migrations: true,
        max_body_bytes: 16 * 1024,
        http_workers: 1,
        open_registration: false,
        user_token_ttl: Duration::from_secs(900),
        password_hashing: HashingParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        auth: test_support::auth_settings(),
        cache: notify_lookup::CacheSettings {
            redis_url: notify_kit::settings::SecretUrl::new(test_support::redis_url()),
            prefix: format!("{}:", test_support::unique("t")),
            ttl: Duration::from_secs(30),
            op_timeout: Duration::from_millis(500),
        },
    };
    configure(&mut settings);
    let app = Application::build(settings).await.expect("user-svc builds");
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

fn writer() -> String {
    service_token("onboarding", &[SCOPE_USERS_WRITE])
}

fn reader() -> String {
    service_token("email-worker", &[SCOPE_USERS_READ])
}

fn spec_body(email: &str) -> Value {
    json!({
        "name": "John Doe",
        "email": email,
        "push_token": "fcm-token-abc",
        "preferences": {"email": true, "push": false},
        "password": "correct horse battery staple"
    })
}

impl TestApp {
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, json)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Creates a user (with a device token of its own) and returns its id.
    async fn create_user(&self, email: &str) -> String {
        let mut body = spec_body(email);
        body["push_token"] = json!(device_of(email));
        let (status, v) = self.post("/api/v1/users/", Some(&writer()), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["data"]["id"].as_str().unwrap().to_string()
    }

    async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }
}

fn device_of(email: &str) -> String {
    format!("fcm-{}", email.replace('@', "-at-"))
}

fn assert_error_envelope(v: &Value, code: &str) {
    assert_eq!(v["success"], false, "{v}");
    assert!(v["data"].is_null(), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
}

fn detail_fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {v}"))
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------- creating

#[tokio::test]
async fn the_spec_body_creates_a_user_and_stores_only_an_argon2id_hash() {
    let app = spawn_app().await;
    let (status, v) = app
        .post("/api/v1/users/", Some(&writer()), &spec_body("john@example.com"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let data = &v["data"];
    assert_eq!(data["name"], "John Doe");
    assert_eq!(data["email"], "john@example.com");
    assert_eq!(data["language"], "en");
    assert_eq!(data["preferences"], json!({"email": true, "push": false}));
    assert_eq!(data["push_tokens"][0]["token"], "fcm-token-abc");
    assert_eq!(data["push_tokens"][0]["platform"], "android");
    assert!(data.get("password").is_none() && data.get("password_hash").is_none());

    let hash: String = sqlx::query("SELECT password_hash FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    app.create_user("ann@example.com").await;
    let (status, v) = app
        .post("/api/v1/users/", Some(&writer()), &spec_body("ANN@Example.com"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_envelope(&v, "conflict");
    let n: i64 = sqlx::query("SELECT count(*) FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn_app().await;
    let cases: [(&str, Value, &str); 10] = [
        ("name", json!(""), "name"),
        ("email", json!("not-an-email"), "email"),
        ("password", json!("short"), "password"),
        ("push_token", json!("has space"), "push_token"),
        (
            "push_token",
            json!({"token": "t1", "platform": "nokia"}),
            "push_token.platform",
        ),
        ("preferences", json!({"email": true}), "preferences.push"),
        (
            "preferences",
            json!({"email": "yes", "push": true}),
            "preferences.email",
        ),
        ("preferences", json!([true]), "preferences"),
        ("language", json!("english"), "language"),
        ("name", json!(42), "name"),
    ];
    for (field, bad, expected) in cases {
        let mut body = spec_body("x@example.com");
        body[field] = bad.clone();
        let (status, v) = app.post("/api/v1/users/", Some(&writer()), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={bad}: {v}");
        assert_error_envelope(&v, "validation_failed");
        assert_eq!(detail_fields(&v), [expected], "{field}={bad}");
    }
}

#[tokio::test]
async fn camel_case_unknown_and_missing_fields_are_all_reported() {
    let app = spawn_app().await;
    let (status, v) = app
        .post(
            "/api/v1/users/",
            Some(&writer()),
            &json!({"name": "A", "email": "a@example.com", "pushToken": "t", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = detail_fields(&v);
    fields.sort();
    assert_eq!(fields, ["password", "preferences", "pushToken", "role"]);
    let hint = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "pushToken")
        .unwrap();
    assert!(hint["reason"].as_str().unwrap().contains("push_token"));
}

#[tokio::test]
async fn creating_needs_a_service_token_with_users_write() {
    let app = spawn_app().await;
    let body = spec_body("b@example.com");
    let (status, v) = app.post("/api/v1/users/", None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_envelope(&v, "unauthorized");
    let (status, _) = app.post("/api/v1/users/", Some(&reader()), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let someone = user_token(&uuid::Uuid::new_v4().to_string());
    let (status, _) = app.post("/api/v1/users/", Some(&someone), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn open_registration_lets_anyone_sign_up() {
    let app = spawn_app_with(|s| s.open_registration = true).await;
    let (status, v) = app.post("/api/v1/users/", None, &spec_body("open@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

// ---------------------------------------------------------------- login and tokens

#[tokio::test]
async fn login_issues_a_short_lived_self_token_that_cannot_send_notifications() {
    let app = spawn_app_with(|s| s.user_token_ttl = Duration::from_secs(600)).await;
    let id = app.create_user("carol@example.com").await;
    let (status, v) = app.login("Carol@EXAMPLE.com", "correct horse battery staple").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["token_type"], "Bearer");
    assert_eq!(v["data"]["expires_in"], 600);
    assert_eq!(v["data"]["user_id"], id);
    let token = v["data"]["access_token"].as_str().unwrap();

    let caller = JwtVerifier::new(&test_support::auth_settings())
        .unwrap()
        .verify(token)
        .unwrap();
    assert_eq!(caller.subject, id);
    assert_eq!(caller.token_use, TokenUse::User);
    assert!(caller.has_scope("users:self"));
    assert!(!caller.has_scope(SCOPE_SEND));
    assert!(!caller.has_scope(SCOPE_USERS_READ));

    let claims: Value = serde_json::from_slice(&base64_decode(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    assert_eq!(claims["scope"], "users:self");

    let (status, me) = app.get(&format!("/api/v1/users/{id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["email"], "carol@example.com");
}

fn base64_decode(s: &str) -> Vec<u8> {
    // URL-safe, unpadded (JWT segments).
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_are_refused_alike() {
    let app = spawn_app().await;
    app.create_user("dave@example.com").await;
    let (s1, wrong) = app.login("dave@example.com", "not the password").await;
    let (s2, unknown) = app.login("nobody@example.com", "correct horse battery staple").await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["message"], unknown["message"]);
    let (status, v) = app
        .post("/api/v1/auth/login", None, &json!({"email": "dave@example.com"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["password"]);
}

#[tokio::test]
async fn the_password_never_appears_in_a_response_or_a_log_line() {
    let app = spawn_app().await;
    let password = format!("pw-{}-secret", test_support::unique("p"));
    let new_password = format!("pw-{}-new", test_support::unique("p"));
    let mut body = spec_body("erin@example.com");
    body["password"] = json!(password);
    let mut responses = Vec::new();

    let (status, created) = app.post("/api/v1/users/", Some(&writer()), &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["data"]["id"].as_str().unwrap().to_string();
    responses.push(created);
    // A body that fails validation elsewhere still carries the password.
    let mut invalid = body.clone();
    invalid["email"] = json!("broken");
    responses.push(app.post("/api/v1/users/", Some(&writer()), &invalid).await.1);
    responses.push(app.post("/api/v1/users/", Some(&writer()), &body).await.1); // 409
    let (_, login) = app.login("erin@example.com", &password).await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    responses.push(login);
    responses.push(app.login("erin@example.com", &new_password).await.1); // 401
    responses.push(
        app.call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(&json!({"password": new_password, "current_password": password})),
        )
        .await
        .1,
    );
    responses.push(app.get(&format!("/api/v1/users/{id}"), Some(&token)).await.1);
    responses.push(app.get("/api/v1/users/", Some(&reader())).await.1);

    for r in &responses {
        let text = r.to_string();
        assert!(!text.contains(&password), "response leaks the password: {text}");
        assert!(!text.contains(&new_password), "response leaks the password: {text}");
        assert!(!text.contains("$argon2"), "response leaks the hash: {text}");
    }
    let logs = logs_text();
    assert!(
        logs.contains(&id),
        "the capture works: the creation was logged with the user id"
    );
    assert!(!logs.contains(&password), "a log line holds the password");
    assert!(!logs.contains(&new_password), "a log line holds the new password");
    assert!(!logs.contains("$argon2"), "a log line holds a hash");
}

// ---------------------------------------------------------------- ownership and scopes

#[tokio::test]
async fn a_user_token_reads_and_changes_only_its_own_record() {
    let app = spawn_app().await;
    let me = app.create_user("me@example.com").await;
    let other = app.create_user("other@example.com").await;
    let token = user_token(&me);
    // test-support's user tokens carry no scope; login tokens carry users:self.
    let (status, _) = app.get(&format!("/api/v1/users/{me}"), Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, login) = app.login("me@example.com", "correct horse battery staple").await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    let (status, _) = app.get(&format!("/api/v1/users/{me}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/users/{other}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{other}"),
            Some(json!({"name": "Mallory"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{other}"), None),
        (
            Method::PUT,
            format!("/api/v1/users/{other}/preferences"),
            Some(json!({"email": false, "push": false})),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{other}/push-tokens"),
            Some(json!({"token": "stolen", "platform": "web"})),
        ),
    ] {
        let (status, v) = app.call(method.clone(), &path, Some(&token), body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    let (status, _) = app.get("/api/v1/users/", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, still) = app.get(&format!("/api/v1/users/{other}"), Some(&reader())).await;
    assert_eq!(still["data"]["name"], "John Doe");
}

#[tokio::test]
async fn a_reading_service_cannot_change_users() {
    let app = spawn_app().await;
    let id = app.create_user("f@example.com").await;
    let (status, _) = app.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&reader()),
            Some(&json!({"name": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().contains("users:write"));
    let nobody = service_token("billing", &["notifications:send"]);
    let (status, _) = app.get(&format!("/api/v1/users/{id}"), Some(&nobody)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------- changing

#[tokio::test]
async fn a_patch_changes_only_the_given_fields() {
    let app = spawn_app().await;
    let id = app.create_user("g@example.com").await;
    app.create_user("taken@example.com").await;
    let path = format!("/api/v1/users/{id}");
    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&writer()),
            Some(&json!({"name": "Grace", "language": "pt-br"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["name"], "Grace");
    assert_eq!(v["data"]["language"], "pt-BR");
    assert_eq!(v["data"]["email"], "g@example.com");

    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&writer()),
            Some(&json!({"email": "TAKEN@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, v) = app.call(Method::PATCH, &path, Some(&writer()), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["body"]);
    let (status, v) = app
        .call(Method::PATCH, &path, Some(&writer()), Some(&json!({"userName": "x"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["userName"]);
}

#[tokio::test]
async fn an_end_user_changes_the_password_only_with_the_current_one() {
    let app = spawn_app().await;
    let id = app.create_user("h@example.com").await;
    let (_, login) = app.login("h@example.com", "correct horse battery staple").await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    let path = format!("/api/v1/users/{id}");
    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"password": "a new passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["current_password"]);
    let (status, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"password": "a new passphrase", "current_password": "guess"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["current_password"]);
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"password": "a new passphrase", "current_password": "correct horse battery staple"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.login("h@example.com", "correct horse battery staple").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("h@example.com", "a new passphrase").await.0, StatusCode::OK);
}

#[tokio::test]
async fn push_tokens_are_added_moved_between_users_and_removed() {
    let app = spawn_app().await;
    let a = app.create_user("pa@example.com").await;
    let b = app.create_user("pb@example.com").await;
    let (status, v) = app
        .post(
            &format!("/api/v1/users/{a}/push-tokens"),
            Some(&writer()),
            &json!({"token": "ios-device-1", "platform": "ios"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let tokens: Vec<(String, String)> = v["data"]["push_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["token"].as_str().unwrap().into(),
                t["platform"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        tokens,
        [
            (device_of("pa@example.com"), "android".to_string()),
            ("ios-device-1".to_string(), "ios".to_string())
        ]
    );

    // The device now belongs to b: it leaves a.
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{b}/push-tokens"),
            Some(&writer()),
            &json!({"token": "ios-device-1", "platform": "ios"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, user_a) = app.get(&format!("/api/v1/users/{a}"), Some(&reader())).await;
    assert_eq!(user_a["data"]["push_tokens"].as_array().unwrap().len(), 1);

    let (status, v) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{b}/push-tokens/ios-device-1"),
            Some(&writer()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["push_tokens"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{b}/push-tokens/ios-device-1"),
            Some(&writer()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, v) = app
        .post(
            &format!("/api/v1/users/{a}/push-tokens"),
            Some(&writer()),
            &json!({"token": "x", "platform": "blackberry", "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = detail_fields(&v);
    fields.sort();
    assert_eq!(fields, ["extra", "platform"]);
}

#[tokio::test]
async fn preferences_are_replaced_as_a_whole() {
    let app = spawn_app().await;
    let id = app.create_user("pref@example.com").await;
    let path = format!("/api/v1/users/{id}/preferences");
    let (status, v) = app
        .call(
            Method::PUT,
            &path,
            Some(&writer()),
            Some(&json!({"email": false, "push": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["preferences"], json!({"email": false, "push": true}));
    let (status, v) = app
        .call(Method::PUT, &path, Some(&writer()), Some(&json!({"email": true})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["push"]);
}

#[tokio::test]
async fn a_deleted_user_is_gone_for_readers_and_login() {
    let app = spawn_app().await;
    let id = app.create_user("del@example.com").await;
    let path = format!("/api/v1/users/{id}");
    let (status, v) = app.call(Method::DELETE, &path, Some(&writer()), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["deleted"], true);
    let (status, v) = app.get(&path, Some(&reader())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    assert_eq!(
        app.login("del@example.com", "correct horse battery staple").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app.call(Method::DELETE, &path, Some(&writer()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let tokens: i64 = sqlx::query("SELECT count(*) FROM push_tokens")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(tokens, 0);
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn the_list_is_paginated_with_the_spec_meta() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_user(&format!("u{i}@example.com")).await;
    }
    let (status, v) = app.get("/api/v1/users/?page=2&limit=2", Some(&reader())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["meta"],
        json!({"total": 3, "limit": 2, "page": 2, "total_pages": 2, "has_next": false, "has_previous": true})
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["email"], "u2@example.com");
    let (_, first) = app.get("/api/v1/users/?limit=2", Some(&reader())).await;
    assert_eq!(first["meta"]["has_next"], true);
    assert_eq!(first["meta"]["has_previous"], false);

    let (status, v) = app.get("/api/v1/users/?page=0&limit=1000", Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["page", "limit"]);
    let (status, v) = app.get("/api/v1/users/?sort=name", Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["sort"]);
}

// ---------------------------------------------------------------- health, docs, routing

#[tokio::test]
async fn health_reports_postgres_hard_and_redis_soft() {
    let app = spawn_app().await;
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["dependencies"][0]["name"], "postgres");
    assert_eq!(v["data"]["dependencies"][1]["name"], "redis");
    assert_eq!(v["data"]["dependencies"][1]["healthy"], true);

    let no_redis = spawn_app_with(|s| {
        s.cache.redis_url = notify_kit::settings::SecretUrl::new("redis://127.0.0.1:1");
    })
    .await;
    let (status, v) = no_redis.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "Redis is only a cache: {v}");
    assert_eq!(v["data"]["dependencies"][1]["healthy"], false);
    // And writes still work without it.
    no_redis.create_user("noredis@example.com").await;
}

#[tokio::test]
async fn the_openapi_document_and_metrics_are_served() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/users/", "post"),
        ("/api/v1/users/", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}/push-tokens/{token}", "delete"),
        ("/api/v1/users/{id}/preferences", "put"),
        ("/api/v1/auth/login", "post"),
    ] {
        assert!(v["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(v["components"]["schemas"]["CreateUserBody"]["properties"]["push_token"].is_object());
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_malformed_ids_answer_404_in_the_envelope() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    let (status, v) = app.get("/api/v1/users/not-a-uuid", Some(&reader())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
}
