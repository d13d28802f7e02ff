//! Notifications, their status history and idempotency records.

use chrono::{DateTime, Utc};
use notify_schemas::ids::{NotificationId, UserId};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Everything the gateway writes for one accepted request.
#[derive(Debug)]
pub struct NewNotification<'a> {
    pub id: NotificationId,
    pub caller: &'a str,
    pub request_id: &'a str,
    /// SHA-256 of the canonical request body: tells a replay from a conflicting reuse.
    pub request_hash: &'a [u8],
    pub user_id: UserId,
    pub channel: &'a str,
    pub template_code: &'a str,
    pub variables: &'a Value,
    pub priority: i16,
    pub metadata: &'a Value,
    pub correlation_id: &'a str,
    pub created_at: DateTime<Utc>,
    /// The response to replay for a repeated request.
    pub response_status: i16,
    pub response_body: &'a Value,
    /// How long the idempotency record is kept.
    pub idempotency_ttl: std::time::Duration,
}

/// The outbox row written with it.
#[derive(Debug)]
pub struct NewOutboxMessage<'a> {
    pub shard: i16,
    pub topic: &'a str,
    pub message_key: &'a str,
    pub event_type: &'a str,
    pub payload: &'a Value,
    pub headers: &'a Value,
}

/// What an earlier request with the same idempotency key stored.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub request_hash: Vec<u8>,
    pub notification_id: NotificationId,
    pub status: i16,
    pub body: Value,
}

/// Outcome of [`accept`].
#[derive(Debug)]
pub enum AcceptOutcome {
    /// The notification, its outbox row and its idempotency record were committed.
    Created,
    /// The key was already used (and has not expired); nothing was written.
    Existing(StoredResponse),
}

/// Writes the idempotency record, the notification (status `pending`), its first history
/// entry and its outbox row atomically. The caller then wakes the relay with an
/// [`crate::outbox::RelayWaker`]: a `NOTIFY` inside this transaction would make every commit
/// take PostgreSQL's global notification lock, serialising all of them.
///
/// One statement with data-modifying CTEs, so one round trip and one (implicit)
/// transaction: either all rows exist or none. The idempotency insert comes first; when the
/// key exists and has not expired it inserts nothing and so does every CTE after it. A
/// concurrent request with the same key waits on the key's unique index until the first
/// commits, then sees the conflict: concurrent duplicates create exactly one notification.
pub async fn accept(
    pool: &PgPool,
    n: &NewNotification<'_>,
    msg: &NewOutboxMessage<'_>,
) -> Result<AcceptOutcome, sqlx::Error> {
    const SQL: &str = r#"
WITH idem AS (
    INSERT INTO idempotency_keys
        (caller, request_id, request_hash, notification_id, response_status, response_body, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7 + make_interval(secs => $8))
    ON CONFLICT (caller, request_id) DO UPDATE
        SET request_hash = EXCLUDED.request_hash,
            notification_id = EXCLUDED.notification_id,
            response_status = EXCLUDED.response_status,
            response_body = EXCLUDED.response_body,
            created_at = EXCLUDED.created_at,
            expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now()
    RETURNING notification_id
), n AS (
    INSERT INTO notifications
        (id, caller, request_id, user_id, channel, template_code, variables, priority, metadata,
         correlation_id, status, created_at, updated_at)
    SELECT notification_id, $1, $2, $9, $10, $11, $12, $13, $14, $15, 'pending', $7, $7 FROM idem
    RETURNING id
), h AS (
    INSERT INTO notification_status_history (notification_id, status, occurred_at)
    SELECT id, 'pending', $7 FROM n
    RETURNING id
), o AS (
    INSERT INTO outbox (shard, topic, message_key, event_type, payload, headers)
    SELECT $16, $17, $18, $19, $20, $21 FROM n
    RETURNING id
)
SELECT (SELECT count(*) FROM o) AS inserted,
       (SELECT count(*) FROM h) AS history
"#;
    // A key that expires between the conflict and the lookup below is retried once more.
    for _ in 0..3 {
        let row = sqlx::query(SQL)
            .bind(n.caller)
            .bind(n.request_id)
            .bind(n.request_hash)
            .bind(n.id.as_uuid())
            .bind(n.response_status)
            .bind(n.response_body)
            .bind(n.created_at)
            .bind(n.idempotency_ttl.as_secs_f64())
            .bind(n.user_id.as_uuid())
            .bind(n.channel)
            .bind(n.template_code)
            .bind(n.variables)
            .bind(n.priority)
            .bind(n.metadata)
            .bind(n.correlation_id)
            .bind(msg.shard)
            .bind(msg.topic)
            .bind(msg.message_key)
            .bind(msg.event_type)
            .bind(msg.payload)
            .bind(msg.headers)
            .fetch_one(pool)
            .await?;
        let inserted: i64 = row.try_get("inserted")?;
        if inserted == 1 {
            return Ok(AcceptOutcome::Created);
        }
        let existing = sqlx::query(
            "SELECT request_hash, notification_id, response_status, response_body
               FROM idempotency_keys WHERE caller = $1 AND request_id = $2",
        )
        .bind(n.caller)
        .bind(n.request_id)
        .fetch_optional(pool)
        .await?;
        if let Some(r) = existing {
            return Ok(AcceptOutcome::Existing(StoredResponse {
                request_hash: r.try_get("request_hash")?,
                notification_id: r.try_get::<Uuid, _>("notification_id")?.into(),
                status: r.try_get("response_status")?,
                body: r.try_get("response_body")?,
            }));
        }
    }
    Err(sqlx::Error::Protocol(
        "idempotency key kept changing while it was read".into(),
    ))
}

/// Deletes idempotency records past their expiry, at most `batch` at a time.
pub async fn delete_expired_idempotency_keys(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid IN
           (SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1)",
    )
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// A notification as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    #[sqlx(try_from = "Uuid")]
    pub id: NotificationId,
    pub caller: String,
    pub request_id: String,
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    pub channel: String,
    pub template_code: String,
    pub variables: Value,
    pub priority: i16,
    pub metadata: Value,
    pub correlation_id: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub template_version: Option<i32>,
    pub language: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a notification's status history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub status: String,
    pub attempt: i32,
    pub error: Option<String>,
    pub provider: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// A notification and its history, oldest entry first.
pub async fn get(pool: &PgPool, id: NotificationId) -> Result<Option<(NotificationRow, Vec<HistoryRow>)>, sqlx::Error> {
    let Some(n) = sqlx::query_as::<_, NotificationRow>(
        "SELECT id, caller, request_id, user_id, channel, template_code, variables, priority,
                metadata, correlation_id, status, attempts, last_error, template_version, language,
                created_at, updated_at
           FROM notifications WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let history = sqlx::query_as::<_, HistoryRow>(
        "SELECT status, attempt, error, provider, occurred_at
           FROM notification_status_history WHERE notification_id = $1 ORDER BY id",
    )
    .bind(id.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(Some((n, history)))
}
