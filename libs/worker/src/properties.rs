//! Property tests of the worker's pure parts: retry routing ([`crate::decision::decide`]: attempt
//! n of a transient failure goes to the tier the policy says, then the dead-letter topic), the
//! headers of retry and dead-letter records ([`crate::routing`]), and a fuzz harness of record
//! decoding ([`crate::pipeline::decode`]: any bytes at all are refused as poison, never a panic
//! and never an outage).
//!
//! Cases per property: `PROPTEST_CASES` when set (the long run, e.g. `PROPTEST_CASES=20000`),
//! else the small default below.

use std::{collections::HashMap, time::Duration};

use notify_schemas::{
    headers::{self as h, ErrorClass},
    ids::NotificationId,
    topics::Topics,
    Channel, DeliveryStatus,
};
use proptest::prelude::*;
use rdkafka::message::{Message, OwnedMessage, Timestamp};

use crate::{
    decision::{decide, Attempted, Policy, Verdict},
    pipeline::{Failure, Interrupted, Outcome},
    routing::{failure_headers, headers_of, to_kafka, FailureInfo, Position, MAX_ERROR_MESSAGE_CHARS},
    settings::Tier,
};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TIER_NAMES: [&str; 4] = ["retry-a", "retry-b", "retry-c", "retry-d"];
const NOW: i64 = 1_700_000_000_000;

fn tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec((0..4u32, 0..600_000u64), 0..=TIER_NAMES.len()).prop_map(|ts| {
        ts.into_iter()
            .enumerate()
            .map(|(i, (attempts, delay_ms))| Tier {
                name: TIER_NAMES[i],
                delay: Duration::from_millis(delay_ms),
                attempts,
            })
            .collect()
    })
}

/// The tier attempt `n` (1-based) belongs to, counted the way the policy reads: the first
/// tier takes attempts 1..=a1, the second the next a2, and so on; `None` past them all.
fn tier_for(tiers: &[Tier], n: u32) -> Option<&Tier> {
    let mut left = n;
    for tier in tiers {
        if left <= tier.attempts {
            return Some(tier);
        }
        left -= tier.attempts;
    }
    None
}

fn header_map() -> impl Strategy<Value = HashMap<String, String>> {
    let known = prop::sample::select(vec![
        h::NOTIFICATION_ID,
        h::CORRELATION_ID,
        h::TRACEPARENT,
        h::EVENT_TYPE,
        h::ATTEMPT,
        h::FIRST_FAILURE_AT,
        h::RETRY_DUE_AT,
        h::ORIGINAL_TOPIC,
        h::ORIGINAL_PARTITION,
        h::ORIGINAL_OFFSET,
        h::CONSUMER_GROUP,
        h::ERROR_CLASS,
        h::ERROR_MESSAGE,
        h::WORKER_VERSION,
        h::DEAD_LETTERED_AT,
        h::REPLAY_COUNT,
    ])
    .prop_map(str::to_string);
    prop::collection::hash_map(prop_oneof![known, "[a-z-]{1,12}"], "\\PC{0,20}", 0..10)
}

fn failure() -> impl Strategy<Value = Failure> {
    (
        prop::sample::select(vec![ErrorClass::Transient, ErrorClass::Permanent, ErrorClass::Poison]),
        "\\PC{0,1200}",
        prop::option::of(0..900_000u64),
    )
        .prop_map(|(class, message, retry_after)| Failure {
            class,
            message,
            retry_after: retry_after.map(Duration::from_millis),
        })
}

