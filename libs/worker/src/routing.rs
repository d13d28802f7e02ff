//! Retry and dead-letter records: the original value and key, unchanged, with headers that
//! say where the record came from, how often it failed, why, and when it is due.

use std::collections::HashMap;

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

/// Header names of the retry path (the contract's, in `notify_schemas::headers`).
pub mod names {
    pub use notify_schemas::headers::{
        ATTEMPT, CONSUMER_GROUP, DEAD_LETTERED_AT, ERROR_CLASS, ERROR_MESSAGE, FIRST_FAILURE_AT, ORIGINAL_OFFSET,
        ORIGINAL_PARTITION, ORIGINAL_TOPIC, RETRY_DUE_AT as DUE_AT, WORKER_VERSION,
    };
}

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

/// What the next record in the retry path says about the failure.
#[derive(Debug, Clone)]
pub struct FailureInfo<'a> {
    pub attempt: u32,
    pub class: &'a str,
    pub message: &'a str,
    pub group: &'a str,
    pub worker_version: &'a str,
    pub now_ms: i64,
    /// `Some(due)` for a retry record, `None` for a dead letter.
    pub due_at_ms: Option<i64>,
}

/// Headers for the retry or DLT record of `msg`: everything the record had (correlation id,
/// traceparent, notification id, event type), the original position from the first hop, and
/// the failure.
pub fn failure_headers(msg: &impl Message, old: &HashMap<String, String>, info: &FailureInfo<'_>) -> OwnedHeaders {
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
    set_if_absent(names::ORIGINAL_TOPIC, msg.topic().to_string());
    set_if_absent(names::ORIGINAL_PARTITION, msg.partition().to_string());
    set_if_absent(names::ORIGINAL_OFFSET, msg.offset().to_string());
    out.push((names::ATTEMPT.into(), info.attempt.to_string()));
    out.push((names::CONSUMER_GROUP.into(), info.group.to_string()));
    out.push((names::ERROR_CLASS.into(), info.class.to_string()));
    // Header values are bounded: a provider's whole error page is not useful here.
    let message: String = info.message.chars().take(1000).collect();
    out.push((names::ERROR_MESSAGE.into(), message));
    out.push((names::WORKER_VERSION.into(), info.worker_version.to_string()));
    match info.due_at_ms {
        Some(due) => out.push((names::DUE_AT.into(), due.to_string())),
        None => out.push((names::DEAD_LETTERED_AT.into(), info.now_ms.to_string())),
    }
    out.sort();
    let mut headers = OwnedHeaders::new_with_capacity(out.len());
    for (k, v) in &out {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    headers
}
