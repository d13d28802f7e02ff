//! A dead letter as read from the DLT, and the record a replay makes of it: the same key and
//! value, byte for byte, on the channel's request topic, with the headers of the old failure
//! dropped and the replay's own added. Pure functions: the Kafka I/O is in `kafka.rs`.

use std::fmt;

use notify_schemas::{headers as h, topics::Topics, Channel};

/// Record headers in order, values as raw bytes (a header without a value is `None`).
pub type HeaderList = Vec<(String, Option<Vec<u8>>)>;

/// Where a record is: `<topic>/<partition>/<offset>` (the format of `x-replayed-from`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// One record of a dead-letter topic, copied out of the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub position: Position,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HeaderList,
}

impl DeadLetter {
    /// The last value of header `name` as text (`None` if absent or not UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the record matches the filters of a selective replay: its notification id is
    /// one of `ids` (when any are given) and its class is `class` (when given).
    pub fn matches(&self, ids: &[uuid::Uuid], class: Option<&str>) -> bool {
        let id_ok = ids.is_empty()
            || self
                .header(h::NOTIFICATION_ID)
                .and_then(|v| uuid::Uuid::try_parse(v.trim()).ok())
                .is_some_and(|id| ids.contains(&id));
        let class_ok = class.is_none_or(|c| self.header(h::ERROR_CLASS) == Some(c));
        id_ok && class_ok
    }
}

/// The last value of header `name` in `headers` as text.
pub fn header<'a>(headers: &'a [(String, Option<Vec<u8>>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok())
}

/// Headers about the failed attempts, dropped on replay: the worker starts afresh (full retry
/// budget) and writes them again if it fails again. The dead letter itself (which
/// `x-replayed-from` points to) keeps them as long as the DLT's retention.
const DROPPED_ON_REPLAY: [&str; 7] = [
    h::ATTEMPT,
    h::RETRY_DUE_AT,
    h::ERROR_CLASS,
    h::ERROR_MESSAGE,
    h::CONSUMER_GROUP,
    h::WORKER_VERSION,
    h::DEAD_LETTERED_AT,
];

/// Headers the replay sets (an earlier replay's values are replaced, not repeated).
const SET_BY_REPLAY: [&str; 3] = [h::REPLAYED_AT, h::REPLAYED_FROM, h::REPLAY_COUNT];

/// The headers of the republished record.
///
/// Kept as they are, in their order: `notification-id`, `x-correlation-id`, `traceparent`,
/// `event-type`, `outbox-id`, the first hop (`x-original-topic/partition/offset`,
/// `x-first-failure-at`: a new failure after the replay is still traced to the first one) and
/// any header this tool does not know. Dropped: the failure headers of [`DROPPED_ON_REPLAY`],
/// `x-attempt` among them, so the worker counts attempts from 1 again. Added:
/// `x-replayed-at` (epoch ms), `x-replayed-from` (`<dlt>/<partition>/<offset>`) and
/// `x-replay-count` (1 + the count the dead letter carried, which the worker keeps when a
/// replayed record fails again).
pub fn replay_headers(dead: &DeadLetter, now_ms: i64) -> HeaderList {
    let previous_count = dead
        .header(h::REPLAY_COUNT)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let mut out: HeaderList = dead
        .headers
        .iter()
        .filter(|(k, _)| !DROPPED_ON_REPLAY.contains(&k.as_str()) && !SET_BY_REPLAY.contains(&k.as_str()))
        .cloned()
        .collect();
    for (k, v) in [
        (h::REPLAYED_AT, now_ms.to_string()),
        (h::REPLAYED_FROM, dead.position.to_string()),
        (h::REPLAY_COUNT, previous_count.saturating_add(1).to_string()),
    ] {
        out.push((k.to_string(), Some(v.into_bytes())));
    }
    out
}

