//! Schema evolution of the producer request, without a registry: Avro schema resolution
//! (what `wire::decode_as` does with the writer's and the reader's schema) lets a consumer on
//! a new version read records written with the old one and the other way round, when the new
//! version only adds a field with a default. A field added without one is refused.

#![allow(clippy::unwrap_used)]

use apache_avro::Schema;
use notify_schemas::{wire, Channel, IngestRequest, NOTIFICATION_REQUEST};
use serde::{Deserialize, Serialize};

const V2: &str = include_str!("fixtures/compatible/notification_request.avsc");
const INCOMPATIBLE: &str = include_str!("fixtures/incompatible/notification_request.avsc");

/// A consumer's type for the fixture's version (`scheduled_at` added with default null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RequestV2 {
    request_id: String,
    notification_type: Channel,
    user_id: String,
    template_code: String,
    variables: String,
    priority: i32,
    metadata: String,
    correlation_id: Option<String>,
    scheduled_at: Option<i64>,
}

fn v1() -> Schema {
    notify_schemas::parse_schema(&NOTIFICATION_REQUEST).unwrap()
}

fn sample() -> IngestRequest {
    IngestRequest {
        request_id: "order-42".into(),
        notification_type: Channel::Push,
        user_id: "6c1b2a3d-0000-4000-8000-000000000001".into(),
        template_code: "order_shipped".into(),
        variables: r#"{"order":42}"#.into(),
        priority: 8,
        metadata: "{}".into(),
        correlation_id: None,
    }
}

#[test]
fn a_consumer_on_the_new_version_reads_records_of_the_old_one() {
    let bytes = wire::encode(&v1(), 7, &sample()).unwrap();
    let v2 = Schema::parse_str(V2).unwrap();
    let read: RequestV2 = wire::decode_as(&v1(), &v2, &bytes).unwrap();
    assert_eq!(read.request_id, "order-42");
    assert_eq!(read.notification_type, Channel::Push);
    assert_eq!(read.priority, 8);
    assert_eq!(read.scheduled_at, None, "the added field takes its default");
}

#[test]
fn a_consumer_on_the_old_version_reads_records_of_the_new_one() {
    let v2 = Schema::parse_str(V2).unwrap();
    let s = sample();
    let newer = RequestV2 {
        request_id: s.request_id.clone(),
        notification_type: s.notification_type,
        user_id: s.user_id.clone(),
        template_code: s.template_code.clone(),
        variables: s.variables.clone(),
        priority: s.priority,
        metadata: s.metadata.clone(),
        correlation_id: Some("corr-9".into()),
        scheduled_at: Some(1_900_000_000_000),
    };
    let bytes = wire::encode(&v2, 8, &newer).unwrap();
    let read: IngestRequest = wire::decode_as(&v2, &v1(), &bytes).unwrap();
    assert_eq!(
        read,
        IngestRequest {
            correlation_id: Some("corr-9".into()),
            ..s
        },
        "the unknown field is skipped, the rest read as written"
    );
}

#[test]
fn a_field_added_without_a_default_cannot_read_older_records() {
    let bytes = wire::encode(&v1(), 7, &sample()).unwrap();
    let incompatible = Schema::parse_str(INCOMPATIBLE).unwrap();
    let err = wire::decode_as::<serde_json::Value>(&v1(), &incompatible, &bytes);
    assert!(err.is_err(), "tenant_id has no default: {err:?}");
}
