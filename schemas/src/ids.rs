//! Typed ids: the ids that travel between the services, each its own type, so a user id cannot
//! be passed where a notification id is expected, and a missing or malformed id is an error
//! where it is read (an HTTP body, an Avro record), never an empty string further down.
//!
//! On the wire (JSON, Avro `string`) each is the UUID's hyphenated text, as before.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An id that is not a UUID (or is empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not a UUID")]
pub struct InvalidId {
    /// Which id (`notification_id`, `user_id`).
    pub what: &'static str,
    /// The text that was given, cut to 64 characters.
    pub value: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the UUID text of an id (what every wire format carries).
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                Uuid::try_parse(s).map(Self).map_err(|_| InvalidId {
                    what: $what,
                    value: s.chars().take(64).collect(),
                })
            }

            /// The UUID, for storage.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// The id of one notification: made by the gateway, the key of the status topic, the
    /// idempotency key of every delivery.
    NotificationId,
    "notification_id"
);

uuid_id!(
    /// The id of a user (user-svc's), the recipient of a notification and the key of the
    /// request topics.
    UserId,
    "user_id"
);

impl NotificationId {
    /// A new id, time-ordered (UUIDv7), as the gateway assigns them.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_through_its_text_and_json() {
        let id = NotificationId::new_v7();
        assert_eq!(NotificationId::parse(&id.to_string()), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<NotificationId>(&json).unwrap(), id);
    }

    #[test]
    fn an_empty_or_malformed_id_is_an_error_that_names_the_field() {
        let e = UserId::parse("").unwrap_err();
        assert_eq!(e.what, "user_id");
        assert!(serde_json::from_str::<NotificationId>("\"not-a-uuid\"")
            .unwrap_err()
            .to_string()
            .contains("notification_id `not-a-uuid` is not a UUID"));
    }
}
