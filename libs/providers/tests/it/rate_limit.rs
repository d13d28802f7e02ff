//! The Redis token bucket against the real Redis (`TEST_REDIS_URL`, default
//! 127.0.0.1:6379), each test with a key prefix of its own.

use std::{sync::Arc, time::Duration};

use notify_kit::settings::SecretUrl;
use notify_providers::rate_limit::{RateLimit, RateLimiter, Take};

fn limit(per_second: f64) -> RateLimit {
    RateLimit {
        per_second,
        burst: 1,
        daily_quota: None,
        max_wait: Duration::from_secs(5),
    }
}

fn limiter(prefix: &str, limit: RateLimit) -> RateLimiter {
    RateLimiter::new(
        &SecretUrl::new(test_support::redis_url()),
        prefix,
        "sendgrid",
        limit,
        Duration::from_secs(2),
    )
    .unwrap()
}

#[tokio::test]
async fn two_instances_sharing_a_bucket_never_grant_more_than_r_in_any_second() {
    const R: usize = 5;
    const PER_INSTANCE: usize = 10;
    let prefix = test_support::unique("rl");
    // Two limiters with their own connections, as two worker processes would have.
    let instances = [
        Arc::new(limiter(&prefix, limit(R as f64))),
        Arc::new(limiter(&prefix, limit(R as f64))),
    ];

    let tasks: Vec<_> = instances
        .iter()
        .map(|l| {
            let l = l.clone();
            tokio::spawn(async move {
                let mut granted_at = Vec::new();
                for _ in 0..PER_INSTANCE {
                    match l.acquire().await {
                        Ok(Take::Granted(Some(at))) => granted_at.push(at),
                        other => panic!("expected a grant from Redis, got {other:?}"),
                    }
                }
                granted_at
            })
        })
        .collect();
    let mut grants = Vec::new();
    for task in tasks {
        grants.extend(task.await.unwrap());
    }

    grants.sort_unstable();
    assert_eq!(grants.len(), 2 * PER_INSTANCE);
    // Any R + 1 consecutive grants span at least a second (by the Redis server's clock).
    for window in grants.windows(R + 1) {
        assert!(
            window[R] - window[0] >= 1000,
            "{} grants within {} ms: {grants:?}",
            R + 1,
            window[R] - window[0]
        );
    }
    // And the limit is not much stricter than asked: 20 grants at 5/s take 3.8 s (half the
    // rate would take 7.6 s; the slack is for a loaded machine).
    let span = grants[grants.len() - 1] - grants[0];
    assert!(span < 6000, "{span} ms for {} grants", grants.len());
}

#[tokio::test]
async fn an_empty_bucket_says_how_long_until_the_next_token() {
    let l = limiter(&test_support::unique("rl"), limit(2.0));

    assert!(matches!(l.try_take().await, Take::Granted(Some(_))));
    let Take::Wait(wait) = l.try_take().await else {
        panic!("the second take should wait")
    };

    // 1/R minus the time between the two takes.
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
}

#[tokio::test]
async fn a_wait_longer_than_the_bound_is_returned_instead_of_waited() {
    let l = limiter(
        &test_support::unique("rl"),
        RateLimit {
            max_wait: Duration::from_millis(100),
            ..limit(0.5)
        },
    );

    assert!(l.acquire().await.is_ok());
    let started = std::time::Instant::now();
    let wait = l.acquire().await.unwrap_err();

    assert!(wait > Duration::from_millis(1900), "{wait:?}");
    assert!(started.elapsed() < Duration::from_millis(500), "it waited");
}

#[tokio::test]
async fn a_spent_daily_quota_waits_for_the_next_utc_day() {
    let l = limiter(
        &test_support::unique("rl"),
        RateLimit {
            daily_quota: Some(3),
            burst: 10,
            ..limit(1000.0)
        },
    );

    for _ in 0..3 {
        assert!(matches!(l.try_take().await, Take::Granted(Some(_))));
    }
    let Take::QuotaSpent(wait) = l.try_take().await else {
        panic!("the fourth take should be over the quota")
    };

    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(86_400), "{wait:?}");
    assert!(l.acquire().await.is_err(), "a spent quota is not waited for");
}

#[tokio::test]
async fn without_redis_the_limiter_lets_messages_through() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let l = RateLimiter::new(
        &SecretUrl::new(format!("redis://127.0.0.1:{port}")),
        "rl-down",
        "sendgrid",
        limit(1.0),
        Duration::from_millis(200),
    )
    .unwrap();

    for _ in 0..3 {
        assert_eq!(l.try_take().await, Take::Granted(None));
    }
}
