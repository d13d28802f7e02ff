//! The suppression list (`suppressions`, migration 0002).

use chrono::{DateTime, Utc};
use notify_schemas::{ids::UserId, Channel};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{NewSuppression, SuppressionTarget};

/// A stored suppression.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Suppression {
    pub channel: String,
    pub address: String,
    pub reason: String,
    pub source: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "channel, address, reason, source, detail, created_at, updated_at";

/// The reasons from weakest to strongest (see `domain::Reason::strength`): SQL's
/// `array_position` over it ranks two reasons.
const STRENGTH_ORDER: &str = "ARRAY['manual', 'hard_bounce', 'unsubscribe', 'complaint']";

#[derive(sqlx::FromRow)]
struct Upserted {
    #[sqlx(flatten)]
    row: Suppression,
    inserted: bool,
}

/// Records `new` for `target` with `source`. A new entry is created; on an existing one the
/// first `created_at` stays, `updated_at` moves to now, and reason, source and detail are
/// replaced only when the new reason is stronger. Returns the entry as stored and whether it
/// was created.
#[tracing::instrument(skip_all, fields(channel = %target.channel))]
pub async fn upsert(
    pool: &PgPool,
    target: &SuppressionTarget,
    new: &NewSuppression,
    source: &str,
) -> Result<(Suppression, bool), sqlx::Error> {
    let stronger = format!(
        "array_position({STRENGTH_ORDER}, EXCLUDED.reason) > array_position({STRENGTH_ORDER}, suppressions.reason)"
    );
    let upserted = sqlx::query_as::<_, Upserted>(&format!(
        "INSERT INTO suppressions (channel, address, reason, source, detail)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (channel, address) DO UPDATE SET
            reason = CASE WHEN {stronger} THEN EXCLUDED.reason ELSE suppressions.reason END,
            source = CASE WHEN {stronger} THEN EXCLUDED.source ELSE suppressions.source END,
            detail = CASE WHEN {stronger} THEN EXCLUDED.detail ELSE suppressions.detail END,
            updated_at = now()
         RETURNING {COLUMNS}, (xmax = 0) AS inserted"
    ))
    .bind(target.channel.as_str())
    .bind(target.address())
    .bind(new.reason.as_str())
    .bind(source)
    .bind(new.detail.as_deref())
    .fetch_one(pool)
    .await?;
    Ok((upserted.row, upserted.inserted))
}

/// The entry of `target`, if suppressed.
pub async fn get(pool: &PgPool, target: &SuppressionTarget) -> Result<Option<Suppression>, sqlx::Error> {
    sqlx::query_as::<_, Suppression>(&format!(
        "SELECT {COLUMNS} FROM suppressions WHERE channel = $1 AND address = $2"
    ))
    .bind(target.channel.as_str())
    .bind(target.address())
    .fetch_optional(pool)
    .await
}

/// The entry of an email address as stored on a user (any case), if suppressed.
pub async fn of_email(pool: &PgPool, email: &str) -> Result<Option<Suppression>, sqlx::Error> {
    sqlx::query_as::<_, Suppression>(&format!(
        "SELECT {COLUMNS} FROM suppressions WHERE channel = 'email' AND address = lower($1)"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Lifts the suppression of `target`; false when there was none.
#[tracing::instrument(skip_all, fields(channel = %target.channel))]
pub async fn delete(pool: &PgPool, target: &SuppressionTarget) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM suppressions WHERE channel = $1 AND address = $2")
        .bind(target.channel.as_str())
        .bind(target.address())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// One page of entries (of `channel`, or all), oldest first, and the total count.
pub async fn list(
    pool: &PgPool,
    channel: Option<Channel>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Suppression>, u64), sqlx::Error> {
    let channel = channel.map(Channel::as_str);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions WHERE ($1::text IS NULL OR channel = $1)")
        .bind(channel)
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query_as::<_, Suppression>(&format!(
        "SELECT {COLUMNS} FROM suppressions WHERE ($1::text IS NULL OR channel = $1)
         ORDER BY created_at, channel, address OFFSET $2 LIMIT $3"
    ))
    .bind(channel)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// The users whose cached recipient shows the suppression state of `target`: for email,
/// the user whose address it is (any case). Push suppressions are not part of the cached
/// recipient, so none.
pub async fn users_to_invalidate(pool: &PgPool, target: &SuppressionTarget) -> Result<Vec<UserId>, sqlx::Error> {
    match target.channel {
        Channel::Email => {
            let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = $1")
                .bind(target.address())
                .fetch_all(pool)
                .await?;
            Ok(ids.into_iter().map(UserId::from).collect())
        }
        Channel::Push => Ok(Vec::new()),
    }
}
