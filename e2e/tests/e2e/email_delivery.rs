//! The delivery path end to end with the real binaries: gateway → outbox → relay → Kafka →
//! email-worker → SMTP server, and status back through the status topic and the projector.

use std::time::Duration;

use crate::harness::{counts, history, statuses, Stack, Tiers};
use notify_kafka::headers;
use serde_json::json;
use test_support::smtp::Mode;

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_accepted_email_is_rendered_sent_and_reported_delivered() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s
        .create_user("ada@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.add_email_worker().await;

    let id = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "Ada <3", "link": "https://x.test/go"}),
            "happy-1",
            1,
        )
        .await;
    let mails = s.smtp.wait_for(1, T).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["ada@example.com".to_string()]);
    assert_eq!(mail.subject.as_deref(), Some("Welcome, Ada <3"));
    assert_eq!(
        mail.text_body.as_deref().map(str::trim),
        Some("Hello Ada <3, start at https://x.test/go")
    );
    assert!(
        mail.html_body.as_deref().unwrap().contains("<b>Ada &lt;3</b>"),
        "HTML escapes variables"
    );
    assert_eq!(mail.message_id.as_deref(), Some(format!("<{id}@notify.test>").as_str()));

    let n = s.wait_status(id, "sent", T).await;
    assert_eq!(n["attempts"], 1);
    assert_eq!(statuses(&n), vec!["pending", "sent"]);

    // A delivery report from the provider moves it to `delivered`.
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/v1/email/status/", s.gateway.url()),
            Some(&json!({"notification_id": id, "status": "delivered", "timestamp": "2030-01-01T10:00:00Z", "error": null})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let n = s.wait_status(id, "delivered", T).await;
    assert_eq!(n["history"].as_array().unwrap().last().unwrap()["status"], "delivered");

    // A late report of an earlier step does not move it back.
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/v1/email/status/", s.gateway.url()),
            Some(&json!({"notification_id": id, "status": "sent", "timestamp": "2030-01-01T11:00:00Z"})),
        )
        .await;
    assert_eq!(status, 202);
    test_support::wait_for("the late report in the history", T, || async {
        let n = s.notification(id).await;
        (n["history"].as_array().unwrap().len() == 4).then_some(())
    })
    .await;
    assert_eq!(s.notification(id).await["status"], "delivered");
}

#[tokio::test]
async fn smtp_failures_climb_the_retry_tiers_then_reach_the_dead_letter_topic() {
    let mut s = Stack::start(Tiers {
        first_delay_ms: 1000,
        first_attempts: 1,
        second_delay_ms: 1500,
        second_attempts: 1,
    })
    .await;
    s.welcome_template().await;
    let user = s
        .create_user("grace@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.smtp.set_mode(Mode::TransientFailure);
    s.add_email_worker().await;

    let id = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "Grace", "link": "l"}),
            "retry-1",
            5,
        )
        .await;
    let n = s.wait_status(id, "dead_lettered", T).await;
    assert_eq!(
        history(&n),
        vec![
            ("pending".into(), 0),
            ("retrying".into(), 1),
            ("retrying".into(), 2),
            ("dead_lettered".into(), 3)
        ],
        "each attempt shows in the history"
    );
    assert!(n["last_error"].as_str().unwrap().contains("451"), "{n}");
    assert_eq!(s.smtp.messages().len(), 0);
    assert!(s.smtp.refused() >= 3);

    let retry1 = s.records(&["notifications.email.retry-30s"], 1).await;
    let retry2 = s.records(&["notifications.email.retry-5m"], 1).await;
    let dlt = s.records(&["notifications.email.dlt"], 1).await;
    assert_eq!((retry1.len(), retry2.len(), dlt.len()), (1, 1, 1));
    let d = &dlt[0];
    assert_eq!(d.headers["x-attempt"], "3");
    assert_eq!(d.headers["x-error-class"], "exhausted");
    assert!(d.headers["x-error-message"].contains("451"));
    assert_eq!(
        d.headers["x-original-topic"],
        format!("{}notifications.email", s.prefix)
    );
    assert!(d.headers.contains_key("x-original-partition") && d.headers.contains_key("x-original-offset"));
    assert_eq!(d.headers["x-consumer-group"], format!("{}email-worker", s.prefix));
    assert!(d.headers["x-worker-version"].starts_with("notify-worker/"));
    assert!(d.headers.contains_key("x-first-failure-at") && d.headers.contains_key("x-dead-lettered-at"));
    assert_eq!(d.headers[headers::NOTIFICATION_ID], id.to_string());
    assert!(d.headers.contains_key(headers::CORRELATION_ID) && d.headers.contains_key(headers::TRACEPARENT));
    assert_eq!(d.key.as_deref(), Some(user.to_string().as_str()));
    // The dead letter carries the original value, byte for byte.
    let original = s.records(&["notifications.email"], 1).await;
    assert_eq!(d.payload, original[0].payload);
    // Each retry record was due after its delay.
    let due: i64 = retry1[0].headers["x-retry-due-at"].parse().unwrap();
    let first_failure: i64 = retry1[0].headers["x-first-failure-at"].parse().unwrap();
    assert!(due - first_failure >= 1000);
}

