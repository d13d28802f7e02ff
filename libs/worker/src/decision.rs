//! What an attempt's outcome leads to: the follow-up record (a retry tier or the dead-letter
//! topic) and the status event. [`decide`] is a pure function of the attempt, its outcome,
//! the retry policy and the clock, so every branch is tested without a broker; the consumer
//! only encodes, produces and commits what it returns.
//!
//! | outcome | follow-up record | status |
//! |---|---|---|
//! | sent (some targets may have rejected it) | none | `sent` (with the rejections as error; for push, every device's result: `devices: android fcm {id}: sent; web webpush {id}: gone, removed: …`) |
//! | skipped (deleted user, opted out, no device) | none | `skipped` with the reason |
//! | transient failure, a tier has attempts left | the tier's topic, due after its delay | `retrying` |
//! | transient failure, tiers used up | the dead-letter topic, class `exhausted` | `dead_lettered` |
//! | permanent failure | the dead-letter topic, class `permanent` | `dead_lettered` |
//! | poison record | the dead-letter topic, class `poison`, bytes intact | `dead_lettered` if the id is known |
//! | a dependency is down (ledger, user-svc, template-svc, registry) | none | none: held, attempted again once it answers |
//!
//! Every error text recorded (status event, failure headers) is [`redact`]ed first: no
//! recipient address or token reaches `last_error`, the history or the dead-letter headers.
//!
//! A status event needs the notification id: a record whose value cannot be decoded and whose
//! `notification-id` header is missing or not a UUID gets its dead letter, and no status.

use std::collections::HashMap;

use notify_schemas::{headers::ErrorClass, ids::NotificationId, topics::Topics, Channel, DeliveryStatus};

use crate::{
    pipeline::{device_summary, Failure, Outcome},
    redact::redact,
    routing::{failure_headers, FailureInfo, Position},
    settings::Tier,
    status_events::StatusUpdate,
};

/// The rules a worker applies to every attempt: where follow-ups go and what they say.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub channel: Channel,
    pub topics: &'a Topics,
    pub tiers: &'a [Tier],
    /// The consumer group (in the failure headers).
    pub group: &'a str,
    /// The provider's name (on the status event).
    pub provider: &'a str,
    /// This worker's `name/version` (in the failure headers).
    pub worker_version: &'a str,
}

/// The record that was attempted.
#[derive(Debug, Clone, Copy)]
pub struct Attempted<'a> {
    pub position: Position<'a>,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// Its headers as received, with this attempt's `traceparent` in place of the inbound one.
    pub headers: &'a HashMap<String, String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// From the decoded value, else from the `notification-id` header; `None` when neither
    /// holds a UUID.
    pub notification_id: Option<NotificationId>,
    pub correlation_id: &'a str,
}

/// A retry or dead-letter record: the original key and value with failure headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Sorted by name.
    pub headers: Vec<(String, String)>,
}

/// Where the attempt leaves the notification, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    Skipped,
    /// Moved to the tier whose topic suffix is `tier`, due at `due_at_ms`.
    Retried {
        tier: &'static str,
        due_at_ms: i64,
    },
    DeadLettered {
        class: ErrorClass,
    },
    /// Not attempted: `dependency` is down. No attempt is spent and nothing is produced; the
    /// consumer holds the record (and pauses its loop) until the dependency answers.
    Held {
        dependency: &'static str,
    },
}

impl Verdict {
    /// The `outcome` label of `worker_deliveries_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Retried { .. } => "retried",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Held { .. } => "held",
        }
    }
}

/// What to produce for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The retry or dead-letter record, produced (and acknowledged) before the status event,
    /// so a notification reported `retrying` or `dead_lettered` has its record on the topic.
    pub failure_record: Option<FailureRecord>,
    /// The status event; `None` when the notification id is unknown.
    pub status: Option<StatusUpdate>,
}

