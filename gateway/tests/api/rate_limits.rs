//! The API's rate limits: per caller and per recipient, shared by every gateway instance
//! through Redis, failing open when Redis is away.

use std::collections::HashMap;

use gateway::rate_limits::RateLimitSettings;
use notify_kit::{auth::SCOPE_SEND, rate_limit::BucketLimit, settings::SecretUrl};
use reqwest::StatusCode;
use serde_json::Value;
use test_support::{service_token, unique};

use crate::helpers::{assert_error_envelope, body, spawn_app_with, TestApp};

/// Limits in the machine's Redis under a prefix of this test's own: generous unless changed.
fn limits(prefix: &str) -> RateLimitSettings {
    RateLimitSettings {
        redis_url: SecretUrl::new(test_support::redis_url()),
        redis_timeout: std::time::Duration::from_millis(250),
        prefix: prefix.to_string(),
        service: BucketLimit::new(1000.0, 1000),
        user: BucketLimit::new(1000.0, 1000),
        callers: HashMap::new(),
        recipient: BucketLimit::new(1000.0, 1000),
    }
}

async fn gateway(limits: RateLimitSettings) -> TestApp {
    spawn_app_with(|s| s.rate_limits = Some(limits)).await
}

fn to_user(request_id: &str, user: &str) -> Value {
    let mut b = body(request_id);
    b["user_id"] = user.into();
    b
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> u64 {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_caller_over_its_limit_gets_429_with_retry_after_and_ratelimit_headers() {
    let mut l = limits(&unique("rl"));
    // Two at once, then one every 100 s: the third is refused.
    l.service = BucketLimit::new(0.01, 2);
    let app = gateway(l).await;
    let token = service_token("billing", &[SCOPE_SEND]);

    assert_eq!(app.post(Some(&token), &body("r1")).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.post(Some(&token), &body("r2")).await.0, StatusCode::ACCEPTED);
    let (status, headers, v) = app.post(Some(&token), &body("r3")).await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_error_envelope(&v, "too_many_requests");
    let retry_after = header(&headers, "retry-after");
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&headers, "ratelimit-limit"), 2);
    assert_eq!(header(&headers, "ratelimit-remaining"), 0);
    assert!(header(&headers, "ratelimit-reset") >= retry_after);
    assert_eq!(
        app.count("notifications").await,
        2,
        "the refused request stored nothing"
    );
}

#[tokio::test]
async fn one_callers_limit_does_not_hold_back_another_caller() {
    let mut l = limits(&unique("rl"));
    l.service = BucketLimit::new(0.01, 1);
    let app = gateway(l).await;
    let billing = service_token("billing", &[SCOPE_SEND]);
    let marketing = service_token("marketing", &[SCOPE_SEND]);

    assert_eq!(app.post(Some(&billing), &body("b1")).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        app.post(Some(&billing), &body("b2")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    assert_eq!(app.post(Some(&marketing), &body("m1")).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_caller_with_its_own_limit_is_held_to_it_instead_of_its_class() {
    let mut l = limits(&unique("rl"));
    l.service = BucketLimit::new(0.01, 1);
    l.callers.insert("bulk".into(), BucketLimit::new(0.01, 3));
    let app = gateway(l).await;
    let bulk = service_token("bulk", &[SCOPE_SEND]);

    for i in 0..3 {
        let (status, _, v) = app.post(Some(&bulk), &body(&format!("k{i}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    }
    let (status, headers, _) = app.post(Some(&bulk), &body("k3")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "ratelimit-limit"), 3);
}

#[tokio::test]
async fn a_recipient_over_its_limit_is_refused_whoever_sends_while_other_users_are_not() {
    let mut l = limits(&unique("rl"));
    l.recipient = BucketLimit::new(0.01, 2);
    let app = gateway(l).await;
    let user = "6c1b2a3d-0000-4000-8000-00000000000a";
    let other = "6c1b2a3d-0000-4000-8000-00000000000b";
    let billing = service_token("billing", &[SCOPE_SEND]);
    let marketing = service_token("marketing", &[SCOPE_SEND]);

    assert_eq!(
        app.post(Some(&billing), &to_user("u1", user)).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.post(Some(&marketing), &to_user("u2", user)).await.0,
        StatusCode::ACCEPTED
    );
    let (status, headers, v) = app.post(Some(&billing), &to_user("u3", user)).await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_error_envelope(&v, "too_many_requests");
    assert!(v["message"].as_str().unwrap().contains("user"), "{v}");
    assert_eq!(header(&headers, "ratelimit-limit"), 2);
    assert_eq!(
        app.post(Some(&billing), &to_user("o1", other)).await.0,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn two_gateway_instances_share_one_callers_bucket() {
    let prefix = unique("rl");
    let mut l = limits(&prefix);
    l.service = BucketLimit::new(0.01, 2);
    let first = gateway(l.clone()).await;
    let second = gateway(l).await;
    let token = service_token("billing", &[SCOPE_SEND]);

    assert_eq!(first.post(Some(&token), &body("s1")).await.0, StatusCode::ACCEPTED);
    assert_eq!(second.post(Some(&token), &body("s2")).await.0, StatusCode::ACCEPTED);

    assert_eq!(
        first.post(Some(&token), &body("s3")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        second.post(Some(&token), &body("s4")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn reading_a_notification_counts_against_the_callers_limit() {
    let mut l = limits(&unique("rl"));
    l.service = BucketLimit::new(0.01, 2);
    let app = gateway(l).await;
    let token = service_token("billing", &[SCOPE_SEND]);
    let (_, _, v) = app.post(Some(&token), &body("g1")).await;
    let id = v["data"]["notification_id"].as_str().unwrap().to_string();

    let path = format!("/api/v1/notifications/{id}");
    assert_eq!(app.get(&path, Some(&token)).await.0, StatusCode::OK);
    let (status, v) = app.get(&path, Some(&token)).await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
}

#[tokio::test]
async fn with_redis_unreachable_requests_pass_and_the_failure_is_counted() {
    let mut l = limits(&unique("rl"));
    // Nothing listens there.
    l.redis_url = SecretUrl::new(format!("redis://127.0.0.1:{}", test_support::process::free_port()));
    l.service = BucketLimit::new(0.01, 1);
    l.recipient = BucketLimit::new(0.01, 1);
    let app = gateway(l).await;
    let token = service_token("billing", &[SCOPE_SEND]);

    for i in 0..3 {
        let (status, _, v) = app.post(Some(&token), &body(&format!("f{i}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "fails open: {v}");
    }

    let metrics = app.metrics().await;
    let failures: f64 = metrics
        .lines()
        .find(|l| l.starts_with("api_rate_limiter_errors_total{scope=\"caller\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no caller failure count in\n{metrics}"));
    assert!(failures >= 3.0, "{failures}");
}