#[tokio::test]
async fn a_retried_record_waits_for_its_due_time_while_fresh_records_flow() {
    let mut s = Stack::start(Tiers {
        first_delay_ms: 6000,
        first_attempts: 1,
        second_delay_ms: 1000,
        second_attempts: 1,
    })
    .await;
    s.welcome_template().await;
    let a = s
        .create_user("a@example.com", None, json!({"email": true, "push": false}))
        .await;
    let b = s
        .create_user("b@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.add_email_worker().await;

    s.smtp.set_mode(Mode::TransientFailure);
    let slow = s
        .send(
            "email",
            a,
            "welcome_email",
            json!({"name": "A", "link": "l"}),
            "due-a",
            5,
        )
        .await;
    let n = s.wait_status(slow, "retrying", T).await;
    let failed_at = chrono_ms(&n["history"][1]["occurred_at"]);
    s.smtp.set_mode(Mode::Accept);

    let fresh = s
        .send(
            "email",
            b,
            "welcome_email",
            json!({"name": "B", "link": "l"}),
            "due-b",
            5,
        )
        .await;
    let fresh_sent = s.wait_status(fresh, "sent", T).await;
    let fresh_at = chrono_ms(&fresh_sent["history"][1]["occurred_at"]);
    assert!(
        fresh_at < failed_at + 6000,
        "the fresh record did not wait behind the retry"
    );

    let n = s.wait_status(slow, "sent", T).await;
    let retried_at = chrono_ms(&n["history"][2]["occurred_at"]);
    assert!(
        retried_at >= failed_at + 6000,
        "retried {}ms after the failure: before its due time",
        retried_at - failed_at
    );
    let ids = s.smtp.message_ids();
    assert_eq!(
        ids,
        vec![format!("<{fresh}@notify.test>"), format!("<{slow}@notify.test>")]
    );
}

fn chrono_ms(v: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn a_permanent_failure_goes_straight_to_the_dead_letter_topic() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s
        .create_user("c@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.add_email_worker().await;
    // `link` is missing: the template cannot be rendered, retrying will not help.
    let id = s
        .send("email", user, "welcome_email", json!({"name": "C"}), "perm-1", 5)
        .await;
    let n = s.wait_status(id, "dead_lettered", T).await;
    assert_eq!(n["attempts"], 1);
    assert!(
        n["last_error"].as_str().unwrap().contains("link"),
        "names the missing variable: {n}"
    );
    let dlt = s.records(&["notifications.email.dlt"], 1).await;
    assert_eq!(dlt.len(), 1);
    assert_eq!(dlt[0].headers["x-error-class"], "permanent");
    assert!(s.records(&["notifications.email.retry-30s"], 0).await.is_empty());
    assert!(s.smtp.messages().is_empty());
}

#[tokio::test]
async fn an_undecodable_record_goes_to_the_dead_letter_topic_with_its_bytes_intact() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut s = Stack::start(Tiers::default()).await;
    s.add_email_worker().await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", test_support::kafka_bootstrap())
        .create()
        .unwrap();
    let garbage = b"\x00\x00\x00\x00\x01this is not avro".to_vec();
    producer
        .send(
            FutureRecord::to(&format!("{}notifications.email", s.prefix))
                .key("k")
                .payload(&garbage),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let dlt = s.records(&["notifications.email.dlt"], 1).await;
    assert_eq!(dlt.len(), 1);
    assert_eq!(dlt[0].payload, garbage);
    assert_eq!(dlt[0].headers["x-error-class"], "poison");
    assert_eq!(dlt[0].key.as_deref(), Some("k"));
}

#[tokio::test]
async fn opted_out_and_deleted_users_are_skipped_without_sending() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let opted_out = s
        .create_user("out@example.com", None, json!({"email": false, "push": true}))
        .await;
    let deleted = s
        .create_user("gone@example.com", None, json!({"email": true, "push": true}))
        .await;
    let vars = json!({"name": "x", "link": "l"});
    let a = s
        .send("email", opted_out, "welcome_email", vars.clone(), "skip-1", 5)
        .await;
    let b = s.send("email", deleted, "welcome_email", vars, "skip-2", 5).await;
    // Deleted after it was accepted and queued: the worker checks at delivery time.
    let url = format!("{}/api/v1/users/{deleted}", s.user_svc.url());
    let (status, _) = s.call(reqwest::Method::DELETE, url, None).await;
    assert!(status == 200 || status == 204);
    s.add_email_worker().await;
    let na = s.wait_status(a, "skipped", T).await;
    let nb = s.wait_status(b, "skipped", T).await;
    assert!(na["last_error"].as_str().unwrap().contains("opted out"));
    assert!(nb["last_error"].as_str().unwrap().contains("not found"));
    assert!(s.smtp.messages().is_empty());
}

#[tokio::test]
async fn a_worker_killed_repeatedly_loses_nothing_and_duplicates_stay_bounded() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let users: Vec<_> = futures::future::join_all((0..5).map(|i| {
        let email = format!("k{i}@example.com");
        let s = &s;
        async move { s.create_user(&email, None, json!({"email": true, "push": false})).await }
    }))
    .await;
    const N: usize = 150;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            s.send(
                "email",
                users[i % users.len()],
                "welcome_email",
                json!({"name": "n", "link": "l"}),
                &format!("kill-{i}"),
                5,
            )
            .await,
        );
    }
    let w = s.add_email_worker_with(Some("email-0")).await;
    let mut kills = 0;
    for round in 0..3 {
        let target = (round + 1) * N / 4;
        let sent_before = s.smtp.messages().len();
        test_support::wait_for("deliveries to progress", Duration::from_secs(120), || async {
            (s.smtp.messages().len() >= target).then_some(())
        })
        .await;
        s.workers[w].kill();
        kills += 1;
        // Read after the kill, so an upper bound of what was delivered when it landed.
        let delivered_at_kill = counts(&s.smtp.message_ids()).len();
        let sent_by_this_run = s.smtp.messages().len() - sent_before;
        eprintln!("kill {kills}: {delivered_at_kill}/{N} delivered, {sent_by_this_run} mails from the killed run");
        assert!(
            sent_by_this_run > 0,
            "kill {kills}: the killed run had sent nothing yet"
        );
        assert!(
            delivered_at_kill < N,
            "kill {kills} landed after every notification was delivered, not mid-run"
        );
        s.workers[w].start_healthy().await;
    }
    test_support::wait_for(
        "every notification to reach the SMTP server",
        Duration::from_secs(120),
        || async { (counts(&s.smtp.message_ids()).len() >= N).then_some(()) },
    )
    .await;
    let message_ids = s.smtp.message_ids();
    let by_id = counts(&message_ids);
    for id in &ids {
        assert!(
            by_id.contains_key(&format!("<{id}@notify.test>")),
            "notification {id} was never sent"
        );
    }
    let duplicates = message_ids.len() - by_id.len();
    eprintln!(
        "{kills} kills: {} mails for {N} notifications, {duplicates} duplicates",
        message_ids.len()
    );
    assert_eq!(by_id.len(), N);
    // A duplicate needs a kill between a send's SMTP 250 and its ledger write: per kill at
    // most one per attempt in progress, i.e. per user here (5 users, 8 attempt slots).
    let in_progress_at_most = users.len();
    assert!(
        duplicates <= kills * in_progress_at_most,
        "{duplicates} duplicates for {kills} kills"
    );
}