/// Decides what the `outcome` of attempt `record` leads to, at `now_ms`.
pub fn decide(policy: &Policy<'_>, record: &Attempted<'_>, outcome: &Outcome, now_ms: i64) -> Decision {
    let status = |status: DeliveryStatus, error: Option<String>| {
        record.notification_id.map(|notification_id| StatusUpdate {
            notification_id,
            status,
            attempt: i32::try_from(record.attempt).unwrap_or(i32::MAX),
            error,
            provider: Some(policy.provider.to_string()),
            correlation_id: record.correlation_id.to_string(),
            template_version: None,
            language: None,
        })
    };
    match outcome {
        Outcome::Sent {
            template_version,
            language,
            rejected,
            provider,
            devices,
            ..
        } => Decision {
            verdict: Verdict::Sent,
            failure_record: None,
            status: status(
                DeliveryStatus::Sent,
                if devices.is_empty() {
                    (!rejected.is_empty()).then(|| format!("rejected: {}", rejected.join("; ")))
                } else {
                    device_summary(devices)
                }
                .map(|summary| redact(&summary).into_owned()),
            )
            .map(|s| StatusUpdate {
                template_version: i32::try_from(*template_version).ok(),
                language: Some(language.clone()),
                provider: provider.clone().or(s.provider),
                ..s
            }),
        },
        Outcome::Unavailable(outage) => Decision {
            verdict: Verdict::Held {
                dependency: outage.dependency,
            },
            failure_record: None,
            status: None,
        },
        Outcome::Skipped { reason } => Decision {
            verdict: Verdict::Skipped,
            failure_record: None,
            status: status(DeliveryStatus::Skipped, Some(redact(reason).into_owned())),
        },
        Outcome::Failed(failure) => {
            let message = redact(&failure.message);
            let failure_record = |topic: String, class: ErrorClass, due_at_ms: Option<i64>| FailureRecord {
                topic,
                key: record.key.map(<[u8]>::to_vec),
                payload: record.payload.to_vec(),
                headers: failure_headers(
                    record.position,
                    record.headers,
                    &FailureInfo {
                        attempt: record.attempt,
                        class,
                        message: &message,
                        group: policy.group,
                        worker_version: policy.worker_version,
                        now_ms,
                        due_at_ms,
                    },
                ),
            };
            match route(policy.tiers, failure, record.attempt) {
                Route::Retry(tier) => {
                    let wait = failure.retry_after.map_or(tier.delay, |r| r.max(tier.delay));
                    let due_at_ms = now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                    Decision {
                        verdict: Verdict::Retried {
                            tier: tier.name,
                            due_at_ms,
                        },
                        failure_record: Some(failure_record(
                            policy.topics.retry(policy.channel, tier.name),
                            ErrorClass::Transient,
                            Some(due_at_ms),
                        )),
                        status: status(DeliveryStatus::Retrying, Some(message.clone().into_owned())),
                    }
                }
                Route::DeadLetter(class) => Decision {
                    verdict: Verdict::DeadLettered { class },
                    failure_record: Some(failure_record(policy.topics.dlt(policy.channel), class, None)),
                    status: status(DeliveryStatus::DeadLettered, Some(message.clone().into_owned())),
                },
            }
        }
    }
}

enum Route<'a> {
    Retry(&'a Tier),
    DeadLetter(ErrorClass),
}

