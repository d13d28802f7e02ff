//! `ProviderChain` with SendGrid (primary) and Mailgun (secondary) against wiremock fakes,
//! its breakers on a manual clock.

use std::{sync::Arc, time::Duration};

use crate::common::{delivery, sender, welcome, TO};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use notify_kit::settings::SecretUrl;
use notify_providers::{
    breaker::{BreakerSettings, CircuitState, Clock, ManualClock},
    rate_limit::{RateLimit, RateLimiter},
    MailgunProvider, MailgunSettings, ProviderChain, SendGridProvider, SendGridSettings,
};
use notify_worker::provider::{FailureKind, Provider, ProviderFailure, ProviderReceipt};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const COOL_DOWN: Duration = Duration::from_secs(30);
const SENDGRID: &str = "/v3/mail/send";
const MAILGUN: &str = "/v3/mg.notify.test/messages";

fn breaker() -> BreakerSettings {
    BreakerSettings {
        consecutive_failures: 3,
        failure_ratio: 1.0,
        window: Duration::from_secs(60),
        min_requests: 100,
        cool_down: COOL_DOWN,
    }
}

fn sendgrid(server: &MockServer) -> Arc<dyn Provider> {
    Arc::new(
        SendGridProvider::new(&SendGridSettings {
            api_key: SecretString::from("SG.k"),
            base_url: server.uri(),
            timeout: Duration::from_secs(5),
            sender: sender(),
        })
        .unwrap(),
    )
}

fn mailgun(server: &MockServer) -> Arc<dyn Provider> {
    Arc::new(
        MailgunProvider::new(&MailgunSettings {
            api_key: SecretString::from("key-k"),
            domain: "mg.notify.test".into(),
            base_url: server.uri(),
            timeout: Duration::from_secs(5),
            sender: sender(),
        })
        .unwrap(),
    )
}

fn chain(primary: &MockServer, secondary: &MockServer, clock: &ManualClock) -> ProviderChain {
    ProviderChain::builder("email")
        .breaker(breaker())
        .clock(Arc::new(clock.clone()))
        .member(sendgrid(primary), None)
        .member(mailgun(secondary), None)
        .build()
}

async fn answer(server: &MockServer, route: &str, template: ResponseTemplate, times: Option<u64>, expected: u64) {
    let mut mock = Mock::given(method("POST")).and(path(route)).respond_with(template);
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.expect(expected).mount(server).await;
}

/// The primary's and the secondary's fake APIs, and the breakers' clock.
async fn fakes() -> (MockServer, MockServer, ManualClock) {
    (
        MockServer::start().await,
        MockServer::start().await,
        ManualClock::default(),
    )
}

fn accepted_by_mailgun() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": "<mg-id>", "message": "Queued. Thank you."}))
}

async fn send(chain: &ProviderChain, id: Uuid) -> Result<ProviderReceipt, ProviderFailure> {
    let content = welcome();
    chain.deliver(&delivery(id, TO, &content)).await
}

/// How many requests to `server` carry each id (in their body).
async fn requests_per_id(server: &MockServer, ids: &[Uuid]) -> Vec<usize> {
    let requests = server.received_requests().await.unwrap();
    ids.iter()
        .map(|id| {
            let id = id.to_string();
            requests
                .iter()
                .filter(|r| String::from_utf8_lossy(&r.body).contains(&id))
                .count()
        })
        .collect()
}

#[tokio::test]
async fn when_the_primary_fails_its_circuit_opens_and_the_secondary_delivers_each_message_once() {
    let (primary, secondary, clock) = fakes().await;
    answer(&primary, SENDGRID, ResponseTemplate::new(503), None, 3).await;
    answer(&secondary, MAILGUN, accepted_by_mailgun(), None, 10).await;
    let chain = chain(&primary, &secondary, &clock);
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();

    for id in &ids {
        let receipt = send(&chain, *id).await.unwrap();
        assert_eq!(receipt.provider, Some("mailgun"));
    }

    assert_eq!(chain.circuit_state("sendgrid"), Some(CircuitState::Open));
    assert_eq!(chain.circuit_state("mailgun"), Some(CircuitState::Closed));
    assert!(!chain.all_open());
    assert_eq!(requests_per_id(&secondary, &ids).await, vec![1; 10]);
    // The primary saw the first three only (then its circuit opened).
    assert_eq!(requests_per_id(&primary, &ids).await, [vec![1; 3], vec![0; 7]].concat());
}