/// Sends the welcome email to `users` in turn, request ids `{tag}-{i}` for `i` in `range`.
async fn send_welcomes(s: &Stack, users: &[uuid::Uuid], range: std::ops::Range<usize>, tag: &str) {
    for i in range {
        s.send(
            "email",
            users[i % users.len()],
            "welcome_email",
            json!({"name": "n", "link": "l"}),
            &format!("{tag}-{i}"),
            5,
        )
        .await;
    }
}

#[tokio::test]
async fn two_workers_share_the_load_and_stopping_one_loses_nothing() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    // Many keys, so each of the 3 partitions holds some (a partition without records would
    // leave its owner idle).
    let users: Vec<_> = futures::future::join_all((0..24).map(|i| {
        let email = format!("w{i}@example.com");
        let s = &s;
        async move { s.create_user(&email, None, json!({"email": true, "push": false})).await }
    }))
    .await;
    let first = s.add_email_worker().await;
    let second = s.add_email_worker().await;
    let mut sent = 0;
    // Both workers deliver: rounds go on until each has sent some (the second one's share
    // starts once the group has rebalanced).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (first_sent, second_sent) = loop {
        send_welcomes(&s, &users, sent..sent + 30, "two").await;
        sent += 30;
        let total = sent;
        s.smtp.wait_for(total, T).await;
        let (a, b) = test_support::wait_for("the workers' counters to account for every mail", T, || async {
            let (a, b) = (s.worker_sent(first).await?, s.worker_sent(second).await?);
            (a + b >= total as f64).then_some((a, b))
        })
        .await;
        eprintln!("{total} sent: worker {first} delivered {a}, worker {second} {b}");
        if a > 0.0 && b > 0.0 {
            break (a, b);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only one worker delivered {total} notifications: the load was not shared"
        );
    };
    let phase_one = sent;
    eprintln!("first phase: {phase_one} notifications, {first_sent} + {second_sent} deliveries");
    assert!(s.workers[first].terminate(), "a worker stops cleanly on SIGTERM");
    send_welcomes(&s, &users, sent..sent + 45, "two").await;
    let total = sent + 45;
    s.smtp.wait_for(total, Duration::from_secs(90)).await;
    let ids = s.smtp.message_ids();
    assert_eq!(
        counts(&ids).len(),
        total,
        "every notification delivered once the group rebalanced"
    );
    // The remaining worker delivered everything sent after the first one stopped.
    test_support::wait_for(
        "the remaining worker's counter to count the second phase",
        T,
        || async {
            let now = s.worker_sent(second).await?;
            (now - second_sent >= (total - phase_one) as f64).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_high_priority_notification_overtakes_a_backlog() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s
        .create_user("p@example.com", None, json!({"email": true, "push": false}))
        .await;
    const BACKLOG: usize = 200;
    for i in 0..BACKLOG {
        s.send(
            "email",
            user,
            "welcome_email",
            json!({"name": "n", "link": "l"}),
            &format!("bulk-{i}"),
            3,
        )
        .await;
    }
    let urgent = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "n", "link": "l"}),
            "urgent",
            10,
        )
        .await;
    // Everything is on the topics before the worker starts.
    s.wait_outbox_published(T).await;
    s.add_email_worker().await;
    let started = std::time::Instant::now();
    s.smtp.wait_for(BACKLOG + 1, Duration::from_secs(120)).await;
    eprintln!(
        "{} deliveries from a backlog in {:?} (debug build)",
        BACKLOG + 1,
        started.elapsed()
    );
    let ids = s.smtp.message_ids();
    let position = ids
        .iter()
        .position(|m| *m == format!("<{urgent}@notify.test>"))
        .unwrap();
    eprintln!(
        "the priority notification was delivered {}th of {}",
        position + 1,
        ids.len()
    );
    assert!(position < BACKLOG / 4, "delivered {position}th, behind the backlog");
}