/// The topic a dead letter of `channel` is republished to: the request topic it first came
/// from (`x-original-topic`) when that is one of the channel's request topics (normal or
/// priority), otherwise the channel's normal request topic. Never a delay tier (a replayed
/// record is due at once) nor another channel's topic.
pub fn replay_target(topics: &Topics, channel: Channel, dead: &DeadLetter) -> String {
    let normal = topics.requests(channel, false);
    let priority = topics.requests(channel, true);
    match dead.header(h::ORIGINAL_TOPIC) {
        Some(t) if t == priority => priority,
        _ => normal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(k: &str, v: &str) -> (String, Option<Vec<u8>>) {
        (k.to_string(), Some(v.as_bytes().to_vec()))
    }

    /// A dead letter as the worker writes it (see `libs/worker/src/routing.rs`).
    fn dead_letter(extra: &[(String, Option<Vec<u8>>)]) -> DeadLetter {
        let mut headers = vec![
            hv("event-type", "io.notify.events.NotificationRequested"),
            hv("notification-id", "0190a0b2-7c6e-7d1e-8f00-000000000001"),
            hv("outbox-id", "17"),
            hv("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            hv("x-attempt", "3"),
            hv("x-consumer-group", "t.email-worker"),
            hv("x-correlation-id", "corr-1"),
            hv("x-dead-lettered-at", "1764000000000"),
            hv("x-error-class", "exhausted"),
            hv("x-error-message", "451 4.3.0 try again later"),
            hv("x-first-failure-at", "1763999990000"),
            hv("x-original-offset", "4"),
            hv("x-original-partition", "2"),
            hv("x-original-topic", "t.notifications.email"),
            hv("x-worker-version", "notify-worker/0.1.0"),
        ];
        headers.extend(extra.iter().cloned());
        DeadLetter {
            position: Position {
                topic: "t.notifications.email.dlt".into(),
                partition: 1,
                offset: 9,
            },
            key: Some(b"user-1".to_vec()),
            payload: Some(vec![0, 0, 0, 0, 1, 2, 3]),
            headers,
        }
    }

    fn names(hs: &HeaderList) -> Vec<&str> {
        hs.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_replay_keeps_the_identity_and_the_first_hop_and_drops_the_failure() {
        let dead = dead_letter(&[]);
        let out = replay_headers(&dead, 1_764_000_100_000);
        assert_eq!(
            names(&out),
            vec![
                "event-type",
                "notification-id",
                "outbox-id",
                "traceparent",
                "x-correlation-id",
                "x-first-failure-at",
                "x-original-offset",
                "x-original-partition",
                "x-original-topic",
                "x-replayed-at",
                "x-replayed-from",
                "x-replay-count",
            ]
        );
        for kept in [
            "notification-id",
            "x-correlation-id",
            "traceparent",
            "event-type",
            "x-original-topic",
        ] {
            assert_eq!(header(&out, kept), dead.header(kept), "{kept} is kept unchanged");
        }
        assert_eq!(header(&out, "x-attempt"), None, "the worker gets its full retry budget");
        assert_eq!(header(&out, "x-replayed-at"), Some("1764000100000"));
        assert_eq!(header(&out, "x-replayed-from"), Some("t.notifications.email.dlt/1/9"));
        assert_eq!(header(&out, "x-replay-count"), Some("1"));
    }

    #[test]
    fn a_second_replay_counts_up_and_replaces_the_earlier_replay_headers() {
        // A replayed record that failed again: the worker kept the replay headers.
        let dead = dead_letter(&[
            hv("x-replayed-at", "1"),
            hv("x-replayed-from", "t.notifications.email.dlt/0/0"),
            hv("x-replay-count", "2"),
        ]);
        let out = replay_headers(&dead, 5);
        assert_eq!(header(&out, "x-replay-count"), Some("3"));
        assert_eq!(header(&out, "x-replayed-from"), Some("t.notifications.email.dlt/1/9"));
        for name in ["x-replayed-at", "x-replayed-from", "x-replay-count"] {
            assert_eq!(names(&out).iter().filter(|n| **n == name).count(), 1, "{name} once");
        }
        let garbled = dead_letter(&[hv("x-replay-count", "many")]);
        assert_eq!(header(&replay_headers(&garbled, 5), "x-replay-count"), Some("1"));
    }

    #[test]
    fn unknown_and_binary_headers_pass_through_byte_for_byte() {
        let binary = ("x-custom".to_string(), Some(vec![0xff, 0x00, 0xfe]));
        let empty = ("x-flag".to_string(), None);
        let out = replay_headers(&dead_letter(&[binary.clone(), empty.clone()]), 5);
        assert!(out.contains(&binary) && out.contains(&empty), "{out:?}");
    }

    #[test]
    fn the_target_is_the_original_request_topic_never_a_delay_tier() {
        let topics = Topics::new("t.");
        let with_origin = |t: &str| dead_letter(&[hv("x-original-topic", t)]);
        let target = |d: &DeadLetter| replay_target(&topics, Channel::Email, d);
        assert_eq!(target(&dead_letter(&[])), "t.notifications.email");
        assert_eq!(
            target(&with_origin("t.notifications.email.priority")),
            "t.notifications.email.priority"
        );
        for elsewhere in [
            "t.notifications.email.retry-30s",
            "t.notifications.email.retry-5m",
            "t.notifications.email.dlt",
            "t.notifications.push.priority",
            "other.notifications.email.priority",
        ] {
            assert_eq!(target(&with_origin(elsewhere)), "t.notifications.email", "{elsewhere}");
        }
        let mut no_origin = dead_letter(&[]);
        no_origin.headers.retain(|(k, _)| k != "x-original-topic");
        assert_eq!(target(&no_origin), "t.notifications.email");
    }

    #[test]
    fn filters_match_the_id_and_the_class() {
        let d = dead_letter(&[]);
        let id: uuid::Uuid = "0190a0b2-7c6e-7d1e-8f00-000000000001".parse().unwrap();
        let other = uuid::Uuid::nil();
        assert!(d.matches(&[], None));
        assert!(d.matches(&[other, id], None));
        assert!(!d.matches(&[other], None));
        assert!(d.matches(&[id], Some("exhausted")));
        assert!(!d.matches(&[id], Some("permanent")));
        let mut poison = d.clone();
        poison.headers.retain(|(k, _)| k != "notification-id");
        assert!(
            !poison.matches(&[id], None),
            "no id: only an unfiltered replay takes it"
        );
    }
}
