//! Kafka header names used across the platform (part of the contract).

/// UUID of the notification a record is about.
pub const NOTIFICATION_ID: &str = "notification-id";
/// Correlation id (same value as the HTTP `X-Correlation-Id`).
pub const CORRELATION_ID: &str = "x-correlation-id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Subject of the Avro contract the value is written with.
pub const EVENT_TYPE: &str = "event-type";
/// Id of the outbox row a record was published from (relay's own dedupe and diagnostics).
pub const OUTBOX_ID: &str = "outbox-id";

// Headers of a producer request on `notifications.requests` (see schemas/README.md).

/// The producer's signed token (a JWT with audience `notify-ingest` and scope
/// `notifications:produce`): the producer's identity, since the local broker has no SASL.
pub const PRODUCER_TOKEN: &str = "x-producer-token";
/// The request's notification type (`email` or `push`), for routing and diagnostics only:
/// the record's value is authoritative.
pub const NOTIFICATION_TYPE: &str = "x-notification-type";
/// The request's idempotency key (same value as the record's `request_id`), for diagnostics.
pub const REQUEST_ID: &str = "x-request-id";

// Headers of the retry path (set by the workers on retry and dead-letter records; the worker
// runtime has the same names in `notify_worker::routing::names`).

/// Attempts made so far, the failed one included.
pub const ATTEMPT: &str = "x-attempt";
/// Epoch milliseconds of the first failure.
pub const FIRST_FAILURE_AT: &str = "x-first-failure-at";
/// Epoch milliseconds before which a retry record must not be attempted again.
pub const RETRY_DUE_AT: &str = "x-retry-due-at";
/// Topic, partition and offset of the record's first failed attempt (a request topic).
pub const ORIGINAL_TOPIC: &str = "x-original-topic";
pub const ORIGINAL_PARTITION: &str = "x-original-partition";
pub const ORIGINAL_OFFSET: &str = "x-original-offset";
/// Consumer group of the worker that failed it.
pub const CONSUMER_GROUP: &str = "x-consumer-group";
/// An [`ErrorClass`]: `transient`, `permanent`, `poison` or `exhausted`.
pub const ERROR_CLASS: &str = "x-error-class";
pub const ERROR_MESSAGE: &str = "x-error-message";
pub const WORKER_VERSION: &str = "x-worker-version";
/// Epoch milliseconds at which the record was written to the dead-letter topic.
pub const DEAD_LETTERED_AT: &str = "x-dead-lettered-at";

// Headers of a dead letter republished by `notifyctl dlt replay`.

/// Epoch milliseconds of the replay.
pub const REPLAYED_AT: &str = "x-replayed-at";
/// The dead letter it was republished from: `<topic>/<partition>/<offset>`.
pub const REPLAYED_FROM: &str = "x-replayed-from";
/// How many times this notification was replayed from a dead-letter topic (1 on the first).
pub const REPLAY_COUNT: &str = "x-replay-count";

/// Why an attempt failed: the value of [`ERROR_CLASS`] on retry and dead-letter records, and
/// what `notifyctl dlt replay --error-class` selects on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Worth retrying later (a timeout, a refused connection, a throttle): a retry tier.
    Transient,
    /// Retrying cannot help (an invalid address, a missing template): the dead-letter topic.
    Permanent,
    /// The record cannot be decoded: the dead-letter topic, its bytes intact.
    Poison,
    /// Transient, but the retry tiers are used up: the dead-letter topic.
    Exhausted,
}

impl ErrorClass {
    /// Every class, in the order operators read them.
    pub const ALL: [ErrorClass; 4] = [Self::Transient, Self::Permanent, Self::Poison, Self::Exhausted];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Poison => "poison",
            Self::Exhausted => "exhausted",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
            format!("unknown error class `{s}` (expected one of {})", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass;

    #[test]
    fn every_error_class_parses_from_its_header_value() {
        for class in ErrorClass::ALL {
            assert_eq!(class.as_str().parse::<ErrorClass>(), Ok(class));
        }
        assert!("fatal"
            .parse::<ErrorClass>()
            .unwrap_err()
            .contains("transient, permanent, poison, exhausted"));
    }
}
