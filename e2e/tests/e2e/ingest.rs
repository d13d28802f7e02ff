//! Internal producers end to end: the producer library publishes requests to
//! `notifications.requests`, the real `ingest` binary accepts them with the gateway's rules
//! (identity, validation, references, idempotency per producer), and from there the path is
//! the API's: relay → worker → SMTP, statuses through the projector, `GET` through the gateway.

use std::{collections::HashMap, time::Duration};

use notify_intake::{PRODUCER_AUDIENCE, SCOPE_PRODUCE};
use notify_kafka::headers;
use notify_kit::auth::{JwtIssuer, TokenUse};
use notify_producer::{ProducerSettings, RequestProducer};
use notify_schemas::{registry::SchemaRegistry, wire, Channel, IngestRequest, NOTIFICATION_STATUS};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use serde_json::json;
use uuid::Uuid;

use crate::harness::{counts, Stack, Tiers};

const T: Duration = Duration::from_secs(90);

/// A producer token for `subject`, as the platform team would issue it.
fn producer_token(subject: &str, scopes: &[&str]) -> String {
    let mut auth = test_support::auth_settings();
    auth.audience = PRODUCER_AUDIENCE.into();
    JwtIssuer::new(&auth)
        .unwrap()
        .issue(subject, TokenUse::Service, scopes, Duration::from_secs(600))
        .unwrap()
}

async fn producer(s: &Stack, token: &str) -> RequestProducer {
    RequestProducer::connect(&ProducerSettings {
        kafka: test_support::kafka_settings(&s.prefix),
        schema_registry_url: test_support::registry_url(),
        token: token.to_string().into(),
    })
    .await
    .unwrap()
}

fn request(user: Uuid, request_id: &str, name: &str) -> IngestRequest {
    IngestRequest {
        request_id: request_id.into(),
        notification_type: Channel::Email,
        user_id: user.to_string(),
        template_code: "welcome_email".into(),
        variables: json!({"name": name, "link": "https://x.test"}).to_string(),
        priority: 5,
        metadata: "{}".into(),
        correlation_id: Some(format!("corr-{request_id}")),
    }
}

/// A raw producer, for records the library would never write.
fn raw_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", test_support::kafka_bootstrap())
        .set("broker.address.family", "v4")
        .create()
        .unwrap()
}

