//! The lookups against the real user-svc and template-svc (in-process, port 0, each with
//! a fresh database) and the real Redis, with a key prefix per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use notify_kit::settings::SecretUrl;
use notify_lookup::{
    keys, Cache, CacheSettings, DeviceRegistry, LookupError, Platform, PushProvider, RecipientLookup, TemplateLookup,
    TokenSource, SCOPE_TEMPLATES_READ, SCOPE_USERS_DEVICES_WRITE, SCOPE_USERS_READ,
};
use notify_templates::{Channel, Language, TemplateCode, TemplateContent};
use redis::AsyncCommands;
use serde_json::{json, Value};
use test_support::{service_token, spawn_app, TestApp};
use uuid::Uuid;

fn cache_settings(prefix: &str) -> CacheSettings {
    CacheSettings {
        redis_url: SecretUrl::new(test_support::redis_url()),
        prefix: prefix.to_string(),
        ttl: Duration::from_secs(30),
        op_timeout: Duration::from_millis(500),
    }
}

struct Services {
    users: TestApp,
    templates: TestApp,
    prefix: String,
    http: reqwest::Client,
}

async fn spawn_services() -> Services {
    let prefix = format!("{}:", test_support::unique("t"));
    let users =
        spawn_app::<user_svc::startup::Application>(&user_svc::db::MIGRATOR, |db| user_svc::settings::Settings {
            host: "127.0.0.1".into(),
            port: 0,
            database_url: SecretUrl::new(db.url.clone()),
            database_max_connections: 4,
            run_migrations: true,
            max_body_bytes: 16 * 1024,
            http_workers: 1,
            open_registration: false,
            user_token_ttl: Duration::from_secs(900),
            password_hashing: user_svc::password::HashingParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            auth: test_support::auth_settings(),
            login: user_svc::login_guard::LoginSettings::new(
                SecretUrl::new(test_support::redis_url()),
                Duration::from_millis(500),
                &prefix,
            ),
            cache: cache_settings(&prefix),
            device_defaults: Default::default(),
            unsubscribe: user_svc::unsubscribe::UnsubscribeSettings {
                secret: "unsubscribe-test-secret-unsubscribe-test-secret".to_string().into(),
                ttl: Duration::from_secs(24 * 3600),
                public_base_url: "https://notify.example.com".into(),
            },
        })
        .await;
    let templates = spawn_app::<template_svc::startup::Application>(&template_svc::db::MIGRATOR, |db| {
        template_svc::settings::Settings {
            host: "127.0.0.1".into(),
            port: 0,
            database_url: SecretUrl::new(db.url.clone()),
            database_max_connections: 4,
            run_migrations: true,
            max_body_bytes: 64 * 1024,
            http_workers: 1,
            auth: test_support::auth_settings(),
            cache: cache_settings(&prefix),
        }
    })
    .await;
    Services {
        users,
        templates,
        prefix,
        http: reqwest::Client::new(),
    }
}

fn worker_tokens() -> TokenSource {
    TokenSource::issuer(
        test_support::issuer(),
        "email-worker",
        &[SCOPE_USERS_READ, SCOPE_TEMPLATES_READ],
        Duration::from_secs(300),
    )
}

impl Services {
    fn cache(&self) -> Cache {
        Cache::new(&cache_settings(&self.prefix)).unwrap()
    }

    fn users(&self) -> RecipientLookup {
        RecipientLookup::new(&self.users.address, worker_tokens(), self.cache()).unwrap()
    }

    fn templates(&self) -> TemplateLookup {
        TemplateLookup::new(&self.templates.address, worker_tokens(), self.cache()).unwrap()
    }

    async fn send(&self, method: reqwest::Method, url: String, scope: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(service_token("admin", &[scope]));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{status}: {v}");
        v
    }

    async fn create_user(&self, email: &str) -> Uuid {
        let v = self
            .send(
                reqwest::Method::POST,
                format!("{}/api/v1/users/", self.users.address),
                "users:write",
                Some(json!({
                    "name": "Ann",
                    "email": email,
                    "push_token": {"token": "ios-token-1", "platform": "ios"},
                    "preferences": {"email": true, "push": true},
                    "password": "long enough password",
                    "language": "pt-BR"
                })),
            )
            .await;
        v["data"]["id"].as_str().unwrap().parse().unwrap()
    }

    async fn patch_user(&self, id: Uuid, body: Value) {
        self.send(
            reqwest::Method::PATCH,
            format!("{}/api/v1/users/{id}", self.users.address),
            "users:write",
            Some(body),
        )
        .await;
    }