/// The headers of a failure record as a map (they are sorted and unique by name).
fn as_map(headers: &[(String, String)]) -> HashMap<&str, &str> {
    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

const FAILURE_HEADERS: [&str; 7] = [
    h::ATTEMPT,
    h::RETRY_DUE_AT,
    h::ERROR_CLASS,
    h::ERROR_MESSAGE,
    h::CONSUMER_GROUP,
    h::WORKER_VERSION,
    h::DEAD_LETTERED_AT,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Attempt n of a transient failure goes to the tier whose attempts it falls in, due after
    /// that tier's delay (or the provider's longer `Retry-After`); past every tier it is
    /// dead-lettered as `exhausted`. Any other class is dead-lettered as it is, at any attempt.
    #[test]
    fn attempt_n_goes_where_the_policy_says(
        tiers in tiers(),
        attempt in 1..20u32,
        failure in failure(),
        old in header_map(),
        channel in prop::sample::select(vec![Channel::Email, Channel::Push]),
        known_id in any::<bool>(),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        payload in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let topics = Topics::new("t.");
        let policy = Policy {
            channel,
            topics: &topics,
            tiers: &tiers,
            group: "t.group",
            provider: "prov",
            worker_version: "w/1",
        };
        let source = topics.requests(channel, false);
        let id = known_id.then(NotificationId::new_v7);
        let record = Attempted {
            position: Position { topic: &source, partition: 1, offset: 7 },
            key: key.as_deref(),
            payload: &payload,
            headers: &old,
            attempt,
            notification_id: id,
            correlation_id: "corr",
        };
        let d = decide(&policy, &record, &Outcome::Failed(failure.clone()), NOW);
        let r = d.failure_record.clone().expect("a failure always has a follow-up record");
        let hs = as_map(&r.headers);
        let expected_tier = (failure.class == ErrorClass::Transient).then(|| tier_for(&tiers, attempt)).flatten();
        match expected_tier {
            Some(tier) => {
                let wait = failure.retry_after.map_or(tier.delay, |r| r.max(tier.delay));
                let due = NOW + i64::try_from(wait.as_millis()).unwrap();
                prop_assert_eq!(&d.verdict, &Verdict::Retried { tier: tier.name, due_at_ms: due });
                prop_assert_eq!(&r.topic, &topics.retry(channel, tier.name));
                prop_assert_eq!(hs.get(h::RETRY_DUE_AT).map(|v| v.to_string()), Some(due.to_string()));
                prop_assert_eq!(hs.get(h::DEAD_LETTERED_AT), None);
                prop_assert_eq!(hs.get(h::ERROR_CLASS).copied(), Some("transient"));
            }
            None => {
                let class = if failure.class == ErrorClass::Transient { ErrorClass::Exhausted } else { failure.class };
                prop_assert_eq!(&d.verdict, &Verdict::DeadLettered { class });
                prop_assert_eq!(&r.topic, &topics.dlt(channel));
                prop_assert_eq!(hs.get(h::DEAD_LETTERED_AT).map(|v| v.to_string()), Some(NOW.to_string()));
                prop_assert_eq!(hs.get(h::RETRY_DUE_AT), None);
                prop_assert_eq!(hs.get(h::ERROR_CLASS).copied(), Some(class.as_str()));
            }
        }
        // The record itself travels unchanged.
        prop_assert_eq!(r.key.as_deref(), key.as_deref());
        prop_assert_eq!(&r.payload, &payload);
        prop_assert_eq!(hs.get(h::ATTEMPT).map(|v| v.to_string()), Some(attempt.to_string()));
        // A status event exactly when the notification is known.
        let expected_status = if expected_tier.is_some() { DeliveryStatus::Retrying } else { DeliveryStatus::DeadLettered };
        match (id, &d.status) {
            (Some(id), Some(s)) => {
                prop_assert_eq!(s.notification_id, id);
                prop_assert_eq!(s.status, expected_status);
                prop_assert_eq!(s.attempt, i32::try_from(attempt).unwrap());
                prop_assert_eq!(s.error.as_deref(), Some(failure.message.as_str()));
            }
            (None, None) => {}
            (id, status) => prop_assert!(false, "id {:?} but status {:?}", id, status),
        }
    }

    /// The attempts a policy allows before the dead-letter topic are exactly the sum of its
    /// tiers' attempts: a record retried again and again is dead-lettered after exactly that
    /// many, having visited the tiers in order.
    #[test]
    fn a_failing_record_climbs_the_tiers_in_order_then_is_exhausted(tiers in tiers()) {
        let topics = Topics::new("");
        let policy = Policy {
            channel: Channel::Email,
            topics: &topics,
            tiers: &tiers,
            group: "g",
            provider: "p",
            worker_version: "w",
        };
        let old = HashMap::new();
        let mut visited = Vec::new();
        let mut attempt = 1;
        loop {
            let record = Attempted {
                position: Position { topic: "x", partition: 0, offset: 0 },
                key: None,
                payload: b"",
                headers: &old,
                attempt,
                notification_id: None,
                correlation_id: "c",
            };
            let failure = Outcome::Failed(Failure::new(ErrorClass::Transient, "down"));
            match decide(&policy, &record, &failure, NOW).verdict {
                Verdict::Retried { tier, .. } => visited.push(tier),
                Verdict::DeadLettered { class } => {
                    prop_assert_eq!(class, ErrorClass::Exhausted);
                    break;
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            attempt += 1;
            prop_assert!(attempt < 100);
        }
        let budget: u32 = tiers.iter().map(|t| t.attempts).sum();
        prop_assert_eq!(attempt, budget + 1, "dead-lettered on the attempt after the budget");
        let expected: Vec<&str> = tiers
            .iter()
            .flat_map(|t| std::iter::repeat_n(t.name, t.attempts as usize))
            .collect();
        prop_assert_eq!(visited, expected);
    }

    /// Sent, skipped and held outcomes never produce a follow-up record; held ones no status.
    #[test]
    fn only_failures_produce_follow_up_records(
        attempt in 1..10u32,
        outcome in prop_oneof![
            Just(Outcome::Skipped { reason: "opted out".into() }),
            Just(Outcome::Sent { template_version: 1, language: "en".into(), sent_now: 1, rejected: vec![], devices: vec![], provider: None }),
            Just(Outcome::Unavailable(crate::pipeline::Outage { dependency: "user-svc", message: "down".into() })),
        ],
    ) {
        let topics = Topics::new("");
        let tiers = vec![Tier { name: TIER_NAMES[0], delay: Duration::from_secs(1), attempts: 1 }];
        let policy = Policy { channel: Channel::Push, topics: &topics, tiers: &tiers, group: "g", provider: "p", worker_version: "w" };
        let old = HashMap::new();
        let record = Attempted {
            position: Position { topic: "x", partition: 0, offset: 0 },
            key: None,
            payload: b"",
            headers: &old,
            attempt,
            notification_id: Some(NotificationId::new_v7()),
            correlation_id: "c",
        };
        let d = decide(&policy, &record, &outcome, NOW);
        prop_assert_eq!(d.failure_record, None);
        prop_assert_eq!(d.status.is_none(), matches!(d.verdict, Verdict::Held { .. }));
    }

    /// A failure record's headers: sorted and unique by name; the record's own headers kept
    /// (but the previous failure's); where it first came from and when it first failed kept
    /// from the first hop; this failure's attempt, class, group, version and a bounded
    /// message; due (retry) or dead-lettered, never both.
    #[test]
    fn failure_headers_keep_the_origin_and_describe_only_the_last_failure(
        old in header_map(),
        attempt in 1..50u32,
        class in prop::sample::select(ErrorClass::ALL.to_vec()),
        message in "\\PC{0,1500}",
        due in prop::option::of(any::<i64>()),
        partition in any::<i32>(),
        offset in any::<i64>(),
    ) {
        let from = Position { topic: "t.notifications.email", partition, offset };
        let info = FailureInfo {
            attempt,
            class,
            message: &message,
            group: "g",
            worker_version: "w/1",
            now_ms: NOW,
            due_at_ms: due,
        };
        let out = failure_headers(from, &old, &info);
        let mut names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        let sorted = { let mut s = names.clone(); s.sort_unstable(); s };
        prop_assert_eq!(&names, &sorted, "sorted by name");
        names.dedup();
        prop_assert_eq!(names.len(), out.len(), "one value per name");
        let hs = as_map(&out);
        for (k, v) in &old {
            if !FAILURE_HEADERS.contains(&k.as_str()) {
                prop_assert_eq!(hs.get(k.as_str()).copied(), Some(v.as_str()), "{} kept", k);
            }
        }
        for (name, fresh) in [
            (h::FIRST_FAILURE_AT, NOW.to_string()),
            (h::ORIGINAL_TOPIC, from.topic.to_string()),
            (h::ORIGINAL_PARTITION, partition.to_string()),
            (h::ORIGINAL_OFFSET, offset.to_string()),
        ] {
            let expected = old.get(name).cloned().unwrap_or(fresh);
            prop_assert_eq!(hs.get(name).copied(), Some(expected.as_str()), "{}", name);
        }
        prop_assert_eq!(hs.get(h::ATTEMPT).map(|v| v.to_string()), Some(attempt.to_string()));
        prop_assert_eq!(hs.get(h::ERROR_CLASS).copied(), Some(class.as_str()));
        prop_assert_eq!(hs.get(h::CONSUMER_GROUP).copied(), Some("g"));
        let m = hs.get(h::ERROR_MESSAGE).copied().unwrap_or_default();
        prop_assert!(m.chars().count() <= MAX_ERROR_MESSAGE_CHARS && message.starts_with(m));
        prop_assert_eq!(m.chars().count(), message.chars().count().min(MAX_ERROR_MESSAGE_CHARS));
        match due {
            Some(due) => {
                prop_assert_eq!(hs.get(h::RETRY_DUE_AT).map(|v| v.to_string()), Some(due.to_string()));
                prop_assert!(!hs.contains_key(h::DEAD_LETTERED_AT));
            }
            None => {
                prop_assert_eq!(hs.get(h::DEAD_LETTERED_AT).map(|v| v.to_string()), Some(NOW.to_string()));
                prop_assert!(!hs.contains_key(h::RETRY_DUE_AT));
            }
        }
        // Every failure-header value parses back as what was written.
        prop_assert_eq!(hs[h::ERROR_CLASS].parse::<ErrorClass>(), Ok(class));
        prop_assert_eq!(hs[h::ATTEMPT].parse::<u32>(), Ok(attempt));
    }

    /// Headers written with `to_kafka` read back with `headers_of` as they were.
    #[test]
    fn headers_survive_kafka(pairs in prop::collection::hash_map("[a-z-]{1,20}", "\\PC{0,40}", 0..12)) {
        let list: Vec<(String, String)> = pairs.clone().into_iter().collect();
        let msg = OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, Some(to_kafka(&list)));
        prop_assert_eq!(headers_of(&msg), pairs);
        prop_assert!(msg.headers().is_some());
    }

    /// Any header text parses as an error class exactly when it is one's name.
    #[test]
    fn error_classes_parse_from_their_names_only(raw in prop_oneof!["\\PC{0,12}", "[a-z]{4,10}"]) {
        let known = ErrorClass::ALL.iter().find(|c| c.as_str() == raw).copied();
        prop_assert_eq!(raw.parse::<ErrorClass>().ok(), known);
    }
}

/// Record decoding under arbitrary bytes: bare garbage, frames with a known schema id and a
/// garbage datum, and valid records cut short or with bytes flipped. Every outcome is either
/// a decoded record or a poison failure: never a panic, never an outage (the registry is up,
/// so an unknown id is poison too).
mod decode_fuzz {
    use std::sync::Arc;

    use notify_schemas::{parse_schema, registry::SchemaRegistry, wire, NotificationRequested, NOTIFICATION_REQUESTED};
    use wiremock::{
        matchers::{method, path},
        Mock, MockServer, ResponseTemplate,
    };

    use super::*;
    use crate::pipeline::decode;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A registry that knows schema id 1 (`NotificationRequested`) and answers 404 otherwise.
    async fn registry() -> (MockServer, SchemaRegistry) {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/schemas/ids/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "schema": NOTIFICATION_REQUESTED.schema
            })))
            .mount(&server)
            .await;
        let registry = SchemaRegistry::new(&server.uri()).unwrap();
        (server, registry)
    }

    fn valid_record() -> Vec<u8> {
        let schema = parse_schema(&NOTIFICATION_REQUESTED).unwrap();
        let event = NotificationRequested {
            notification_id: NotificationId::new_v7(),
            channel: Channel::Email,
            user_id: uuid::Uuid::nil().into(),
            template_code: "welcome_email".into(),
            variables_json: r#"{"name":"Zoë"}"#.into(),
            priority: 5,
            metadata_json: "{}".into(),
            request_id: "r-1".into(),
            caller: "c".into(),
            correlation_id: "corr".into(),
            requested_at: 1,
        };
        wire::encode(&schema, 1, &event).unwrap()
    }

    /// Arbitrary bytes, biased towards what gets deep into the decoder.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let valid = Arc::new(valid_record());
        let (v1, v2) = (valid.clone(), valid.clone());
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..256).prop_map(|datum| {
                let mut framed = vec![0, 0, 0, 0, 1];
                framed.extend(datum);
                framed
            }),
            (0..v1.len()).prop_map(move |n| v1[..n].to_vec()),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6).prop_map(move |flips| {
                let mut bytes = v2.to_vec();
                for (at, b) in flips {
                    // The frame stays valid: the datum is what is fuzzed.
                    let i = 5 + at.index(bytes.len() - 5);
                    bytes[i] = b;
                }
                bytes
            }),
        ]
    }

    #[test]
    fn arbitrary_bytes_decode_or_are_poison() {
        let rt = runtime();
        let (_server, registry) = rt.block_on(registry());
        let config = ProptestConfig::with_cases(cases(512));
        let mut runner = proptest::test_runner::TestRunner::new(config);
        let (decoded, poison) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
        runner
            .run(&payload(), |bytes| {
                match rt.block_on(decode(&registry, &bytes)) {
                    Ok(job) => {
                        decoded.set(decoded.get() + 1);
                        // What decodes is a whole, typed record: it encodes back to a frame
                        // that decodes to the same record.
                        let schema = parse_schema(&NOTIFICATION_REQUESTED).unwrap();
                        let again = wire::encode(&schema, 1, &job.event).unwrap();
                        let back: NotificationRequested = wire::decode(&schema, &again).unwrap();
                        prop_assert_eq!(back, job.event);
                    }
                    Err(Interrupted::Failed(f)) => {
                        poison.set(poison.get() + 1);
                        prop_assert_eq!(f.class, ErrorClass::Poison, "{}", f.message);
                        prop_assert!(!f.message.is_empty());
                    }
                    Err(Interrupted::Unavailable(o)) => {
                        prop_assert!(false, "an outage for bad bytes: {} {}", o.dependency, o.message);
                    }
                }
                Ok(())
            })
            .unwrap();
        eprintln!("decode fuzz: {} decoded, {} poison", decoded.get(), poison.get());
        assert!(poison.get() > 0, "the harness reached the error paths");
        // The valid record itself decodes.
        let job = rt
            .block_on(decode(&registry, &valid_record()))
            .expect("a valid record decodes");
        assert_eq!(job.event.template_code, "welcome_email");
    }
}