#[tokio::test]
async fn after_the_cool_down_one_probe_to_the_primary_succeeds_and_traffic_returns_to_it() {
    let (primary, secondary, clock) = fakes().await;
    answer(&primary, SENDGRID, ResponseTemplate::new(503), Some(3), 3).await;
    answer(
        &primary,
        SENDGRID,
        ResponseTemplate::new(202).insert_header("x-message-id", "sg"),
        None,
        3,
    )
    .await;
    answer(&secondary, MAILGUN, accepted_by_mailgun(), None, 5).await;
    let chain = chain(&primary, &secondary, &clock);
    for _ in 0..5 {
        assert_eq!(send(&chain, Uuid::new_v4()).await.unwrap().provider, Some("mailgun"));
    }
    assert_eq!(chain.circuit_state("sendgrid"), Some(CircuitState::Open));

    clock.advance(COOL_DOWN);
    let probe = send(&chain, Uuid::new_v4()).await.unwrap();

    assert_eq!(probe.provider, Some("sendgrid"));
    assert_eq!(chain.circuit_state("sendgrid"), Some(CircuitState::Closed));
    for _ in 0..2 {
        assert_eq!(send(&chain, Uuid::new_v4()).await.unwrap().provider, Some("sendgrid"));
    }
}

#[tokio::test]
async fn a_half_open_circuit_lets_exactly_one_probe_through() {
    let (primary, secondary, clock) = fakes().await;
    answer(&primary, SENDGRID, ResponseTemplate::new(503), Some(3), 3).await;
    // The probe is slow: the other sends meanwhile must not reach the primary.
    answer(
        &primary,
        SENDGRID,
        ResponseTemplate::new(202).set_delay(Duration::from_millis(500)),
        None,
        1,
    )
    .await;
    answer(&secondary, MAILGUN, accepted_by_mailgun(), None, 3 + 4).await;
    let chain = chain(&primary, &secondary, &clock);
    for _ in 0..3 {
        send(&chain, Uuid::new_v4()).await.unwrap();
    }
    clock.advance(COOL_DOWN);

    let results = futures::future::join_all((0..5).map(|_| send(&chain, Uuid::new_v4()))).await;

    let by: Vec<_> = results.into_iter().map(|r| r.unwrap().provider.unwrap()).collect();
    assert_eq!(by.iter().filter(|p| **p == "sendgrid").count(), 1, "{by:?}");
    assert_eq!(by.iter().filter(|p| **p == "mailgun").count(), 4, "{by:?}");
}

#[tokio::test]
async fn when_every_provider_fails_the_chain_is_all_open_and_says_when_to_come_back() {
    let (primary, secondary, clock) = fakes().await;
    answer(&primary, SENDGRID, ResponseTemplate::new(503), None, 3).await;
    answer(&secondary, MAILGUN, ResponseTemplate::new(500), None, 3).await;
    let chain = chain(&primary, &secondary, &clock);
    for _ in 0..3 {
        let failure = send(&chain, Uuid::new_v4()).await.unwrap_err();
        assert!(failure.is_transient(), "{failure:?}");
        assert!(failure.message.contains("SendGrid answered 503") && failure.message.contains("Mailgun answered 500"));
    }

    assert!(chain.all_open());
    assert_eq!(chain.unavailable_until(), Some(clock.now() + COOL_DOWN));
    clock.advance(Duration::from_secs(10));
    let failure = send(&chain, Uuid::new_v4()).await.unwrap_err();

    // No request was made (the expectations above count three each).
    assert!(failure.is_transient(), "{failure:?}");
    assert_eq!(failure.retry_after, Some(COOL_DOWN - Duration::from_secs(10)));
    assert!(failure.message.contains("circuit open"), "{failure:?}");
}