    async fn create_template(&self) {
        self.send(
            reqwest::Method::POST,
            format!("{}/api/v1/templates/", self.templates.address),
            "templates:write",
            Some(json!({
                "code": "welcome_email",
                "channel": "email",
                "default_language": "en",
                "name": "Welcome",
                "content": {
                    "en": {"subject": "Hi {{ name }}", "text_body": "t", "html_body": "h"},
                    "pt": {"subject": "Olá {{ name }}", "text_body": "t", "html_body": "h"}
                }
            })),
        )
        .await;
    }

    async fn publish(&self, subject: &str) {
        self.send(
            reqwest::Method::POST,
            format!("{}/api/v1/templates/welcome_email/versions", self.templates.address),
            "templates:write",
            Some(json!({"content": {
                "en": {"subject": subject, "text_body": "t", "html_body": "h"},
                "pt": {"subject": subject, "text_body": "t", "html_body": "h"}
            }})),
        )
        .await;
    }

    /// The generation a key family is at (the services bump it on every change, creation
    /// included).
    async fn generation(&self, key: String) -> u64 {
        let n: Option<u64> = self.redis().await.get(key).await.unwrap();
        n.unwrap_or(0)
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(test_support::redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

fn code() -> TemplateCode {
    TemplateCode::parse("welcome_email").unwrap()
}

fn lang(s: &str) -> Language {
    Language::parse(s).unwrap()
}

fn subject(content: &TemplateContent) -> &str {
    match content {
        TemplateContent::Email(e) => &e.subject,
        TemplateContent::Push(_) => panic!("not an email"),
    }
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn a_recipient_is_looked_up_and_then_served_from_the_cache() {
    let s = spawn_services().await;
    let id = s.create_user("ann@example.com").await;
    let users = s.users();

    let r = users.get(id).await.unwrap().expect("the user exists");
    assert_eq!(r.user_id, id);
    assert_eq!(r.email, "ann@example.com");
    assert_eq!(r.language.as_str(), "pt-BR");
    assert!(r.preferences.email && r.preferences.push);
    assert_eq!(r.push_tokens.len(), 1);
    assert_eq!(r.push_tokens[0].token, "ios-token-1");
    assert_eq!(r.push_tokens[0].platform, Platform::Ios);
    assert_eq!(r.push_tokens[0].provider, PushProvider::Fcm);
    assert!(!r.push_tokens[0].id.is_nil(), "the device has user-svc's id");

    let generation = s.generation(keys::user_generation(&s.prefix, id)).await;
    assert!(generation >= 1, "creating the user bumped its generation");
    let entry = keys::user_entry(&s.prefix, id, generation);
    let cached: Option<String> = s.redis().await.get(&entry).await.unwrap();
    assert!(cached.is_some(), "{entry} holds the recipient");

    // Deleted behind user-svc's back (no invalidation): the cached answer is served.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&s.users.db.pool)
        .await
        .unwrap();
    assert_eq!(users.get(id).await.unwrap(), Some(r));
}

#[tokio::test]
async fn a_change_through_user_svc_is_seen_by_the_next_lookup() {
    let s = spawn_services().await;
    let id = s.create_user("bob@example.com").await;
    let users = s.users();
    assert_eq!(users.get(id).await.unwrap().unwrap().email, "bob@example.com");

    s.patch_user(
        id,
        json!({"email": "robert@example.com", "preferences": {"email": false, "push": true}}),
    )
    .await;
    let after = users.get(id).await.unwrap().unwrap();
    assert_eq!(after.email, "robert@example.com");
    assert!(!after.preferences.email);

    s.send(
        reqwest::Method::DELETE,
        format!("{}/api/v1/users/{id}/push-tokens/ios-token-1", s.users.address),
        "users:write",
        None,
    )
    .await;
    assert!(users.get(id).await.unwrap().unwrap().push_tokens.is_empty());
}

#[tokio::test]
async fn a_suppression_put_or_lifted_through_user_svc_is_seen_by_the_next_lookup() {
    let s = spawn_services().await;
    let id = s.create_user("Carol@Example.com").await;
    let users = s.users();
    let before = users.get(id).await.unwrap().unwrap();
    assert_eq!(before.email_suppressed, None);
    let link = before
        .email_unsubscribe_url
        .expect("service lookups carry the unsubscribe link");
    assert!(
        link.starts_with("https://notify.example.com/api/v1/unsubscribe?token=v1."),
        "{link}"
    );
    let generation = s.generation(keys::user_generation(&s.prefix, id)).await;

    // Suppressed under another spelling of the address: the user's cached entry is dropped.
    let entry = format!("{}/api/v1/suppressions/email/carol@example.COM", s.users.address);
    s.send(
        reqwest::Method::PUT,
        entry.clone(),
        "suppressions:write",
        Some(json!({"reason": "hard_bounce", "source": "sendgrid"})),
    )
    .await;
    assert!(s.generation(keys::user_generation(&s.prefix, id)).await > generation);
    let suppressed = users
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .email_suppressed
        .expect("suppressed");
    assert_eq!(
        (suppressed.reason.as_str(), suppressed.source.as_str()),
        ("hard_bounce", "sendgrid")
    );

    let lifted = s
        .http
        .delete(&entry)
        .bearer_auth(service_token("ops", &["suppressions:write"]))
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), reqwest::StatusCode::NO_CONTENT);
    assert_eq!(users.get(id).await.unwrap().unwrap().email_suppressed, None);
}

#[tokio::test]
async fn a_device_reported_gone_is_removed_and_the_next_lookup_lacks_it() {
    let s = spawn_services().await;
    let id = s.create_user("phone@example.com").await;
    let users = s.users();
    let before = users.get(id).await.unwrap().unwrap();
    assert_eq!(before.push_tokens.len(), 1, "cached with its device");
    let registry = DeviceRegistry::new(
        &s.users.address,
        TokenSource::issuer(
            test_support::issuer(),
            "push-worker",
            &[SCOPE_USERS_DEVICES_WRITE],
            Duration::from_secs(300),
        ),
        Duration::from_secs(2),
    )
    .unwrap();

    assert_eq!(registry.mark_used(&[before.push_tokens[0].id]).await.unwrap(), 1);
    assert!(registry.remove_gone("ios-token-1", "fcm: UNREGISTERED").await.unwrap());

    assert!(
        users.get(id).await.unwrap().unwrap().push_tokens.is_empty(),
        "removal bumped the cache generation"
    );
    assert!(
        !registry.remove_gone("ios-token-1", "fcm: UNREGISTERED").await.unwrap(),
        "a second report finds nothing to remove"
    );
    let reader_only = DeviceRegistry::new(&s.users.address, worker_tokens(), Duration::from_secs(2)).unwrap();
    assert!(matches!(
        reader_only.mark_used(&[Uuid::new_v4()]).await,
        Err(LookupError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn a_deleted_or_unknown_user_is_none() {
    let s = spawn_services().await;
    let id = s.create_user("gone@example.com").await;
    let users = s.users();
    assert!(users.get(id).await.unwrap().is_some());
    s.send(
        reqwest::Method::DELETE,
        format!("{}/api/v1/users/{id}", s.users.address),
        "users:write",
        None,
    )
    .await;
    assert_eq!(users.get(id).await.unwrap(), None);
    assert_eq!(users.get(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn a_stopped_user_svc_is_unavailable_and_retryable() {
    let s = spawn_services().await;
    let users = s.users();
    let unknown = Uuid::new_v4();
    assert_eq!(users.get(unknown).await.unwrap(), None);
    s.users.handle.stop(true).await;
    let err = users.get(unknown).await.unwrap_err();
    assert!(matches!(err, LookupError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_redis_outage_does_not_fail_lookups() {
    let s = spawn_services().await;
    let id = s.create_user("noredis@example.com").await;
    let down = Cache::new(&CacheSettings {
        redis_url: SecretUrl::new("redis://127.0.0.1:1"),
        ..cache_settings(&s.prefix)
    })
    .unwrap();
    let users = RecipientLookup::new(&s.users.address, worker_tokens(), down.clone()).unwrap();
    assert_eq!(users.get(id).await.unwrap().unwrap().email, "noredis@example.com");
    assert!(down.ping().await.is_err());
    assert!(
        down.invalidate_user(id).await.is_err(),
        "reported, for the services to log"
    );
    let templates = TemplateLookup::new(&s.templates.address, worker_tokens(), down).unwrap();
    assert_eq!(templates.get(&code(), &lang("en")).await.unwrap(), None);
}

#[tokio::test]
async fn a_token_without_the_scope_is_unauthorized_not_retryable() {
    let s = spawn_services().await;
    let users = RecipientLookup::new(
        &s.users.address,
        TokenSource::fixed(service_token("nosy", &["notifications:send"])),
        Cache::disabled(),
    )
    .unwrap();
    let err = users.get(Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(err, LookupError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let broken = RecipientLookup::new(
        &s.users.address,
        TokenSource::from_fn(|| Err(anyhow::anyhow!("no key"))),
        Cache::disabled(),
    )
    .unwrap();
    assert!(matches!(
        broken.get(Uuid::new_v4()).await,
        Err(LookupError::Unauthorized { .. })
    ));
}

// ---------------------------------------------------------------- templates

#[tokio::test]
async fn a_template_resolves_with_language_fallback() {
    let s = spawn_services().await;
    s.create_template().await;
    let templates = s.templates();
    let t = templates
        .get(&code(), &lang("pt-BR"))
        .await
        .unwrap()
        .expect("the template exists");
    assert_eq!(t.code, code());
    assert_eq!(t.channel, Channel::Email);
    assert_eq!(t.version, 1);
    assert_eq!(t.language.as_str(), "pt");
    assert_eq!(subject(&t.content), "Olá {{ name }}");
    let d = templates.get(&code(), &lang("de")).await.unwrap().unwrap();
    assert_eq!(d.language.as_str(), "en");
    let unknown = TemplateCode::parse("no_such_template").unwrap();
    assert_eq!(templates.get(&unknown, &lang("en")).await.unwrap(), None);
}

#[tokio::test]
async fn publishing_a_version_invalidates_every_cached_language() {
    let s = spawn_services().await;
    s.create_template().await;
    let templates = s.templates();
    for l in ["en", "pt-BR", "pt"] {
        assert_eq!(templates.get(&code(), &lang(l)).await.unwrap().unwrap().version, 1);
    }
    let before = s.generation(keys::template_generation(&s.prefix, &code())).await;
    let cached: Option<String> = s
        .redis()
        .await
        .get(keys::template_entry(&s.prefix, &code(), before, &lang("pt-BR")))
        .await
        .unwrap();
    assert!(cached.is_some());

    s.publish("Version two").await;
    for l in ["en", "pt-BR", "pt"] {
        let t = templates.get(&code(), &lang(l)).await.unwrap().unwrap();
        assert_eq!(t.version, 2, "{l}");
        assert_eq!(subject(&t.content), "Version two");
    }
    assert_eq!(
        s.generation(keys::template_generation(&s.prefix, &code())).await,
        before + 1
    );
}

#[tokio::test]
async fn a_lookup_that_raced_a_change_cannot_poison_the_cache() {
    let s = spawn_services().await;
    let id = s.create_user("race@example.com").await;
    let users = s.users();
    // A reader that fetched before the change would write under the generation it read;
    // the change bumps the generation, so that write is never read back.
    let read_before_change = s.generation(keys::user_generation(&s.prefix, id)).await;
    let stale_key = keys::user_entry(&s.prefix, id, read_before_change);
    s.patch_user(id, json!({"name": "Renamed", "email": "new@example.com"}))
        .await;
    let stale = json!({
        "user_id": id, "email": "race@example.com", "push_tokens": [],
        "preferences": {"email": true, "push": true}, "language": "en"
    });
    let _: () = s.redis().await.set(&stale_key, stale.to_string()).await.unwrap();
    assert_eq!(users.get(id).await.unwrap().unwrap().email, "new@example.com");
}

// ---------------------------------------------------------------- failure classes

/// A stand-in service that answers every request with `status` and `body`.
async fn fake_service(status: u16, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().default_service(actix_web::web::to(move || async move {
            actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .content_type("application/json")
                .body(body)
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn server_errors_and_throttling_are_unavailable_but_bad_answers_are_invalid() {
    for (status, body, retryable) in [
        (500, r#"{"success":false,"message":"boom"}"#, true),
        (503, "", true),
        (429, "", true),
        (200, r#"{"success":true,"data":{"unexpected":1}}"#, false),
        (200, "not json", false),
        (400, r#"{"success":false,"message":"bad"}"#, false),
    ] {
        let base = fake_service(status, body).await;
        let users = RecipientLookup::new(&base, worker_tokens(), Cache::disabled()).unwrap();
        let err = users.get(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{status} {body}: {err:?}");
        if !retryable {
            assert!(matches!(err, LookupError::Invalid { .. }), "{err:?}");
        }
    }
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_is_unavailable() {
    // A listener that accepts connections but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let templates =
        TemplateLookup::with_timeout(&base, worker_tokens(), Cache::disabled(), Duration::from_millis(200)).unwrap();
    let err = templates.get(&code(), &lang("en")).await.unwrap_err();
    assert!(matches!(err, LookupError::Unavailable { .. }), "{err:?}");
}
