//! Headers of the records the worker writes: retry and dead-letter records (the original key
//! and value, unchanged, with headers that say where the record came from, how often it
//! failed, why, and when it is due) and status events. Pure functions over string pairs; the
//! consumer turns them into Kafka headers.

use std::collections::HashMap;

use notify_schemas::{headers::ErrorClass, ids::NotificationId, NOTIFICATION_STATUS};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

/// Header names of the retry path (the contract's, in `notify_schemas::headers`).
pub mod names {
    pub use notify_schemas::headers::{
        ATTEMPT, CONSUMER_GROUP, CORRELATION_ID, DEAD_LETTERED_AT, ERROR_CLASS, ERROR_MESSAGE, EVENT_TYPE,
        FIRST_FAILURE_AT, NOTIFICATION_ID, ORIGINAL_OFFSET, ORIGINAL_PARTITION, ORIGINAL_TOPIC, RETRY_DUE_AT as DUE_AT,
        TRACEPARENT, WORKER_VERSION,
    };
}

/// Header values are bounded: a provider's whole error page is not useful here.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// A record's headers as strings (non-UTF-8 values are dropped).
pub fn headers_of(msg: &impl Message) -> HashMap<String, String> {
    msg.headers()
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    let v = std::str::from_utf8(h.value?).ok()?;
                    Some((h.key.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// String pairs as Kafka headers.
pub fn to_kafka(pairs: &[(String, String)]) -> OwnedHeaders {
    pairs
        .iter()
        .fold(OwnedHeaders::new_with_capacity(pairs.len()), |hs, (k, v)| {
            hs.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
}

/// Where a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// What the next record in the retry path says about the failure.
#[derive(Debug, Clone)]
pub struct FailureInfo<'a> {
    pub attempt: u32,
    pub class: ErrorClass,
    pub message: &'a str,
    pub group: &'a str,
    pub worker_version: &'a str,
    pub now_ms: i64,
    /// `Some(due)` for a retry record, `None` for a dead letter.
    pub due_at_ms: Option<i64>,
}

/// Headers for the retry or DLT record of the record read at `from` with headers `old`:
/// everything the record had (correlation id, traceparent, notification id, event type) but
/// the last failure's, the original position from the first hop, and this failure. Sorted by
/// name.
pub fn failure_headers(
    from: Position<'_>,
    old: &HashMap<String, String>,
    info: &FailureInfo<'_>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = old
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                names::ATTEMPT
                    | names::DUE_AT
                    | names::ERROR_CLASS
                    | names::ERROR_MESSAGE
                    | names::CONSUMER_GROUP
                    | names::WORKER_VERSION
                    | names::DEAD_LETTERED_AT
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut set_if_absent = |k: &str, v: String| {
        if !old.contains_key(k) {
            out.push((k.to_string(), v));
        }
    };
    set_if_absent(names::FIRST_FAILURE_AT, info.now_ms.to_string());
    set_if_absent(names::ORIGINAL_TOPIC, from.topic.to_string());
    set_if_absent(names::ORIGINAL_PARTITION, from.partition.to_string());
    set_if_absent(names::ORIGINAL_OFFSET, from.offset.to_string());
    out.push((names::ATTEMPT.into(), info.attempt.to_string()));
    out.push((names::CONSUMER_GROUP.into(), info.group.to_string()));
    out.push((names::ERROR_CLASS.into(), info.class.as_str().to_string()));
    let message: String = info.message.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
    out.push((names::ERROR_MESSAGE.into(), message));
    out.push((names::WORKER_VERSION.into(), info.worker_version.to_string()));
    match info.due_at_ms {
        Some(due) => out.push((names::DUE_AT.into(), due.to_string())),
        None => out.push((names::DEAD_LETTERED_AT.into(), info.now_ms.to_string())),
    }
    out.sort();
    out
}

/// Headers of a status event: the notification, the correlation id, the contract, and the
/// attempt's trace context when there is one.
pub fn status_headers(
    notification_id: NotificationId,
    correlation_id: &str,
    traceparent: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = vec![
        (names::NOTIFICATION_ID.to_string(), notification_id.to_string()),
        (names::CORRELATION_ID.to_string(), correlation_id.to_string()),
        (names::EVENT_TYPE.to_string(), NOTIFICATION_STATUS.subject.to_string()),
    ];
    if let Some(tp) = traceparent {
        out.push((names::TRACEPARENT.to_string(), tp.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_event_names_its_notification_correlation_contract_and_trace() {
        let id = NotificationId::new_v7();
        let with_trace = status_headers(id, "corr-1", Some("00-abc-01"));
        let get = |hs: &[(String, String)], k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get(&with_trace, names::NOTIFICATION_ID), Some(id.to_string()));
        assert_eq!(get(&with_trace, names::CORRELATION_ID).as_deref(), Some("corr-1"));
        assert_eq!(
            get(&with_trace, names::EVENT_TYPE).as_deref(),
            Some(NOTIFICATION_STATUS.subject)
        );
        assert_eq!(get(&with_trace, names::TRACEPARENT).as_deref(), Some("00-abc-01"));
        let without = status_headers(id, "corr-1", None);
        assert_eq!(get(&without, names::TRACEPARENT), None);
        assert_eq!(without.len(), 3);
    }

    #[test]
    fn string_pairs_become_kafka_headers_in_order() {
        let hs = to_kafka(&[("a".into(), "1".into()), ("b".into(), "2".into())]);
        let got: Vec<(String, Option<Vec<u8>>)> = hs
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), Some(b"1".to_vec())), ("b".into(), Some(b"2".to_vec()))]
        );
    }
}