#[tokio::test]
async fn each_users_notifications_are_delivered_in_order_while_users_proceed_side_by_side() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    const USERS: usize = 5;
    const EACH: usize = 30;
    let mut users = Vec::new();
    for u in 0..USERS {
        users.push(
            s.create_user(
                &format!("order{u}@example.com"),
                None,
                json!({"email": true, "push": false}),
            )
            .await,
        );
    }
    // Interleaved, so every partition holds several users' records.
    for seq in 0..EACH {
        for (u, user) in users.iter().enumerate() {
            s.send(
                "email",
                *user,
                "welcome_email",
                json!({"name": "n", "link": format!("seq-{seq}")}),
                &format!("order-{u}-{seq}"),
                3,
            )
            .await;
        }
    }
    s.wait_outbox_published(T).await;
    s.add_email_worker().await;
    let mails = s.smtp.wait_for(USERS * EACH, Duration::from_secs(120)).await;
    assert_eq!(mails.len(), USERS * EACH, "each exactly once");
    for u in 0..USERS {
        let to = format!("order{u}@example.com");
        let seqs: Vec<usize> = mails
            .iter()
            .filter(|m| m.to == vec![to.clone()])
            .map(|m| {
                let body = m.text_body.as_deref().unwrap();
                body.rsplit("seq-").next().unwrap().trim().parse().unwrap()
            })
            .collect();
        assert_eq!(seqs, (0..EACH).collect::<Vec<_>>(), "{to} received out of order");
    }
}

