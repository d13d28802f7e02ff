//! The platform's Avro contracts.
//!
//! - The `.avsc` files in `avro/` are the source of truth; [`CONTRACTS`] embeds them in the
//!   order in which the deploy step registers them (so ids are stable across a registry
//!   restart).
//! - [`NotificationRequested`] and [`NotificationStatusChanged`] are their Rust types.
//! - [`wire`] is the Confluent wire format (magic byte, schema id, Avro datum).
//! - [`ids`]: the typed ids that travel (`NotificationId`, `UserId`).
//! - [`registry`] is a client for the Confluent Schema Registry REST API, caching by id.
//!
//! The platform's own events follow the record-name strategy
//! (`io.notify.events.NotificationRequested`), since one record type travels on several topics
//! (main, priority, retry tiers, dead letters). The public producer request
//! ([`NOTIFICATION_REQUEST`]) travels on one topic and uses the topic-name strategy
//! (`notifications.requests-value`), what producer teams' standard serializers default to.

#[cfg(test)]
mod contract_props;
pub mod headers;
pub mod ids;
pub mod registry;
pub mod topics;
pub mod wire;

use ids::{NotificationId, UserId};
use serde::{Deserialize, Serialize};

/// One contract: its subject and schema text.
#[derive(Debug, Clone, Copy)]
pub struct Contract {
    pub subject: &'static str,
    pub schema: &'static str,
}

/// `NotificationRequested`: what the relay publishes for each accepted notification.
pub const NOTIFICATION_REQUESTED: Contract = Contract {
    subject: "io.notify.events.NotificationRequested",
    schema: include_str!("../avro/notification_requested.avsc"),
};

/// `NotificationStatusChanged`: what workers publish for every delivery outcome.
pub const NOTIFICATION_STATUS: Contract = Contract {
    subject: "io.notify.events.NotificationStatusChanged",
    schema: include_str!("../avro/notification_status.avsc"),
};

/// `NotificationRequest`: what internal producers publish to `notifications.requests`
/// (topic-name strategy: the subject is the topic's logical name + `-value`).
pub const NOTIFICATION_REQUEST: Contract = Contract {
    subject: "notifications.requests-value",
    schema: include_str!("../avro/notification_request.avsc"),
};

/// Full name of the record [`NOTIFICATION_REQUEST`] describes: a payload written with another
/// record is not a request, whatever its schema id.
pub const NOTIFICATION_REQUEST_RECORD: &str = "io.notify.requests.NotificationRequest";

/// Every contract, in registration order. Append only: never reorder.
pub const CONTRACTS: &[Contract] = &[NOTIFICATION_REQUESTED, NOTIFICATION_STATUS, NOTIFICATION_REQUEST];

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Push => "push",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(Self::Email),
            "push" => Ok(Self::Push),
            other => Err(format!("unknown channel `{other}` (expected email or push)")),
        }
    }
}

/// Rust form of `NotificationRequested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRequested {
    pub notification_id: NotificationId,
    pub channel: Channel,
    /// The recipient, and the record's key.
    pub user_id: UserId,
    pub template_code: String,
    pub variables_json: String,
    pub priority: i32,
    pub metadata_json: String,
    pub request_id: String,
    pub caller: String,
    pub correlation_id: String,
    /// Milliseconds since the Unix epoch.
    pub requested_at: i64,
}

/// Rust form of `io.notify.requests.NotificationRequest`, the public producer request. Ids and
/// codes stay strings here: the ingest service validates them with the API's own rules
/// (so a bad one is reported by field, not as an undecodable record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestRequest {
    pub request_id: String,
    pub notification_type: Channel,
    pub user_id: String,
    pub template_code: String,
    /// A JSON object, serialised.
    pub variables: String,
    pub priority: i32,
    /// A JSON object, serialised.
    pub metadata: String,
    pub correlation_id: Option<String>,
}

/// A step of the delivery lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Published,
    Sending,
    Sent,
    Delivered,
    Bounced,
    Retrying,
    DeadLettered,
    Skipped,
    Failed,
}

/// Rust form of `NotificationStatusChanged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationStatusChanged {
    pub notification_id: NotificationId,
    pub channel: Channel,
    pub status: DeliveryStatus,
    pub attempt: i32,
    /// Milliseconds since the Unix epoch.
    pub occurred_at: i64,
    pub error: Option<String>,
    pub provider: Option<String>,
    pub correlation_id: String,
    pub template_version: Option<i32>,
    pub language: Option<String>,
    /// Who reported the step (`worker`, `provider-report`).
    pub source: String,
}

/// Parses a contract's schema (they are compiled in, so failure is a build defect caught by tests).
pub fn parse_schema(contract: &Contract) -> Result<apache_avro::Schema, Box<apache_avro::Error>> {
    apache_avro::Schema::parse_str(contract.schema).map_err(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_parses_and_names_its_subject() {
        for c in CONTRACTS {
            let schema = parse_schema(c).unwrap();
            let name = match schema {
                apache_avro::Schema::Record(r) => r.name.fullname(None),
                other => panic!("{} is not a record: {other:?}", c.subject),
            };
            if c.subject.ends_with("-value") {
                // Topic-name strategy: the subject names the topic, not the record.
                assert_eq!(name, NOTIFICATION_REQUEST_RECORD, "{}", c.subject);
            } else {
                assert_eq!(name, c.subject);
            }
        }
    }
}
