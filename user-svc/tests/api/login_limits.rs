//! The login guard: lockouts per account and per address with a growing delay, failing
//! closed without Redis, and a bounded hashing queue that a flood cannot fill for everyone.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};
use user_svc::password::HashingParams;

use crate::helpers::{assert_error_envelope, spawn_app_with, spec_body, TestApp};

const PASSWORD: &str = "correct horse battery staple";

/// `POST /api/v1/auth/login` as sent from `address` (through one trusted proxy).
async fn login_from(app: &TestApp, address: &str, email: &str, password: &str) -> (StatusCode, HeaderMap, Value) {
    let resp = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let v = resp.json().await.unwrap();
    (status, headers, v)
}

fn retry_after(h: &HeaderMap) -> u64 {
    h.get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After in {h:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_against_the_right_password() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_account = 3;
        s.login.lockout_base = Duration::from_secs(60);
        s.login.trusted_proxy_hops = 1;
    })
    .await;
    app.create_user("dora@example.com").await;
    for i in 0..3 {
        let (status, _, _) = login_from(&app, &format!("10.0.0.{i}"), "dora@example.com", "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let (status, headers, v) = login_from(&app, "10.0.1.1", "dora@example.com", PASSWORD).await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_error_envelope(&v, "too_many_requests");
    assert!((55..=60).contains(&retry_after(&headers)), "{headers:?}");
}

#[tokio::test]
async fn an_unknown_address_locks_like_a_known_one() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_account = 2;
        s.login.lockout_base = Duration::from_secs(60);
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            app.login("nobody@example.com", "guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login("nobody@example.com", "guess").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_lock_grows_with_each_failure_past_the_threshold() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_account = 1;
        s.login.lockout_base = Duration::from_secs(1);
    })
    .await;
    app.create_user("eve@example.com").await;

    assert_eq!(app.login("eve@example.com", "guess").await.0, StatusCode::UNAUTHORIZED);
    let (status, v) = app.login("eve@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");

    // Once the first lock (1 s) is over, the next failure locks for twice as long.
    test_support::wait_for("the first lock to end", Duration::from_secs(5), || async {
        let (status, _, _) = login_from(&app, "", "eve@example.com", "guess").await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let (status, headers, _) = login_from(&app, "", "eve@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&headers), 2);
}

#[tokio::test]
async fn a_locked_account_does_not_lock_another_and_a_success_clears_the_count() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_account = 3;
        s.login.lockout_base = Duration::from_secs(60);
    })
    .await;
    app.create_user("fay@example.com").await;
    app.create_user("gus@example.com").await;
    // Two failures, a success, two failures: never three in a row, never locked.
    for _ in 0..2 {
        assert_eq!(app.login("gus@example.com", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("gus@example.com", PASSWORD).await.0, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(app.login("gus@example.com", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("gus@example.com", PASSWORD).await.0, StatusCode::OK);

    for _ in 0..3 {
        app.login("fay@example.com", "guess").await;
    }
    assert_eq!(
        app.login("fay@example.com", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(app.login("gus@example.com", PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_address_that_fails_on_many_accounts_is_locked_while_other_addresses_are_not() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_address = 3;
        s.login.lockout_base = Duration::from_secs(60);
        s.login.trusted_proxy_hops = 1;
    })
    .await;
    app.create_user("hal@example.com").await;
    for i in 0..3 {
        let (status, _, _) = login_from(&app, "203.0.113.7", &format!("u{i}@example.com"), "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let (status, _, _) = login_from(&app, "203.0.113.7", "hal@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A forged entry in front of the proxy's own does not escape the lock...
    let (status, _, _) = login_from(&app, "198.51.100.1, 203.0.113.7", "hal@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...while another client is not held back.
    let (status, _, v) = login_from(&app, "198.51.100.1", "hal@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn without_redis_logins_are_refused_with_503_while_sign_ups_still_work() {
    let app = spawn_app_with(|s| {
        s.login.redis_url =
            notify_kit::settings::SecretUrl::new(format!("redis://127.0.0.1:{}", test_support::process::free_port()));
    })
    .await;
    app.create_user("ida@example.com").await;

    let (status, headers, v) = login_from(&app, "", "ida@example.com", PASSWORD).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "fails closed: {v}");
    assert_error_envelope(&v, "unavailable");
    assert!(retry_after(&headers) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_on_one_account_leaves_room_for_another_login_and_a_sign_up() {
    let app = spawn_app_with(|s| {
        // A real cost, so that the flood is work; the lockout out of the way, so that the
        // flood reaches the hashing queue.
        s.password_hashing = HashingParams {
            memory_kib: 8_192,
            iterations: 2,
            parallelism: 1,
        };
        s.login.max_failures_per_account = 1_000_000;
        s.login.max_failures_per_address = 1_000_000;
        s.login.max_concurrent = 4;
        s.login.max_concurrent_per_account = 1;
        s.login.max_waiting = 8;
        s.login.queue_timeout = Duration::from_millis(500);
        s.open_registration = true;
    })
    .await;
    app.create_user("jon@example.com").await;
    app.create_user("kim@example.com").await;

    // What one login costs here, unhurried: the bound below is counted in these.
    let started = Instant::now();
    assert_eq!(app.login("kim@example.com", PASSWORD).await.0, StatusCode::OK);
    let one_login = started.elapsed();

    // 60 wrong-password logins for one account at once: without a bound, 60 hashes would
    // queue ahead of every other login and sign-up (30 logins' time on two threads).
    let (answered, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood: Vec<_> = (0..60)
        .map(|_| {
            let (client, url) = (app.client.clone(), format!("{}/api/v1/auth/login", app.address));
            let (answered, busy) = (answered.clone(), busy.clone());
            tokio::spawn(async move {
                let body = json!({"email": "jon@example.com", "password": "guess"});
                let status = client.post(&url).json(&body).send().await.unwrap().status();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    busy.fetch_add(1, Ordering::Relaxed);
                }
                answered.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    test_support::wait_for("the flood to reach the service", Duration::from_secs(30), || async {
        (answered.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;

    let sign_up = spec_body("lee@example.com");
    let started = Instant::now();
    let (login, signup) = tokio::join!(
        app.login("kim@example.com", PASSWORD),
        app.post("/api/v1/users/", None, &sign_up)
    );
    let took = started.elapsed();
    for f in flood {
        f.await.unwrap();
    }

    assert_eq!(login.0, StatusCode::OK, "{}", login.1);
    assert_eq!(signup.0, StatusCode::CREATED, "{}", signup.1);
    let bound = one_login * 8 + Duration::from_millis(500);
    assert!(
        took < bound,
        "the login and the sign-up took {took:?}, over {bound:?} (one login alone: {one_login:?})"
    );
    assert!(busy.load(Ordering::Relaxed) > 0, "the flood was refused (503) in part");
}