#[tokio::test]
async fn a_template_service_outage_delays_delivery_but_loses_nothing_and_spends_no_attempt() {
    let mut s = Stack::start(Tiers {
        first_delay_ms: 1000,
        first_attempts: 5,
        second_delay_ms: 2000,
        second_attempts: 5,
    })
    .await;
    s.welcome_template().await;
    let user = s
        .create_user("o@example.com", None, json!({"email": true, "push": false}))
        .await;
    let w = s.add_email_worker().await;
    s.template_svc.kill();
    // Let the cached template expire (the workers' TTL is 1 s in tests).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let id = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "O", "link": "l"}),
            "outage-1",
            5,
        )
        .await;
    // The outage hits every record: the worker holds it and pauses, no attempt is spent.
    s.wait_worker_paused(w, true, T).await;
    assert_eq!(statuses(&s.notification(id).await), vec!["pending".to_string()]);
    s.template_svc.start_healthy().await;
    let n = s.wait_status(id, "sent", T).await;
    assert_eq!(statuses(&n), vec!["pending".to_string(), "sent".to_string()], "{n}");
    assert_eq!(s.smtp.messages().len(), 1);
    s.wait_worker_paused(w, false, T).await;
}

#[tokio::test]
async fn the_user_language_picks_the_template_translation() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let body = json!({"name": "Marie", "email": "marie@example.com", "preferences": {"email": true, "push": false}, "password": "correct horse battery staple", "language": "fr"});
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/v1/users/", s.user_svc.url()),
            Some(&body),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let user = v["data"]["id"].as_str().unwrap().parse().unwrap();
    s.add_email_worker().await;
    let id = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "Marie", "link": "l"}),
            "fr-1",
            5,
        )
        .await;
    let mails = s.smtp.wait_for(1, T).await;
    assert_eq!(mails[0].subject.as_deref(), Some("Bienvenue, Marie"));
    let n = s.wait_status(id, "sent", T).await;
    assert_eq!(n["language"], "fr", "the notification records the language used");
    assert_eq!(n["template_version"], 1);
}

