//! The relay's side of the outbox: claim, mark published, record failures, park, sweep.

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

/// A claimed outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub shard: i16,
    pub topic: String,
    pub message_key: String,
    pub event_type: String,
    pub payload: Value,
    pub headers: Value,
    pub attempts: i32,
}

/// Claims up to `limit` publishable rows of `shards`, oldest first, locking them
/// (`FOR UPDATE SKIP LOCKED`) for the caller's open transaction.
///
/// A row is publishable when it is neither published nor parked, its back-off (if any) is
/// over, and no earlier row of the same key is still backing off: a failed row holds back
/// the rest of its key, so per-key order survives publish failures.
pub async fn claim(conn: &mut PgConnection, shards: &[i16], limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as::<_, OutboxRow>(
        r#"
SELECT o.id, o.shard, o.topic, o.message_key, o.event_type, o.payload, o.headers, o.attempts
  FROM outbox o
 WHERE o.published_at IS NULL AND o.parked_at IS NULL
   AND o.shard = ANY($1)
   AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
   AND NOT EXISTS (
        SELECT 1 FROM outbox b
         WHERE b.shard = o.shard AND b.message_key = o.message_key AND b.id < o.id
           AND b.published_at IS NULL AND b.parked_at IS NULL
           AND b.next_attempt_at IS NOT NULL AND b.next_attempt_at > now())
 ORDER BY o.id
 LIMIT $2
   FOR UPDATE OF o SKIP LOCKED
"#,
    )
    .bind(shards)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Marks rows published (after the broker acknowledged them). `published_at` is the time of
/// this statement, after the acks (`clock_timestamp()`, not the claim transaction's start), so
/// `published_at - created_at` is how long a committed row waited for its broker ack.
pub async fn mark_published(conn: &mut PgConnection, ids: &[i64]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE outbox SET published_at = clock_timestamp(), next_attempt_at = NULL, last_error = NULL
          WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A failed publish of one row.
#[derive(Debug, Clone)]
pub struct PublishFailure {
    pub id: i64,
    pub error: String,
    /// True when retrying cannot help (e.g. the record exceeds the broker's size limit).
    pub permanent: bool,
    /// How long to wait before the next attempt.
    pub retry_in: std::time::Duration,
}

/// Records failures: bumps attempts, stores the error and the back-off, and parks rows whose
/// permanent failures reached `max_attempts`. Returns the ids that were parked.
pub async fn record_failures(
    conn: &mut PgConnection,
    failures: &[PublishFailure],
    max_attempts: i32,
) -> Result<Vec<i64>, sqlx::Error> {
    if failures.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
    let errors: Vec<String> = failures.iter().map(|f| f.error.clone()).collect();
    let permanent: Vec<bool> = failures.iter().map(|f| f.permanent).collect();
    let delays: Vec<f64> = failures.iter().map(|f| f.retry_in.as_secs_f64()).collect();
    let rows = sqlx::query(
        r#"
UPDATE outbox o
   SET attempts = o.attempts + 1,
       last_error = f.error,
       next_attempt_at = now() + make_interval(secs => f.delay),
       parked_at = CASE WHEN f.permanent AND o.attempts + 1 >= $5 THEN now() END
  FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::float8[]) AS f(id, error, permanent, delay)
 WHERE o.id = f.id
RETURNING o.id, o.parked_at IS NOT NULL AS parked
"#,
    )
    .bind(&ids)
    .bind(&errors)
    .bind(&permanent)
    .bind(&delays)
    .bind(max_attempts)
    .fetch_all(conn)
    .await?;
    let mut parked = Vec::new();
    for r in rows {
        if r.try_get::<bool, _>("parked")? {
            parked.push(r.try_get::<i64, _>("id")?);
        }
    }
    Ok(parked)
}

/// Deletes at most `batch` rows published before `older_than` ago.
pub async fn delete_published(pool: &PgPool, older_than: std::time::Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id IN (
            SELECT id FROM outbox
             WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)
             LIMIT $2)",
    )
    .bind(older_than.as_secs_f64())
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Outbox backlog: unpublished rows, the age of the oldest in seconds, and parked rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub pending: i64,
    pub oldest_age_secs: f64,
    pub parked: i64,
}

/// Reads the backlog figures.
pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let r = sqlx::query(
        "SELECT
           (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS pending,
           (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
              FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS oldest,
           (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL) AS parked",
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        pending: r.try_get("pending")?,
        oldest_age_secs: r.try_get("oldest")?,
        parked: r.try_get("parked")?,
    })
}

/// Wakes the relays after outbox rows were committed, coalescing: however many rows commit
/// meanwhile, at most one `NOTIFY` is in progress and the next follows at least `spacing`
/// later. Each `NOTIFY` is its own small transaction, outside the writers' commits. A wake
/// lost to a crash between a commit and its `NOTIFY` only costs the relay's poll interval.
#[derive(Clone)]
pub struct RelayWaker {
    wanted: std::sync::Arc<tokio::sync::Notify>,
}

impl RelayWaker {
    /// Starts the notifying task (it ends with the runtime).
    pub fn spawn(pool: PgPool, spacing: std::time::Duration) -> Self {
        let wanted = std::sync::Arc::new(tokio::sync::Notify::new());
        let signal = wanted.clone();
        tokio::spawn(async move {
            loop {
                signal.notified().await;
                if let Err(e) = wake_relays(&pool).await {
                    tracing::warn!(error = %e, "cannot NOTIFY the relays; they will poll");
                }
                tokio::time::sleep(spacing).await;
            }
        });
        Self { wanted }
    }

    /// Asks for a `NOTIFY` (returns at once).
    pub fn wake(&self) {
        self.wanted.notify_one();
    }
}

/// One `NOTIFY` to the relays (see [`RelayWaker`] for the coalescing one).
pub async fn wake_relays(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(crate::OUTBOX_CHANNEL)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Writes one outbox row on its own (and wakes the relay), for events that are not part of a
/// notification's acceptance (e.g. a provider's delivery report).
pub async fn enqueue(pool: &PgPool, msg: &crate::notifications::NewOutboxMessage<'_>) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "WITH o AS (
            INSERT INTO outbox (shard, topic, message_key, event_type, payload, headers)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING id)
         SELECT id, (SELECT pg_notify('notify_outbox', '')) IS NULL AS woken FROM o",
    )
    .bind(msg.shard)
    .bind(msg.topic)
    .bind(msg.message_key)
    .bind(msg.event_type)
    .bind(msg.payload)
    .bind(msg.headers)
    .fetch_one(pool)
    .await?;
    row.try_get("id")
}

/// A notification's channel and attempts, if it exists (for status reports).
pub async fn notification_channel(
    pool: &PgPool,
    id: notify_schemas::ids::NotificationId,
) -> Result<Option<(String, i32)>, sqlx::Error> {
    let row = sqlx::query("SELECT channel, attempts FROM notifications WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    row.map(|r| Ok((r.try_get("channel")?, r.try_get("attempts")?)))
        .transpose()
}