#[tokio::test]
async fn a_permanent_refusal_is_not_failed_over() {
    let (primary, secondary, clock) = fakes().await;
    answer(
        &primary,
        SENDGRID,
        ResponseTemplate::new(400).set_body_json(json!({"errors": [{
            "message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email"}]})),
        None,
        1,
    )
    .await;
    answer(&secondary, MAILGUN, accepted_by_mailgun(), None, 0).await;
    let chain = chain(&primary, &secondary, &clock);

    let failure = send(&chain, Uuid::new_v4()).await.unwrap_err();

    assert_eq!(failure.kind, FailureKind::Recipient);
    assert_eq!(chain.circuit_state("sendgrid"), Some(CircuitState::Closed));
}

#[tokio::test]
async fn a_provider_out_of_tokens_is_skipped_without_counting_as_a_failure() {
    let (primary, secondary) = (MockServer::start().await, MockServer::start().await);
    answer(&primary, SENDGRID, ResponseTemplate::new(202), None, 1).await;
    answer(&secondary, MAILGUN, accepted_by_mailgun(), None, 1).await;
    let limiter = RateLimiter::new(
        &SecretUrl::new(test_support::redis_url()),
        &test_support::unique("rl"),
        "sendgrid",
        RateLimit {
            per_second: 0.1,
            burst: 1,
            daily_quota: None,
            max_wait: Duration::from_millis(50),
        },
        Duration::from_secs(2),
    )
    .unwrap();
    let chain = ProviderChain::builder("email")
        .breaker(breaker())
        .member(sendgrid(&primary), Some(limiter))
        .member(mailgun(&secondary), None)
        .build();

    let first = send(&chain, Uuid::new_v4()).await.unwrap();
    let second = send(&chain, Uuid::new_v4()).await.unwrap();

    assert_eq!((first.provider, second.provider), (Some("sendgrid"), Some("mailgun")));
    assert_eq!(chain.circuit_state("sendgrid"), Some(CircuitState::Closed));
}

#[tokio::test]
async fn a_single_provider_chain_passes_its_failure_through_unchanged() {
    let primary = MockServer::start().await;
    answer(
        &primary,
        SENDGRID,
        ResponseTemplate::new(429).insert_header("retry-after", "9"),
        None,
        1,
    )
    .await;
    let chain = ProviderChain::builder("email").member(sendgrid(&primary), None).build();

    let failure = send(&chain, Uuid::new_v4()).await.unwrap_err();

    assert_eq!(chain.name(), "sendgrid");
    assert!(failure.message.starts_with("SendGrid answered 429"), "{failure:?}");
    assert_eq!(failure.retry_after, Some(Duration::from_secs(9)));
}

#[test]
fn the_circuit_state_is_a_gauge_per_channel_and_provider() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let gauge = || {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(key, _, _, value)| {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                let ours = key.key().name() == "provider_circuit_state"
                    && labels.contains(&("channel".into(), "email".into()))
                    && labels.contains(&("provider".into(), "sendgrid".into()));
                match value {
                    DebugValue::Gauge(v) if ours => Some(v.into_inner()),
                    _ => None,
                }
            })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (primary, secondary, clock) = fakes().await;
            answer(&primary, SENDGRID, ResponseTemplate::new(503), Some(3), 3).await;
            answer(&primary, SENDGRID, ResponseTemplate::new(202), None, 1).await;
            answer(&secondary, MAILGUN, accepted_by_mailgun(), None, 3).await;
            let chain = chain(&primary, &secondary, &clock);
            assert_eq!(gauge(), Some(0.0));
            for _ in 0..3 {
                send(&chain, Uuid::new_v4()).await.unwrap();
            }
            assert_eq!(gauge(), Some(2.0));
            clock.advance(COOL_DOWN);
            send(&chain, Uuid::new_v4()).await.unwrap();
            assert_eq!(gauge(), Some(0.0));
        });
    });
}