#[tokio::test]
async fn the_gateway_rejects_unknown_users_and_templates_up_front() {
    let s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s
        .create_user("known@example.com", None, json!({"email": true, "push": false}))
        .await;
    let send = |user: uuid::Uuid, template: &'static str, channel: &'static str, rid: &'static str| {
        let body = json!({"notification_type": channel, "user_id": user, "template_code": template, "variables": {}, "request_id": rid});
        let s = &s;
        async move {
            s.call(
                reqwest::Method::POST,
                format!("{}/api/v1/notifications/", s.gateway.url()),
                Some(&body),
            )
            .await
        }
    };
    let (status, v) = send(uuid::Uuid::new_v4(), "welcome_email", "email", "ref-1").await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["details"][0]["field"], "user_id");
    let (status, v) = send(user, "no_such_template", "email", "ref-2").await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["details"][0]["field"], "template_code");
    let (status, v) = send(user, "welcome_email", "push", "ref-3").await;
    assert_eq!(status, 422, "an email template for a push notification: {v}");
    let (status, _) = send(user, "welcome_email", "email", "ref-4").await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_suppressed_address_is_skipped_until_lifted_and_the_one_click_link_unsubscribes() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s
        .create_user("Bounce@example.com", None, json!({"email": true, "push": false}))
        .await;
    s.add_email_worker().await;
    let vars = json!({"name": "B", "link": "l"});
    let entry = format!("{}/api/v1/suppressions/email/bounce@example.com", s.user_svc.url());

    // Suppressed (as a provider webhook would): the next email is skipped, not sent.
    let (status, v) = s
        .call(
            reqwest::Method::PUT,
            entry.clone(),
            Some(&json!({"reason": "hard_bounce", "source": "sendgrid", "detail": "550 5.1.1"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let skipped = s.send("email", user, "welcome_email", vars.clone(), "supp-1", 5).await;
    let n = s.wait_status(skipped, "skipped", T).await;
    let reason = n["last_error"].as_str().unwrap();
    assert!(
        reason.starts_with("address suppressed: hard_bounce (sendgrid, "),
        "{reason}"
    );
    assert!(s.smtp.messages().is_empty());

    // Lifted: the next one is delivered, with the one-click unsubscribe headers.
    let (status, _) = s.call(reqwest::Method::DELETE, entry, None).await;
    assert_eq!(status, 204);
    let sent = s.send("email", user, "welcome_email", vars.clone(), "supp-2", 5).await;
    let mails = s.smtp.wait_for(1, T).await;
    s.wait_status(sent, "sent", T).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.header("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
    let header = mail.header("List-Unsubscribe").expect("a List-Unsubscribe header");
    let link = header
        .trim()
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not <url>: {header}"));
    assert!(
        link.starts_with(&format!("{}/api/v1/unsubscribe?token=", s.user_svc.url())),
        "{link}"
    );

    // What a mail client does with it: the one-click POST turns the preference off...
    let resp = s
        .http
        .post(link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // ... so the next notification is skipped.
    let after = s.send("email", user, "welcome_email", vars, "supp-3", 5).await;
    let n = s.wait_status(after, "skipped", T).await;
    assert!(n["last_error"].as_str().unwrap().contains("opted out"), "{n}");
    assert_eq!(s.smtp.messages().len(), 1);
}
