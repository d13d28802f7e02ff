//! Devices (the `push_tokens` table) and their history (`device_events`).

use chrono::{DateTime, Utc};
use notify_schemas::ids::UserId;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use notify_lookup::{Platform, PushProvider};

use crate::domain::NewPushToken;

/// Most devices one user may register.
pub const MAX_PUSH_TOKENS: i64 = 20;

/// A stored device.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token: String,
    pub platform: String,
    pub provider: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, user_id, token, platform, provider, created_at, last_used_at";

/// What a device's history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// First registered (`to_user`).
    Registered,
    /// Taken from `from_user` by `to_user`, who registered it.
    Moved,
    /// Deleted by its owner or a service.
    Removed,
    /// Deleted because a provider said the token is gone (`reason`).
    Gone,
}

impl DeviceEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Moved => "moved",
            Self::Removed => "removed",
            Self::Gone => "gone",
        }
    }
}

/// One `device_events` row to write.
struct Event<'a> {
    device_id: Uuid,
    event: DeviceEvent,
    from_user: Option<UserId>,
    to_user: Option<UserId>,
    actor: &'a str,
    reason: Option<&'a str>,
}

async fn record(tx: &mut Transaction<'_, Postgres>, e: Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO device_events (device_id, event, from_user, to_user, actor, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.device_id)
    .bind(e.event.as_str())
    .bind(e.from_user.map(|u| u.as_uuid()))
    .bind(e.to_user.map(|u| u.as_uuid()))
    .bind(e.actor)
    .bind(e.reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The devices of `user_id`, oldest first.
pub async fn of_user(pool: &PgPool, user_id: UserId) -> Result<Vec<PushTokenRow>, sqlx::Error> {
    sqlx::query_as::<_, PushTokenRow>(&format!(
        "SELECT {COLUMNS} FROM push_tokens WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id.as_uuid())
    .fetch_all(pool)
    .await
}

/// The devices of several users, oldest first.
pub async fn of_users(pool: &PgPool, user_ids: &[Uuid]) -> Result<Vec<PushTokenRow>, sqlx::Error> {
    sqlx::query_as::<_, PushTokenRow>(&format!(
        "SELECT {COLUMNS} FROM push_tokens WHERE user_id = ANY($1) ORDER BY created_at, id"
    ))
    .bind(user_ids)
    .fetch_all(pool)
    .await
}

/// What registering a token for a user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// Registered (new, or again by the same user: platform and provider updated). Carries
    /// the device id and the previous owner when it moved from another user.
    Done {
        device_id: Uuid,
        moved_from: Option<UserId>,
    },
    /// Another user has it, and this caller may not move it.
    OwnedByAnother,
}

/// Registers `token` for `user_id` in `tx`. A token another user has moves only when
/// `may_move` (the caller is authenticated as `user_id`), and the move is recorded.
pub async fn attach(
    tx: &mut Transaction<'_, Postgres>,
    user_id: UserId,
    token: &NewPushToken,
    may_move: bool,
    actor: &str,
) -> Result<Attached, sqlx::Error> {
    let current: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, user_id FROM push_tokens WHERE token = $1 FOR UPDATE")
            .bind(token.token.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    match current {
        None => {
            let device_id = Uuid::now_v7();
            let inserted = sqlx::query(
                "INSERT INTO push_tokens (id, token, user_id, platform, provider) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (token) DO NOTHING",
            )
            .bind(device_id)
            .bind(token.token.as_str())
            .bind(user_id.as_uuid())
            .bind(token.platform.as_str())
            .bind(token.provider.as_str())
            .execute(&mut **tx)
            .await?;
            if inserted.rows_affected() == 0 {
                // Registered for someone at the same moment: not ours to take silently.
                return Ok(Attached::OwnedByAnother);
            }
            record(
                tx,
                Event {
                    device_id,
                    event: DeviceEvent::Registered,
                    from_user: None,
                    to_user: Some(user_id),
                    actor,
                    reason: None,
                },
            )
            .await?;
            Ok(Attached::Done {
                device_id,
                moved_from: None,
            })
        }
        Some((device_id, owner)) if owner == user_id.as_uuid() => {
            sqlx::query("UPDATE push_tokens SET platform = $2, provider = $3 WHERE id = $1")
                .bind(device_id)
                .bind(token.platform.as_str())
                .bind(token.provider.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(Attached::Done {
                device_id,
                moved_from: None,
            })
        }
        Some(_) if !may_move => Ok(Attached::OwnedByAnother),
        Some((device_id, owner)) => {
            sqlx::query(
                "UPDATE push_tokens SET user_id = $2, platform = $3, provider = $4, created_at = now(),
                        last_used_at = NULL
                  WHERE id = $1",
            )
            .bind(device_id)
            .bind(user_id.as_uuid())
            .bind(token.platform.as_str())
            .bind(token.provider.as_str())
            .execute(&mut **tx)
            .await?;
            let from = UserId::from(owner);
            sqlx::query("UPDATE users SET updated_at = now() WHERE id = $1")
                .bind(owner)
                .execute(&mut **tx)
                .await?;
            record(
                tx,
                Event {
                    device_id,
                    event: DeviceEvent::Moved,
                    from_user: Some(from),
                    to_user: Some(user_id),
                    actor,
                    reason: None,
                },
            )
            .await?;
            Ok(Attached::Done {
                device_id,
                moved_from: Some(from),
            })
        }
    }
}

/// Outcome of registering a device through `POST .../push-tokens`.
#[derive(Debug)]
pub enum TokenAdded {
    /// Registered; the device and its previous owner, if another user.
    Done(PushTokenRow, Option<UserId>),
    NoSuchUser,
    TooMany,
    OwnedByAnother,
}

/// Registers `token` for `id` (see [`attach`]), within the per-user limit.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn add(
    pool: &PgPool,
    id: UserId,
    token: &NewPushToken,
    may_move: bool,
    actor: &str,
) -> Result<TokenAdded, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Lock the user so concurrent registrations count devices one at a time.
    let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Ok(TokenAdded::NoSuchUser);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM push_tokens WHERE user_id = $1 AND token <> $2")
        .bind(id.as_uuid())
        .bind(token.token.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_PUSH_TOKENS {
        return Ok(TokenAdded::TooMany);
    }
    let (device_id, moved_from) = match attach(&mut tx, id, token, may_move, actor).await? {
        Attached::OwnedByAnother => return Ok(TokenAdded::OwnedByAnother),
        Attached::Done { device_id, moved_from } => (device_id, moved_from),
    };
    sqlx::query("UPDATE users SET updated_at = now() WHERE id = $1")
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query_as::<_, PushTokenRow>(&format!("SELECT {COLUMNS} FROM push_tokens WHERE id = $1"))
        .bind(device_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(TokenAdded::Done(row, moved_from))
}

/// Removes the device of `user_id` whose id or token is `key`, recording who did it;
/// `None` when the user has no such device.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn remove(
    pool: &PgPool,
    user_id: UserId,
    key: &str,
    actor: &str,
) -> Result<Option<PushTokenRow>, sqlx::Error> {
    let by_id = Uuid::try_parse(key).ok();
    let mut tx = pool.begin().await?;
    let removed = sqlx::query_as::<_, PushTokenRow>(&format!(
        "DELETE FROM push_tokens WHERE user_id = $1 AND (token = $2 OR id = $3) RETURNING {COLUMNS}"
    ))
    .bind(user_id.as_uuid())
    .bind(key)
    .bind(by_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = &removed {
        record(
            &mut tx,
            Event {
                device_id: row.id,
                event: DeviceEvent::Removed,
                from_user: Some(user_id),
                to_user: None,
                actor,
                reason: None,
            },
        )
        .await?;
        sqlx::query("UPDATE users SET updated_at = now() WHERE id = $1")
            .bind(user_id.as_uuid())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

/// Removes the device with `token` (whoever has it) because a provider said it is gone;
/// `None` when no device has it.
#[tracing::instrument(skip_all)]
pub async fn remove_gone(
    pool: &PgPool,
    token: &str,
    reason: &str,
    actor: &str,
) -> Result<Option<PushTokenRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let removed =
        sqlx::query_as::<_, PushTokenRow>(&format!("DELETE FROM push_tokens WHERE token = $1 RETURNING {COLUMNS}"))
            .bind(token)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(row) = &removed {
        record(
            &mut tx,
            Event {
                device_id: row.id,
                event: DeviceEvent::Gone,
                from_user: Some(UserId::from(row.user_id)),
                to_user: None,
                actor,
                reason: Some(reason),
            },
        )
        .await?;
        sqlx::query("UPDATE users SET updated_at = now() WHERE id = $1")
            .bind(row.user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

/// Sets `last_used_at` of the devices `ids` to now; how many exist.
pub async fn mark_used(pool: &PgPool, ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("UPDATE push_tokens SET last_used_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Parses a stored platform (the table's CHECK keeps it valid).
pub fn platform_of(raw: &str) -> Platform {
    raw.parse().unwrap_or(Platform::Android)
}

/// Parses a stored provider (the table's CHECK keeps it valid).
pub fn provider_of(raw: &str) -> PushProvider {
    raw.parse().unwrap_or_default()
}
