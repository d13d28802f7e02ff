//! Property tests of the contracts: every contract in [`crate::CONTRACTS`] round-trips
//! arbitrary values through the wire format (encode → decode gives back the value), and a
//! fuzz harness of [`crate::wire::decode`] (any bytes: a value or an error, never a panic).
//!
//! Cases: `PROPTEST_CASES` when set (the long run), else the small defaults below.

use proptest::prelude::*;
use uuid::Uuid;

use crate::{
    ids::{NotificationId, UserId},
    parse_schema,
    wire::{self, WireError},
    Channel, Contract, DeliveryStatus, IngestRequest, NotificationRequested, NotificationStatusChanged, CONTRACTS,
    NOTIFICATION_REQUEST, NOTIFICATION_REQUESTED, NOTIFICATION_STATUS,
};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(vec![Channel::Email, Channel::Push])
}

/// Any text, control characters and astral planes included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "\\PC{0,40}"]
}

fn requested() -> impl Strategy<Value = NotificationRequested> {
    (
        (any::<u128>(), channel(), any::<u128>(), text(), text(), any::<i32>()),
        (text(), text(), text(), text(), any::<i64>()),
    )
        .prop_map(
            |(
                (id, channel, user, template_code, variables_json, priority),
                (metadata_json, request_id, caller, correlation_id, requested_at),
            )| NotificationRequested {
                notification_id: NotificationId::from(Uuid::from_u128(id)),
                channel,
                user_id: UserId::from(Uuid::from_u128(user)),
                template_code,
                variables_json,
                priority,
                metadata_json,
                request_id,
                caller,
                correlation_id,
                requested_at,
            },
        )
}

fn ingest_request() -> impl Strategy<Value = IngestRequest> {
    (
        (text(), channel(), text(), text()),
        (text(), any::<i32>(), text(), prop::option::of(text())),
    )
        .prop_map(
            |(
                (request_id, notification_type, user_id, template_code),
                (variables, priority, metadata, correlation_id),
            )| {
                IngestRequest {
                    request_id,
                    notification_type,
                    user_id,
                    template_code,
                    variables,
                    priority,
                    metadata,
                    correlation_id,
                }
            },
        )
}

const STATUSES: [DeliveryStatus; 9] = [
    DeliveryStatus::Published,
    DeliveryStatus::Sending,
    DeliveryStatus::Sent,
    DeliveryStatus::Delivered,
    DeliveryStatus::Bounced,
    DeliveryStatus::Retrying,
    DeliveryStatus::DeadLettered,
    DeliveryStatus::Skipped,
    DeliveryStatus::Failed,
];

fn status_changed() -> impl Strategy<Value = NotificationStatusChanged> {
    (
        (
            any::<u128>(),
            channel(),
            prop::sample::select(STATUSES.to_vec()),
            any::<i32>(),
            any::<i64>(),
        ),
        (
            prop::option::of(text()),
            prop::option::of(text()),
            text(),
            prop::option::of(any::<i32>()),
            prop::option::of(text()),
            text(),
        ),
    )
        .prop_map(
            |(
                (id, channel, status, attempt, occurred_at),
                (error, provider, correlation_id, template_version, language, source),
            )| NotificationStatusChanged {
                notification_id: NotificationId::from(Uuid::from_u128(id)),
                channel,
                status,
                attempt,
                occurred_at,
                error,
                provider,
                correlation_id,
                template_version,
                language,
                source,
            },
        )
}

fn round_trip<T>(contract: &Contract, id: u32, value: &T) -> Result<T, TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let schema = parse_schema(contract).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let bytes = wire::encode(&schema, id, value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut frame = vec![0u8];
    frame.extend_from_slice(&id.to_be_bytes());
    prop_assert_eq!(&bytes[..5], &frame[..]);
    prop_assert_eq!(wire::schema_id(&bytes).ok(), Some(id));
    wire::decode(&schema, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn notification_requested_survives_the_wire(value in requested(), id in any::<u32>()) {
        prop_assert_eq!(round_trip(&NOTIFICATION_REQUESTED, id, &value)?, value);
    }

    #[test]
    fn notification_status_changed_survives_the_wire(value in status_changed(), id in any::<u32>()) {
        prop_assert_eq!(round_trip(&NOTIFICATION_STATUS, id, &value)?, value);
    }

    #[test]
    fn a_producer_request_survives_the_wire(value in ingest_request(), id in any::<u32>()) {
        prop_assert_eq!(round_trip(&NOTIFICATION_REQUEST, id, &value)?, value);
    }

    /// Any bytes at all, read as either contract: a value or an error, never a panic; a
    /// payload that is not framed is refused before the datum is read.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..256).prop_map(|d| [vec![0, 0, 0, 0, 1], d].concat()),
        ],
    ) {
        for contract in CONTRACTS {
            let schema = parse_schema(contract).unwrap();
            let requested = wire::decode::<NotificationRequested>(&schema, &bytes);
            let status = wire::decode::<NotificationStatusChanged>(&schema, &bytes);
            if bytes.len() < 5 {
                prop_assert!(matches!(requested, Err(WireError::TooShort(_))));
                prop_assert!(matches!(status, Err(WireError::TooShort(_))));
            } else if bytes[0] != 0 {
                prop_assert!(matches!(requested, Err(WireError::BadMagic(_))));
            }
        }
    }
}

/// A contract added to [`CONTRACTS`] without a round-trip property fails here.
#[test]
fn every_contract_has_a_round_trip_property() {
    let covered = [
        NOTIFICATION_REQUESTED.subject,
        NOTIFICATION_STATUS.subject,
        NOTIFICATION_REQUEST.subject,
    ];
    for c in CONTRACTS {
        assert!(
            covered.contains(&c.subject),
            "{} has no round-trip property in contract_props.rs",
            c.subject
        );
    }
}
