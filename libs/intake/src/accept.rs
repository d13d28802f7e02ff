//! Accepting a validated request: the notification (`pending`), its first history entry, its
//! outbox row (the `NotificationRequested` event for the relay) and the idempotency record
//! `(caller, request_id)` in one transaction ([`notify_store::notifications::accept`]).
//!
//! The caller is an authenticated identity: the API's bearer-token subject, or the producer
//! named by a Kafka request's producer token. Both share one idempotency table, so the rules
//! are the same: a repeated request with the same body replays the first answer, with another
//! body it is a conflict.

use chrono::{DateTime, Utc};
use notify_schemas::{headers, ids::NotificationId, topics::Topics, NotificationRequested, NOTIFICATION_REQUESTED};
use notify_store::notifications::{self as store, AcceptOutcome, NewNotification, NewOutboxMessage, StoredResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::request::NotificationRequest;

/// What an accepted notification answers (the body of the API's `202`, and the response the
/// idempotency record replays).
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[schema(value_type = uuid::Uuid)]
    pub notification_id: NotificationId,
    pub request_id: String,
    pub notification_type: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// One request to accept, with who sent it and the context it travels with.
#[derive(Debug)]
pub struct Submission<'a> {
    pub request: &'a NotificationRequest,
    /// The authenticated caller: the idempotency scope and the notification's `caller`.
    pub caller: &'a str,
    pub correlation_id: &'a str,
    /// W3C `traceparent` handed on to the relay and the worker.
    pub traceparent: &'a str,
    /// How long the idempotency record is kept.
    pub idempotency_ttl: std::time::Duration,
}

/// What [`accept`] did.
#[derive(Debug)]
pub enum Acceptance {
    /// Committed: the notification, its outbox row and its idempotency record. Wake the relay.
    Created {
        notification_id: NotificationId,
        /// The `202` body (the API envelope), as stored for replays.
        response_body: Value,
    },
    /// The same caller sent the same request before: nothing was written.
    Replayed(StoredResponse),
    /// The same caller used this `request_id` for a different request: nothing was written.
    Conflict(StoredResponse),
}

/// Why a request could not be accepted (never the request's fault: it was validated).
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("failed to serialise the notification: {0}")]
    Serialise(#[from] serde_json::Error),
    #[error("failed to store the notification: {0}")]
    Store(#[from] sqlx::Error),
}

/// Writes the notification, its outbox row and its idempotency record in one transaction, or
/// reports the earlier request with the same `(caller, request_id)`.
#[tracing::instrument(skip_all, fields(caller = %s.caller, request_id = %s.request.request_id.as_str()))]
pub async fn accept(pool: &sqlx::PgPool, s: &Submission<'_>) -> Result<Acceptance, AcceptError> {
    let request = s.request;
    let fingerprint = request.fingerprint();
    let id = NotificationId::new_v7();
    let now = Utc::now();
    let accepted = Accepted {
        notification_id: id,
        request_id: request.request_id.as_str().to_string(),
        notification_type: request.channel.as_str().to_string(),
        status: "pending".into(),
        created_at: now,
    };
    let response_body = serde_json::to_value(notify_kit::ApiResponse::ok(&accepted, "notification accepted"))?;
    let variables = Value::Object(request.variables.clone());
    let metadata = Value::Object(request.metadata.clone());
    let user_key = request.user_id.to_string();
    let event = NotificationRequested {
        notification_id: id,
        channel: request.channel,
        user_id: request.user_id,
        template_code: request.template_code.as_str().to_string(),
        variables_json: variables.to_string(),
        priority: i32::from(request.priority.value()),
        metadata_json: metadata.to_string(),
        request_id: request.request_id.as_str().to_string(),
        caller: s.caller.to_string(),
        correlation_id: s.correlation_id.to_string(),
        requested_at: now.timestamp_millis(),
    };
    let payload = serde_json::to_value(&event)?;
    let event_headers = json!({
        headers::NOTIFICATION_ID: id.to_string(),
        headers::CORRELATION_ID: s.correlation_id,
        headers::TRACEPARENT: s.traceparent,
    });
    let topic = Topics::logical_requests(request.channel, request.priority.is_high());
    let outcome = store::accept(
        pool,
        &NewNotification {
            id,
            caller: s.caller,
            request_id: request.request_id.as_str(),
            request_hash: &fingerprint,
            user_id: request.user_id,
            channel: request.channel.as_str(),
            template_code: request.template_code.as_str(),
            variables: &variables,
            priority: request.priority.value(),
            metadata: &metadata,
            correlation_id: s.correlation_id,
            created_at: now,
            response_status: 202,
            response_body: &response_body,
            idempotency_ttl: s.idempotency_ttl,
        },
        &NewOutboxMessage {
            shard: notify_store::shard_of(&user_key),
            topic: &topic,
            message_key: &user_key,
            event_type: NOTIFICATION_REQUESTED.subject,
            payload: &payload,
            headers: &event_headers,
        },
    )
    .await?;
    Ok(match outcome {
        AcceptOutcome::Created => Acceptance::Created {
            notification_id: id,
            response_body,
        },
        AcceptOutcome::Existing(stored) if stored.request_hash == fingerprint => Acceptance::Replayed(stored),
        AcceptOutcome::Existing(stored) => Acceptance::Conflict(stored),
    })
}