/// A transient failure goes to the tier whose attempts `attempt` falls in, or is exhausted;
/// every other class goes to the dead-letter topic as it is.
fn route<'a>(tiers: &'a [Tier], failure: &Failure, attempt: u32) -> Route<'a> {
    if failure.class != ErrorClass::Transient {
        return Route::DeadLetter(failure.class);
    }
    let mut budget = 0u32;
    for tier in tiers {
        budget = budget.saturating_add(tier.attempts);
        if attempt <= budget {
            return Route::Retry(tier);
        }
    }
    Route::DeadLetter(ErrorClass::Exhausted)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use notify_schemas::headers as h;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn tiers(first: u32, second: u32) -> Vec<Tier> {
        vec![
            Tier {
                name: "retry-30s",
                delay: Duration::from_secs(30),
                attempts: first,
            },
            Tier {
                name: "retry-5m",
                delay: Duration::from_secs(300),
                attempts: second,
            },
        ]
    }

    struct Case {
        topics: Topics,
        tiers: Vec<Tier>,
        channel: Channel,
        headers: HashMap<String, String>,
        topic: String,
        id: Option<NotificationId>,
    }

    impl Case {
        fn new() -> Self {
            Self {
                topics: Topics::new("p."),
                tiers: tiers(3, 3),
                channel: Channel::Email,
                headers: HashMap::from([
                    (h::NOTIFICATION_ID.into(), "n".into()),
                    (h::CORRELATION_ID.into(), "corr-1".into()),
                    (h::TRACEPARENT.into(), "00-tp-01".into()),
                    (h::EVENT_TYPE.into(), "io.notify.events.NotificationRequested".into()),
                ]),
                topic: "p.notifications.email".into(),
                id: Some(NotificationId::new_v7()),
            }
        }

        fn decide(&self, attempt: u32, outcome: &Outcome) -> Decision {
            let policy = Policy {
                channel: self.channel,
                topics: &self.topics,
                tiers: &self.tiers,
                group: "p.email-worker",
                provider: "smtp",
                worker_version: "notify-worker/0.1.0",
            };
            let record = Attempted {
                position: Position {
                    topic: &self.topic,
                    partition: 2,
                    offset: 41,
                },
                key: Some(b"user-1"),
                payload: b"\x00\x00\x00\x00\x01avro",
                headers: &self.headers,
                attempt,
                notification_id: self.id,
                correlation_id: "corr-1",
            };
            decide(&policy, &record, outcome, NOW)
        }
    }

    fn failed(class: ErrorClass) -> Outcome {
        Outcome::Failed(Failure::new(class, format!("{class} failure")))
    }

    fn header<'a>(r: &'a FailureRecord, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_sent_notification_has_a_sent_status_and_no_follow_up_record() {
        let case = Case::new();
        let d = case.decide(
            1,
            &Outcome::Sent {
                template_version: 4,
                language: "de".into(),
                sent_now: 1,
                rejected: vec![],
                devices: vec![],
                provider: None,
            },
        );
        assert_eq!(d.verdict, Verdict::Sent);
        assert_eq!(d.failure_record, None);
        let s = d.status.expect("a status");
        assert_eq!(s.status, DeliveryStatus::Sent);
        assert_eq!(s.notification_id, case.id.unwrap());
        assert_eq!((s.template_version, s.language.as_deref()), (Some(4), Some("de")));
        assert_eq!((s.attempt, s.error, s.provider.as_deref()), (1, None, Some("smtp")));
        assert_eq!(s.correlation_id, "corr-1");
    }

    #[test]
    fn a_push_sent_to_some_devices_lists_every_device_result() {
        use crate::pipeline::{DeviceOutcome, DeviceReport};
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let device = |n, platform, provider, outcome| DeviceReport {
            device_id: id(n),
            platform,
            provider,
            outcome,
        };
        let d = Case::new().decide(
            1,
            &Outcome::Sent {
                template_version: 1,
                language: "en".into(),
                sent_now: 2,
                rejected: vec!["410".into()],
                devices: vec![
                    device(1, "android", "fcm", DeviceOutcome::Sent),
                    device(2, "ios", "fcm", DeviceOutcome::SentBefore),
                    device(3, "web", "webpush", DeviceOutcome::Gone("410".into())),
                ],
                provider: None,
            },
        );
        let s = d.status.unwrap();
        assert_eq!(s.status, DeliveryStatus::Sent);
        assert_eq!(
            s.error.as_deref(),
            Some(
                "devices: android fcm 00000000-0000-0000-0000-000000000001: sent; \
                 ios fcm 00000000-0000-0000-0000-000000000002: sent (earlier attempt); \
                 web webpush 00000000-0000-0000-0000-000000000003: gone, removed: 410"
            )
        );
        let all_sent = Case::new().decide(
            1,
            &Outcome::Sent {
                template_version: 1,
                language: "en".into(),
                sent_now: 1,
                rejected: vec![],
                devices: vec![device(1, "android", "fcm", DeviceOutcome::Sent)],
                provider: None,
            },
        );
        assert_eq!(
            all_sent.status.unwrap().error,
            None,
            "nothing to report when every device got it"
        );
    }

    #[test]
    fn a_notification_sent_to_some_devices_reports_the_rejected_ones() {
        let d = Case::new().decide(
            2,
            &Outcome::Sent {
                template_version: 1,
                language: "en".into(),
                sent_now: 1,
                rejected: vec!["token a unregistered".into(), "token b invalid".into()],
                devices: vec![],
                provider: None,
            },
        );
        let s = d.status.unwrap();
        assert_eq!(s.status, DeliveryStatus::Sent);
        assert_eq!(
            s.error.as_deref(),
            Some("rejected: token a unregistered; token b invalid")
        );
        assert_eq!(s.attempt, 2);
    }

    #[test]
    fn a_skipped_notification_reports_the_reason_and_writes_no_record() {
        let d = Case::new().decide(
            1,
            &Outcome::Skipped {
                reason: "recipient opted out of email".into(),
            },
        );
        assert_eq!(d.verdict, Verdict::Skipped);
        assert_eq!(d.failure_record, None);
        let s = d.status.unwrap();
        assert_eq!(s.status, DeliveryStatus::Skipped);
        assert_eq!(s.error.as_deref(), Some("recipient opted out of email"));
    }

    #[test]
    fn transient_failures_climb_the_tiers_in_order_then_are_exhausted() {
        let case = Case {
            tiers: tiers(2, 1),
            ..Case::new()
        };
        let routes: Vec<(String, Option<String>)> = (1..=4)
            .map(|attempt| {
                let d = case.decide(attempt, &failed(ErrorClass::Transient));
                let r = d.failure_record.unwrap();
                (r.topic.clone(), header(&r, h::ERROR_CLASS).map(str::to_string))
            })
            .collect();
        assert_eq!(
            routes,
            vec![
                ("p.notifications.email.retry-30s".into(), Some("transient".into())),
                ("p.notifications.email.retry-30s".into(), Some("transient".into())),
                ("p.notifications.email.retry-5m".into(), Some("transient".into())),
                ("p.notifications.email.dlt".into(), Some("exhausted".into())),
            ]
        );
    }

    #[test]
    fn a_retry_is_due_after_its_tiers_delay_and_reports_retrying() {
        let case = Case::new();
        let d = case.decide(4, &failed(ErrorClass::Transient));
        let due = NOW + 300_000;
        assert_eq!(
            d.verdict,
            Verdict::Retried {
                tier: "retry-5m",
                due_at_ms: due
            }
        );
        let r = d.failure_record.unwrap();
        assert_eq!(header(&r, h::RETRY_DUE_AT), Some(due.to_string().as_str()));
        assert_eq!(header(&r, h::DEAD_LETTERED_AT), None);
        assert_eq!(header(&r, h::ATTEMPT), Some("4"));
        let s = d.status.unwrap();
        assert_eq!(
            (s.status, s.error.as_deref()),
            (DeliveryStatus::Retrying, Some("transient failure"))
        );
    }

    #[test]
    fn a_providers_retry_after_longer_than_the_tier_delays_the_retry() {
        let case = Case::new();
        let with = |secs: u64| {
            let mut f = Failure::new(ErrorClass::Transient, "429 too many requests");
            f.retry_after = Some(Duration::from_secs(secs));
            case.decide(1, &Outcome::Failed(f)).verdict
        };
        assert_eq!(
            with(120),
            Verdict::Retried {
                tier: "retry-30s",
                due_at_ms: NOW + 120_000
            },
            "a longer Retry-After wins"
        );
        assert_eq!(
            with(5),
            Verdict::Retried {
                tier: "retry-30s",
                due_at_ms: NOW + 30_000
            },
            "a shorter one does not shorten the tier"
        );
    }

    #[test]
    fn the_status_names_the_provider_that_delivered() {
        let d = Case::new().decide(
            1,
            &Outcome::Sent {
                template_version: 1,
                language: "en".into(),
                sent_now: 1,
                rejected: vec![],
                devices: vec![],
                provider: Some("sendgrid".into()),
            },
        );
        assert_eq!(d.status.unwrap().provider.as_deref(), Some("sendgrid"));
    }

    #[test]
    fn without_retry_attempts_a_transient_failure_is_exhausted_at_once() {
        let case = Case {
            tiers: tiers(0, 0),
            ..Case::new()
        };
        let d = case.decide(1, &failed(ErrorClass::Transient));
        assert_eq!(
            d.verdict,
            Verdict::DeadLettered {
                class: ErrorClass::Exhausted
            }
        );
        assert_eq!(d.failure_record.unwrap().topic, "p.notifications.email.dlt");
    }

    #[test]
    fn permanent_and_poison_failures_go_to_the_dead_letter_topic_on_any_attempt() {
        let case = Case::new();
        for class in [ErrorClass::Permanent, ErrorClass::Poison] {
            for attempt in [1, 3, 7] {
                let d = case.decide(attempt, &failed(class));
                assert_eq!(
                    d.verdict,
                    Verdict::DeadLettered { class },
                    "{class} at attempt {attempt}"
                );
                let r = d.failure_record.unwrap();
                assert_eq!(r.topic, "p.notifications.email.dlt");
                assert_eq!(header(&r, h::ERROR_CLASS), Some(class.as_str()));
                assert_eq!(header(&r, h::DEAD_LETTERED_AT), Some(NOW.to_string().as_str()));
                assert_eq!(header(&r, h::RETRY_DUE_AT), None);
                assert_eq!(d.status.unwrap().status, DeliveryStatus::DeadLettered);
            }
        }
    }

    #[test]
    fn a_dead_letter_keeps_the_key_and_the_value_byte_for_byte() {
        let d = Case::new().decide(1, &failed(ErrorClass::Poison));
        let r = d.failure_record.unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(r.payload, b"\x00\x00\x00\x00\x01avro");
    }

    #[test]
    fn a_poison_record_without_a_notification_id_is_dead_lettered_without_a_status() {
        let case = Case {
            id: None,
            ..Case::new()
        };
        let d = case.decide(1, &failed(ErrorClass::Poison));
        assert!(d.failure_record.is_some());
        assert_eq!(d.status, None);
    }

    #[test]
    fn failure_headers_carry_the_context_on_and_replace_the_last_failure() {
        let mut case = Case::new();
        // A record read back from a retry tier: its first hop and last failure are in its headers.
        case.topic = "p.notifications.email.retry-30s".into();
        case.headers.extend([
            (h::ORIGINAL_TOPIC.into(), "p.notifications.email".into()),
            (h::ORIGINAL_PARTITION.into(), "0".into()),
            (h::ORIGINAL_OFFSET.into(), "7".into()),
            (h::FIRST_FAILURE_AT.into(), "1000".into()),
            (h::ATTEMPT.into(), "1".into()),
            (h::RETRY_DUE_AT.into(), "2000".into()),
            (h::ERROR_MESSAGE.into(), "old".into()),
            (h::WORKER_VERSION.into(), "old/0".into()),
            ("x-custom".into(), "kept".into()),
        ]);
        let r = case.decide(2, &failed(ErrorClass::Transient)).failure_record.unwrap();
        let got: HashMap<&str, &str> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got[h::ORIGINAL_TOPIC], "p.notifications.email", "the first hop is kept");
        assert_eq!((got[h::ORIGINAL_PARTITION], got[h::ORIGINAL_OFFSET]), ("0", "7"));
        assert_eq!(got[h::FIRST_FAILURE_AT], "1000");
        assert_eq!(got[h::ATTEMPT], "2");
        assert_eq!(got[h::RETRY_DUE_AT], (NOW + 30_000).to_string());
        assert_eq!(got[h::ERROR_MESSAGE], "transient failure");
        assert_eq!(got[h::WORKER_VERSION], "notify-worker/0.1.0");
        assert_eq!(got[h::CONSUMER_GROUP], "p.email-worker");
        for carried in [
            h::NOTIFICATION_ID,
            h::CORRELATION_ID,
            h::TRACEPARENT,
            h::EVENT_TYPE,
            "x-custom",
        ] {
            assert_eq!(
                got.get(carried).copied(),
                case.headers.get(carried).map(String::as_str),
                "{carried}"
            );
        }
        assert_eq!(r.headers.len(), got.len(), "each header once");
        assert!(r.headers.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }

    #[test]
    fn the_first_failure_records_where_the_record_was_read() {
        let r = Case::new()
            .decide(1, &failed(ErrorClass::Permanent))
            .failure_record
            .unwrap();
        assert_eq!(header(&r, h::ORIGINAL_TOPIC), Some("p.notifications.email"));
        assert_eq!(header(&r, h::ORIGINAL_PARTITION), Some("2"));
        assert_eq!(header(&r, h::ORIGINAL_OFFSET), Some("41"));
        assert_eq!(header(&r, h::FIRST_FAILURE_AT), Some(NOW.to_string().as_str()));
    }

    #[test]
    fn an_outage_of_a_dependency_holds_the_record_without_spending_an_attempt() {
        let case = Case {
            tiers: tiers(0, 0),
            ..Case::new()
        };
        // Even with no retry left, an outage is not a failure of the record.
        let d = case.decide(
            9,
            &Outcome::Unavailable(crate::pipeline::Outage {
                dependency: "delivery ledger",
                message: "delivery ledger: timed out".into(),
            }),
        );
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Held {
                    dependency: "delivery ledger"
                },
                failure_record: None,
                status: None,
            }
        );
    }

    #[test]
    fn addresses_and_tokens_in_a_provider_error_are_redacted_in_the_status_and_the_headers() {
        let token = "dGhpc2lzYWRldmljZXRva2Vu0123456789:APA91bExample-Token_42";
        let message = format!("550 5.1.1 <jane.doe@example.com>: mailbox unavailable; push token {token} UNREGISTERED");
        for class in [ErrorClass::Transient, ErrorClass::Permanent] {
            let d = Case::new().decide(1, &Outcome::Failed(Failure::new(class, message.clone())));
            let header_text = header(d.failure_record.as_ref().unwrap(), h::ERROR_MESSAGE)
                .unwrap()
                .to_string();
            let status_text = d.status.unwrap().error.unwrap();
            for recorded in [&header_text, &status_text] {
                assert!(!recorded.contains("jane.doe"), "{recorded}");
                assert!(!recorded.contains(token), "{recorded}");
                assert!(recorded.contains("<redacted>@example.com"), "{recorded}");
                assert!(recorded.contains("mailbox unavailable"), "{recorded}");
            }
        }
    }

    #[test]
    fn a_long_error_message_is_cut_in_the_header_and_kept_whole_in_the_status() {
        let long = "x".repeat(5000);
        let d = Case::new().decide(1, &Outcome::Failed(Failure::new(ErrorClass::Permanent, long.clone())));
        let r = d.failure_record.unwrap();
        assert_eq!(
            header(&r, h::ERROR_MESSAGE).map(str::len),
            Some(crate::routing::MAX_ERROR_MESSAGE_CHARS)
        );
        assert_eq!(d.status.unwrap().error, Some(long));
    }

    #[test]
    fn a_priority_record_retries_through_the_channels_tiers_and_records_the_priority_topic() {
        let case = Case {
            topic: "p.notifications.push.priority".into(),
            channel: Channel::Push,
            ..Case::new()
        };
        let r = case.decide(1, &failed(ErrorClass::Transient)).failure_record.unwrap();
        assert_eq!(r.topic, "p.notifications.push.retry-30s");
        assert_eq!(header(&r, h::ORIGINAL_TOPIC), Some("p.notifications.push.priority"));
        let r = case.decide(1, &failed(ErrorClass::Permanent)).failure_record.unwrap();
        assert_eq!(r.topic, "p.notifications.push.dlt");
    }
}
