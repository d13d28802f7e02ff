//! Outbox payloads are JSON (the gateway links no Avro or registry client); the relay
//! encodes them to Avro in the Confluent wire format with the latest registered schema of
//! the row's `event_type` (a contract subject).

use std::{collections::HashMap, sync::Arc};

use notify_schemas::{
    registry::{RegisteredSchema, SchemaRegistry},
    wire, NotificationRequested, NotificationStatusChanged, NOTIFICATION_REQUESTED, NOTIFICATION_STATUS,
};
use serde_json::Value;
use tokio::sync::RwLock;

/// Why a payload could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The registry is unreachable: try again later.
    #[error("schema registry: {0}")]
    Registry(String),
    /// The row itself is bad (unknown event type, payload not matching its contract).
    #[error("{0}")]
    Invalid(String),
}

impl EncodeError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Invalid(_))
    }
}

/// Encodes outbox payloads, caching each subject's schema after the first lookup.
#[derive(Clone)]
pub struct Encoder {
    registry: SchemaRegistry,
    schemas: Arc<RwLock<HashMap<String, RegisteredSchema>>>,
}

impl Encoder {
    pub fn new(registry: SchemaRegistry) -> Self {
        Self {
            registry,
            schemas: Arc::default(),
        }
    }

    async fn schema(&self, subject: &str) -> Result<RegisteredSchema, EncodeError> {
        if let Some(s) = self.schemas.read().await.get(subject) {
            return Ok(s.clone());
        }
        let s = self.registry.latest(subject).await.map_err(|e| {
            if e.is_not_found() {
                EncodeError::Registry(format!(
                    "subject {subject} is not registered (run the deploy step): {e}"
                ))
            } else {
                EncodeError::Registry(e.to_string())
            }
        })?;
        self.schemas.write().await.insert(subject.to_string(), s.clone());
        Ok(s)
    }

    /// Encodes one payload of type `event_type`.
    pub async fn encode(&self, event_type: &str, payload: &Value) -> Result<Vec<u8>, EncodeError> {
        let schema = self.schema(event_type).await?;
        let invalid = |e: &dyn std::fmt::Display| EncodeError::Invalid(format!("{event_type}: {e}"));
        if event_type == NOTIFICATION_REQUESTED.subject {
            let ev: NotificationRequested = serde_json::from_value(payload.clone()).map_err(|e| invalid(&e))?;
            wire::encode(&schema.schema, schema.id, &ev).map_err(|e| invalid(&e))
        } else if event_type == NOTIFICATION_STATUS.subject {
            let ev: NotificationStatusChanged = serde_json::from_value(payload.clone()).map_err(|e| invalid(&e))?;
            wire::encode(&schema.schema, schema.id, &ev).map_err(|e| invalid(&e))
        } else {
            Err(EncodeError::Invalid(format!("unknown event type {event_type}")))
        }
    }

    /// Looks up every subject the relay writes, so a missing registration shows at start.
    pub async fn warm_up(&self) -> Result<(), EncodeError> {
        for subject in [NOTIFICATION_REQUESTED.subject, NOTIFICATION_STATUS.subject] {
            self.schema(subject).await?;
        }
        Ok(())
    }
}
