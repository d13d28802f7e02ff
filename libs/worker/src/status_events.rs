//! Status events: every outcome is published to `notifications.status` (Avro), keyed by the
//! notification id, and acknowledged before the offset of the record is committed. The
//! status projector applies them (see `notify_store::state_machine`).

use notify_schemas::{
    ids::NotificationId,
    registry::{RegisteredSchema, SchemaRegistry},
    wire, Channel, DeliveryStatus, NotificationStatusChanged, NOTIFICATION_STATUS,
};
use tokio::sync::OnceCell;

/// Encodes status events with the registered schema (looked up once, then cached).
pub struct StatusEncoder {
    registry: SchemaRegistry,
    schema: OnceCell<RegisteredSchema>,
}

/// One status to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub notification_id: NotificationId,
    pub status: DeliveryStatus,
    pub attempt: i32,
    pub error: Option<String>,
    pub provider: Option<String>,
    pub correlation_id: String,
    pub template_version: Option<i32>,
    pub language: Option<String>,
}

impl StatusEncoder {
    pub fn new(registry: SchemaRegistry) -> Self {
        Self {
            registry,
            schema: OnceCell::new(),
        }
    }

    pub async fn encode(&self, channel: Channel, u: &StatusUpdate) -> anyhow::Result<Vec<u8>> {
        let schema = self
            .schema
            .get_or_try_init(|| self.registry.latest(NOTIFICATION_STATUS.subject))
            .await?;
        let ev = NotificationStatusChanged {
            notification_id: u.notification_id,
            channel,
            status: u.status,
            attempt: u.attempt,
            occurred_at: chrono::Utc::now().timestamp_millis(),
            error: u.error.clone(),
            provider: u.provider.clone(),
            correlation_id: u.correlation_id.clone(),
            template_version: u.template_version,
            language: u.language.clone(),
            source: "worker".into(),
        };
        Ok(wire::encode(&schema.schema, schema.id, &ev)?)
    }
}