async fn send_raw(p: &FutureProducer, topic: &str, key: &str, payload: &[u8], token: Option<&str>) {
    let mut h = OwnedHeaders::new().insert(Header {
        key: headers::REQUEST_ID,
        value: Some(key),
    });
    if let Some(t) = token {
        h = h.insert(Header {
            key: headers::PRODUCER_TOKEN,
            value: Some(t),
        });
    }
    p.send(
        FutureRecord::to(topic).key(key).payload(payload).headers(h),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}

/// `ingest_requests_total` per outcome, from the service's `/metrics`.
async fn outcomes(s: &Stack, url: &str) -> HashMap<String, f64> {
    let Ok(resp) = s.http.get(format!("{url}/metrics")).send().await else {
        return HashMap::new();
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("ingest_requests_total{"))
        .filter_map(|l| {
            let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?.to_string();
            Some((outcome, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

async fn notification_ids(s: &Stack, producer: &str) -> HashMap<String, Vec<Uuid>> {
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT request_id, id FROM notifications WHERE caller = $1 ORDER BY created_at")
            .bind(producer)
            .fetch_all(&s.db.pool)
            .await
            .unwrap();
    let mut by_request: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (r, id) in rows {
        by_request.entry(r).or_default().push(id);
    }
    by_request
}

#[tokio::test]
async fn produced_requests_are_delivered_once_and_invalid_ones_dead_lettered_with_their_reason() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let ada = s
        .create_user("ada@example.com", None, json!({"email": true, "push": false}))
        .await;
    let opted_out = s
        .create_user("out@example.com", None, json!({"email": false, "push": true}))
        .await;
    s.add_email_worker().await;
    let mut ingest = s.ingest(&[]);
    ingest.start_healthy().await;

    let token = producer_token("billing", &[SCOPE_PRODUCE]);
    let p = producer(&s, &token).await;
    let topic = p.topic().to_string();

    // Four valid distinct requests, two of them sent twice, one for an opted-out user…
    for (id, name) in [("r-1", "Ada"), ("r-2", "Bea"), ("r-3", "Cy")] {
        let valid = notify_intake::parse_record(&request(ada, id, name)).unwrap();
        p.send(&valid.request, valid.correlation_id.as_ref()).await.unwrap();
    }
    // The operator's way: `notifyctl send` (the same library, a token it signs for `billing`).
    let user = ada.to_string();
    let run = s
        .notifyctl(&[
            "send",
            "--producer",
            "billing",
            "--type",
            "email",
            "--user",
            &user,
            "--template",
            "welcome_email",
            "--var",
            "name=Di",
            "--var",
            "link=https://x.test",
            "--request-id",
            "r-4",
            "--correlation-id",
            "corr-r-4",
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("request r-4 published"), "{run:?}");
    p.send_record(&request(ada, "r-1", "Ada")).await.unwrap();
    p.send_record(&request(ada, "r-2", "Bea")).await.unwrap();
    p.send_record(&request(opted_out, "r-5", "Ed")).await.unwrap();
    // …and invalid ones, each for its own reason.
    let mut bad_user = request(ada, "bad-user", "X");
    bad_user.user_id = "not-a-uuid".into();
    let mut bad_vars = request(ada, "bad-vars", "X");
    bad_vars.variables = "{not json".into();
    let unknown_user = request(Uuid::new_v4(), "unknown-user", "X");
    let mut unknown_template = request(ada, "unknown-template", "X");
    unknown_template.template_code = "no_such_template".into();
    let reused = request(ada, "r-3", "Someone else");
    for r in [&bad_user, &bad_vars, &unknown_user, &unknown_template, &reused] {
        p.send_record(r).await.unwrap();
    }
    let raw = raw_producer();
    let registry = SchemaRegistry::new(&test_support::registry_url()).unwrap();
    let status_schema = registry.latest(NOTIFICATION_STATUS.subject).await.unwrap();
    let request_schema = registry
        .latest(notify_schemas::NOTIFICATION_REQUEST.subject)
        .await
        .unwrap();
    let good_bytes = wire::encode(
        &request_schema.schema,
        request_schema.id,
        &request(ada, "no-token", "X"),
    )
    .unwrap();
    send_raw(&raw, &topic, "no-token", &good_bytes, None).await;
    let api_token = test_support::service_token("billing", &[SCOPE_PRODUCE]);
    send_raw(&raw, &topic, "api-token", &good_bytes, Some(&api_token)).await;
    let no_scope = producer_token("billing", &[]);
    send_raw(&raw, &topic, "no-scope", &good_bytes, Some(&no_scope)).await;
    send_raw(&raw, &topic, "garbage", b"definitely not avro", Some(&token)).await;
    let status_event = notify_schemas::NotificationStatusChanged {
        notification_id: notify_schemas::ids::NotificationId::new_v7(),
        channel: Channel::Email,
        status: notify_schemas::DeliveryStatus::Sent,
        attempt: 1,
        occurred_at: 0,
        error: None,
        provider: None,
        correlation_id: "c".into(),
        template_version: None,
        language: None,
        source: "worker".into(),
    };
    let wrong = wire::encode(&status_schema.schema, status_schema.id, &status_event).unwrap();
    send_raw(&raw, &topic, "wrong-schema", &wrong, Some(&token)).await;
    let published = 4 + 3 + 5 + 5;
    let invalid = 5 + 5;

    // Every record is settled: 5 accepted, 2 duplicates, 10 dead letters.
    let url = ingest.url();
    let settled = test_support::wait_for("every request settled", T, || async {
        let o = outcomes(&s, &url).await;
        (o.values().sum::<f64>() as usize == published).then_some(o)
    })
    .await;
    assert_eq!(settled.get("accepted").copied(), Some(5.0), "{settled:?}");
    assert_eq!(settled.get("duplicate").copied(), Some(2.0), "{settled:?}");
    assert_eq!(
        settled.get("dead_lettered").copied(),
        Some(invalid as f64),
        "{settled:?}"
    );

    // Exactly one notification per (producer, request_id); the valid ones delivered once, the
    // opted-out one skipped, all visible through the status API.
    let ids = notification_ids(&s, "billing").await;
    let mut requests: Vec<&String> = ids.keys().collect();
    requests.sort();
    assert_eq!(requests, ["r-1", "r-2", "r-3", "r-4", "r-5"]);
    assert!(ids.values().all(|v| v.len() == 1), "{ids:?}");
    for r in ["r-1", "r-2", "r-3", "r-4"] {
        let id = ids[r][0];
        let n = s.wait_status(id, "sent", T).await;
        assert_eq!(n["request_id"], r);
        assert_eq!(n["correlation_id"], format!("corr-{r}"));
    }
    let n = s.wait_status(ids["r-5"][0], "skipped", T).await;
    assert!(n["last_error"].as_str().unwrap().contains("opted out"), "{n}");
    let mails = s.smtp.wait_for(4, T).await;
    let per_message = counts(&s.smtp.message_ids());
    assert_eq!(mails.len(), 4, "one mail per valid distinct request");
    for r in ["r-1", "r-2", "r-3", "r-4"] {
        assert_eq!(
            per_message.get(&format!("<{}@notify.test>", ids[r][0])),
            Some(&1),
            "{r}"
        );
    }
    let r3 = s.notification(ids["r-3"][0]).await;
    assert_eq!(r3["template_code"], "welcome_email");

    // The invalid ones wait in the requests' dead-letter topic with their reason.
    let dlt = s.records(&["notifications.requests.dlt"], invalid).await;
    assert_eq!(dlt.len(), invalid);
    let by_key: HashMap<String, &test_support::kafka::Record> =
        dlt.iter().map(|r| (r.key.clone().unwrap_or_default(), r)).collect();
    let reason = |key: &str| -> (String, String) {
        let r = by_key
            .get(key)
            .unwrap_or_else(|| panic!("no dead letter for {key}: {by_key:?}"));
        assert!(!r.headers.contains_key(headers::PRODUCER_TOKEN), "the token stays out");
        assert_eq!(r.headers[headers::ORIGINAL_TOPIC], topic);
        (
            r.headers[headers::ERROR_CLASS].clone(),
            r.headers[headers::ERROR_MESSAGE].clone(),
        )
    };
    let expect = |key: &str, class: &str, words: &str| {
        let (c, m) = reason(key);
        assert_eq!(c, class, "{key}: {m}");
        assert!(m.contains(words), "{key}: `{m}` lacks `{words}`");
    };
    // Library records are keyed by their user id; raw ones by their name.
    expect("not-a-uuid", "permanent", "user_id: must be a UUID");
    expect("no-token", "permanent", "x-producer-token header is missing");
    expect("api-token", "permanent", "audience");
    expect("no-scope", "permanent", "notifications:produce");
    expect("garbage", "poison", "wire format");
    expect("wrong-schema", "poison", "wrong schema");
    expect(&unknown_user.user_id, "permanent", "user_id: no such user");
    let ada_letters: Vec<String> = dlt
        .iter()
        .filter(|r| r.key.as_deref() == Some(ada.to_string().as_str()))
        .map(|r| r.headers[headers::ERROR_MESSAGE].clone())
        .collect();
    assert_eq!(ada_letters.len(), 3, "{ada_letters:?}");
    for words in [
        "variables: must be a JSON object",
        "template_code: no such template",
        "already used",
    ] {
        assert!(
            ada_letters.iter().any(|m| m.contains(words)),
            "{words}: {ada_letters:?}"
        );
    }
    assert!(ingest.terminate(), "ingest exits cleanly on SIGTERM");
}

#[tokio::test]
async fn an_ingest_killed_mid_batch_loses_nothing_and_creates_no_duplicate() {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let ada = s
        .create_user("ada@example.com", None, json!({"email": true, "push": false}))
        .await;
    let token = producer_token("crm", &[SCOPE_PRODUCE]);
    let p = producer(&s, &token).await;
    let total = 400usize;
    // The topics exist before the ingest first starts (the deploy step creates them).
    let kafka = test_support::kafka_settings(&s.prefix);
    let topics = kafka.topics();
    notify_kafka::ensure_topics(&kafka, &[topics.producer_requests(), topics.producer_requests_dlt()])
        .await
        .unwrap();
    // A backlog, so the ingest has a batch in hand when it is killed.
    for i in 0..total {
        p.send_record(&request(ada, &format!("k-{i}"), "Ada")).await.unwrap();
    }
    let pool = s.db.pool.clone();
    let count = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notifications WHERE caller = 'crm'")
                .fetch_one(&pool)
                .await
                .unwrap() as usize
        }
    };
    let env = [
        ("APP_CONSUMER_INSTANCE_ID", "ingest-0".to_string()),
        ("APP_INGEST_CONCURRENCY", "2".to_string()),
    ];
    let mut ingest = s.ingest(&env);
    ingest.start();
    test_support::wait_for("the ingest to accept a first request", T, || async {
        (count().await > 0).then_some(())
    })
    .await;
    ingest.kill();
    let at_kill = count().await;
    assert!(
        at_kill > 0 && at_kill < total,
        "killed mid-run: {at_kill} of {total} accepted"
    );

    let mut ingest = s.ingest(&env);
    ingest.start_healthy().await;
    s.add_email_worker().await;
    test_support::wait_for("every request accepted after the restart", T, || async {
        (count().await == total).then_some(())
    })
    .await;
    let ids = notification_ids(&s, "crm").await;
    assert_eq!(ids.len(), total, "nothing lost");
    assert!(ids.values().all(|v| v.len() == 1), "no duplicate notification");
    let mails = s.smtp.wait_for(total, Duration::from_secs(180)).await;
    assert_eq!(mails.len(), total);
    let per_message = counts(&s.smtp.message_ids());
    for v in ids.values() {
        assert_eq!(per_message.get(&format!("<{}@notify.test>", v[0])), Some(&1));
    }
    // The restarted ingest has read and committed the whole topic (re-read records
    // included): still exactly one notification per request.
    let group = format!("{}ingest", s.prefix);
    let topic = p.topic().to_string();
    test_support::wait_for("the ingest group to have committed the whole topic", T, || {
        let (group, topic) = (group.clone(), topic.clone());
        async move {
            let lag = tokio::task::spawn_blocking(move || group_lag(&group, &topic))
                .await
                .unwrap();
            (lag == Some(0)).then_some(())
        }
    })
    .await;
    assert_eq!(count().await, total);
    let ids = notification_ids(&s, "crm").await;
    assert!(ids.values().all(|v| v.len() == 1), "no duplicate notification");
    assert!(ingest.terminate());
}

/// Records of `topic` the consumer group has not committed yet (`None` until it committed
/// on every partition).
fn group_lag(group: &str, topic: &str) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", test_support::kafka_bootstrap())
        .set("group.id", group)
        .set("broker.address.family", "v4")
        .set("enable.auto.commit", "false")
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
    let mut lag = 0;
    for p in partitions {
        let (_, high) = c.fetch_watermarks(topic, p, Duration::from_secs(5)).ok()?;
        let done = match committed.find_partition(topic, p)?.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ if high == 0 => 0,
            _ => return None,
        };
        lag += high - done;
    }
    Some(lag)
}
