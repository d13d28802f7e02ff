//! The Confluent wire format: byte 0 is the magic `0`, bytes 1..5 the schema id (big endian),
//! then the Avro binary datum.

use apache_avro::{from_avro_datum, from_value, to_avro_datum, to_value, Schema};
use serde::{de::DeserializeOwned, Serialize};

/// Why a payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("payload is {0} bytes; the wire format needs at least 5")]
    TooShort(usize),
    #[error("unknown magic byte {0} (expected 0)")]
    BadMagic(u8),
    #[error("avro: {0}")]
    Avro(Box<apache_avro::Error>),
}

impl From<apache_avro::Error> for WireError {
    fn from(e: apache_avro::Error) -> Self {
        Self::Avro(Box::new(e))
    }
}

/// Reads the schema id from a framed payload.
pub fn schema_id(payload: &[u8]) -> Result<u32, WireError> {
    if payload.len() < 5 {
        return Err(WireError::TooShort(payload.len()));
    }
    if payload[0] != 0 {
        return Err(WireError::BadMagic(payload[0]));
    }
    Ok(u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]))
}

/// Encodes `value` with `schema` and frames it with `schema_id`.
pub fn encode<T: Serialize>(schema: &Schema, schema_id: u32, value: &T) -> Result<Vec<u8>, WireError> {
    let value = to_value(value)?.resolve(schema)?;
    let datum = to_avro_datum(schema, value)?;
    let mut out = Vec::with_capacity(datum.len() + 5);
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(&datum);
    Ok(out)
}

/// Decodes a framed payload written with `writer` (the schema its id names), read as `T`.
pub fn decode<T: DeserializeOwned>(writer: &Schema, payload: &[u8]) -> Result<T, WireError> {
    schema_id(payload)?;
    let mut body = &payload[5..];
    let value = from_avro_datum(writer, &mut body, None)?;
    Ok(from_value::<T>(&value)?)
}

/// Decodes a framed payload written with `writer`, resolved to `reader` (Avro schema
/// resolution: fields the reader lacks are skipped, fields the writer lacks take the reader's
/// default), read as `T`. What a consumer on one version of a contract does with records
/// written with another.
pub fn decode_as<T: DeserializeOwned>(writer: &Schema, reader: &Schema, payload: &[u8]) -> Result<T, WireError> {
    schema_id(payload)?;
    let mut body = &payload[5..];
    let value = from_avro_datum(writer, &mut body, Some(reader))?;
    Ok(from_value::<T>(&value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn sample() -> NotificationRequested {
        NotificationRequested {
            notification_id: "0190f3c4-8d6e-7b1a-9c2d-3e4f5a6b7c8d".parse().unwrap(),
            channel: Channel::Push,
            user_id: "6c1b2a3d-0000-4000-8000-000000000001".parse().unwrap(),
            template_code: "welcome_email".into(),
            variables_json: r#"{"name":"Zoë"}"#.into(),
            priority: 7,
            metadata_json: "{}".into(),
            request_id: "req-1".into(),
            caller: "billing".into(),
            correlation_id: "corr-1".into(),
            requested_at: 1_700_000_000_123,
        }
    }

    #[test]
    fn a_request_survives_the_wire_format() {
        let schema = parse_schema(&NOTIFICATION_REQUESTED).unwrap();
        let bytes = encode(&schema, 42, &sample()).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
        assert_eq!(schema_id(&bytes).unwrap(), 42);
        let back: NotificationRequested = decode(&schema, &bytes).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn a_request_whose_ids_are_not_uuids_does_not_decode() {
        // Written by a producer that knows only the schema (any string is valid Avro).
        #[derive(serde::Serialize)]
        struct Loose<'a> {
            notification_id: &'a str,
            channel: Channel,
            user_id: &'a str,
            template_code: &'a str,
            variables_json: &'a str,
            priority: i32,
            metadata_json: &'a str,
            request_id: &'a str,
            caller: &'a str,
            correlation_id: &'a str,
            requested_at: i64,
        }
        let schema = parse_schema(&NOTIFICATION_REQUESTED).unwrap();
        for (notification_id, user_id, field) in [
            ("", "6c1b2a3d-0000-4000-8000-000000000001", "notification_id"),
            ("0190f3c4-8d6e-7b1a-9c2d-3e4f5a6b7c8d", "u-1", "user_id"),
        ] {
            let loose = Loose {
                notification_id,
                channel: Channel::Email,
                user_id,
                template_code: "t",
                variables_json: "{}",
                priority: 0,
                metadata_json: "{}",
                request_id: "r",
                caller: "c",
                correlation_id: "c",
                requested_at: 0,
            };
            let bytes = encode(&schema, 1, &loose).unwrap();
            let err = decode::<NotificationRequested>(&schema, &bytes)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{field} `")), "{err}");
        }
    }

    #[test]
    fn a_status_event_with_optional_fields_round_trips() {
        let schema = parse_schema(&NOTIFICATION_STATUS).unwrap();
        for error in [None, Some("smtp 451".to_string())] {
            let ev = NotificationStatusChanged {
                notification_id: ids::NotificationId::new_v7(),
                channel: Channel::Email,
                status: DeliveryStatus::DeadLettered,
                attempt: 3,
                occurred_at: 5,
                error: error.clone(),
                provider: Some("smtp".into()),
                correlation_id: "c".into(),
                template_version: Some(2),
                language: error.as_ref().map(|_| "fr".to_string()),
                source: "worker".into(),
            };
            let bytes = encode(&schema, 1, &ev).unwrap();
            let back: NotificationStatusChanged = decode(&schema, &bytes).unwrap();
            assert_eq!(back, ev);
        }
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        let schema = parse_schema(&NOTIFICATION_REQUESTED).unwrap();
        assert!(matches!(schema_id(&[0, 1]), Err(WireError::TooShort(2))));
        assert!(matches!(schema_id(&[9, 0, 0, 0, 1]), Err(WireError::BadMagic(9))));
        assert!(decode::<NotificationRequested>(&schema, &[0, 0, 0, 0, 1, 0xff, 0xff]).is_err());
    }
}
