//! The email provider chain in the real worker: failover from a failing primary (a SendGrid
//! fake) to the SMTP server, the way back once the primary recovers, and no retry spent while
//! every provider is down.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, ResponseTemplate,
};

use crate::harness::{history, statuses, Stack, Tiers};

const T: Duration = Duration::from_secs(60);
const SENDGRID_KEY: &str = "SG.e2e-test-key-not-a-real-one";

/// The provider named on a notification's `sent` history entry.
fn sent_by(n: &Value) -> Option<String> {
    n["history"].as_array()?.iter().find(|h| h["status"] == "sent")?["provider"]
        .as_str()
        .map(str::to_string)
}

async fn sendgrid_answering(server: &MockServer, status: u16) {
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {SENDGRID_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(status))
        .mount(server)
        .await;
}

fn chain_env(sendgrid: &MockServer, cool_down_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("APP_EMAIL_PROVIDERS", "sendgrid,smtp".into()),
        ("APP_SENDGRID_API_KEY", SENDGRID_KEY.into()),
        ("APP_SENDGRID_BASE_URL", sendgrid.uri()),
        ("APP_SENDGRID_TIMEOUT_MS", "2000".into()),
        ("APP_EMAIL_BREAKER_FAILURES", "3".into()),
        ("APP_EMAIL_BREAKER_COOL_DOWN_MS", cool_down_ms.to_string()),
        ("APP_RATE_LIMIT_PREFIX", test_support::unique("rl")),
    ]
}

#[tokio::test]
async fn a_failing_primary_fails_over_to_the_secondary_and_traffic_returns_after_its_recovery() {
    let sendgrid = MockServer::start().await;
    sendgrid_answering(&sendgrid, 503).await;
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s
        .create_user("ada@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.add_email_worker_env(&chain_env(&sendgrid, 5000)).await;
    let vars = json!({"name": "Ada", "link": "https://x.test"});

    // One after the other, so the circuit's opening is seen between two notifications.
    for i in 0..10 {
        let id = s
            .send("email", user, "welcome_email", vars.clone(), &format!("down-{i}"), 1)
            .await;
        let n = s.wait_status(id, "sent", T).await;
        assert_eq!(sent_by(&n).as_deref(), Some("smtp"), "{n}");
        assert!(
            !statuses(&n).contains(&"retrying".to_string()),
            "failover within the attempt: {n}"
        );
    }
    let mails = s.smtp.message_ids();
    assert_eq!(mails.len(), 10, "the secondary delivered every one, once: {mails:?}");
    let tried = sendgrid.received_requests().await.unwrap_or_default().len();
    // 3 failures open the circuit; afterwards at most a probe per 5 s cool-down reaches it.
    assert!(
        (3..10).contains(&tried),
        "the primary's circuit opened after 3 failures and stopped taking traffic ({tried} requests for 10 notifications)"
    );

    // The primary recovers: after the cool-down a probe goes through and traffic returns.
    sendgrid_answering(&sendgrid, 202).await;
    let back = test_support::wait_for("traffic to return to the primary", T, || async {
        let id = s
            .send(
                "email",
                user,
                "welcome_email",
                vars.clone(),
                &test_support::unique("up"),
                1,
            )
            .await;
        let n = s.wait_status(id, "sent", T).await;
        (sent_by(&n).as_deref() == Some("sendgrid")).then_some(id)
    })
    .await;
    let mut up = vec![back];
    for i in 0..5 {
        up.push(
            s.send("email", user, "welcome_email", vars.clone(), &format!("up-{i}"), 1)
                .await,
        );
    }
    for id in &up {
        let n = s.wait_status(*id, "sent", T).await;
        assert_eq!(sent_by(&n).as_deref(), Some("sendgrid"), "{n}");
    }
    let requests = sendgrid.received_requests().await.unwrap_or_default();
    let ids_seen: Vec<String> = requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["custom_args"]["notification_id"].as_str().map(str::to_string))
        .collect();
    for id in &up {
        assert_eq!(
            ids_seen.iter().filter(|s| **s == id.to_string()).count(),
            1,
            "{id} reached the primary once"
        );
    }
}

#[tokio::test]
async fn every_provider_down_longer_than_the_retry_schedule_dead_letters_nothing() {
    // The retry schedule takes 0.4 s; the providers stay down for 5 s.
    let tiers = Tiers {
        first_delay_ms: 200,
        first_attempts: 1,
        second_delay_ms: 200,
        second_attempts: 1,
    };
    let sendgrid = MockServer::start().await;
    sendgrid_answering(&sendgrid, 503).await;
    let mut s = Stack::start(tiers).await;
    s.welcome_template().await;
    let user = s
        .create_user("grace@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.smtp.stop();
    s.add_email_worker_env(&chain_env(&sendgrid, 500)).await;
    let vars = json!({"name": "Grace", "link": "https://x.test"});
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            s.send("email", user, "welcome_email", vars.clone(), &format!("n-{i}"), 1)
                .await,
        );
    }
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(5) {
        for id in &ids {
            let n = s.notification(*id).await;
            assert!(
                !statuses(&n).contains(&"dead_lettered".to_string()),
                "nothing is dead-lettered while every provider is down: {n}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    s.smtp.restart();
    for id in &ids {
        let n = s.wait_status(*id, "sent", T).await;
        assert!(history(&n).iter().all(|(status, _)| status != "dead_lettered"), "{n}");
    }
    let mails = s.smtp.message_ids();
    assert_eq!(mails.len(), 6, "each delivered once: {mails:?}");
}
