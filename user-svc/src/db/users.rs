//! Users (their devices: [`super::devices`]).

use chrono::{DateTime, Utc};
use notify_lookup::Preferences;
use notify_schemas::ids::UserId;
use sqlx::PgPool;
use uuid::Uuid;

pub use super::devices::PushTokenRow;
use super::devices::{self, Attached};
use crate::domain::{NewUser, UserPatch};

#[derive(Debug, Clone, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    name: String,
    email: String,
    language: String,
    email_enabled: bool,
    push_enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A user with its push tokens (never the password hash).
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub language: String,
    pub preferences: Preferences,
    pub push_tokens: Vec<PushTokenRow>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    fn from_row(row: UserRow, push_tokens: Vec<PushTokenRow>) -> Self {
        Self {
            id: row.id.into(),
            name: row.name,
            email: row.email,
            language: row.language,
            preferences: Preferences {
                email: row.email_enabled,
                push: row.push_enabled,
            },
            push_tokens,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const USER_COLUMNS: &str = "id, name, email, language, email_enabled, push_enabled, created_at, updated_at";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

/// Result of a write that may hit the email's uniqueness.
#[derive(Debug)]
pub enum Written<T> {
    Done(T),
    EmailTaken,
    NotFound,
    /// The push token in the request belongs to another user (nothing was written).
    TokenTaken,
}

async fn tokens_of(pool: &PgPool, id: UserId) -> Result<Vec<PushTokenRow>, sqlx::Error> {
    devices::of_user(pool, id).await
}

/// Inserts a user (and its first push token, recorded as registered by `actor`). A token
/// that another user has is not moved: nobody is authenticated as the new user yet, so the
/// answer is [`Written::TokenTaken`] and nothing is written.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn insert(
    pool: &PgPool,
    id: UserId,
    user: &NewUser,
    password_hash: &str,
    actor: &str,
) -> Result<Written<User>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query_as::<_, UserRow>(&format!(
        "INSERT INTO users (id, name, email, password_hash, language, email_enabled, push_enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ((lower(email))) DO NOTHING
         RETURNING {USER_COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(user.name.as_str())
    .bind(user.email.as_str())
    .bind(password_hash)
    .bind(user.language.as_str())
    .bind(user.preferences.email)
    .bind(user.preferences.push)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = inserted else {
        return Ok(Written::EmailTaken);
    };
    if let Some(token) = &user.push_token {
        if devices::attach(&mut tx, id, token, false, actor).await? == Attached::OwnedByAnother {
            return Ok(Written::TokenTaken);
        }
    }
    tx.commit().await?;
    let tokens = tokens_of(pool, id).await?;
    Ok(Written::Done(User::from_row(row, tokens)))
}

/// A user by id.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn get(pool: &PgPool, id: UserId) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(User::from_row(row, tokens_of(pool, id).await?))),
    }
}

/// The id and password hash of the account with `email` (case-insensitive).
pub async fn credentials(pool: &PgPool, email: &str) -> Result<Option<(UserId, String)>, sqlx::Error> {
    let found =
        sqlx::query_as::<_, (Uuid, String)>("SELECT id, password_hash FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(pool)
            .await?;
    Ok(found.map(|(id, hash)| (id.into(), hash)))
}

/// The password hash of `id`.
pub async fn password_hash(pool: &PgPool, id: UserId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
}

/// One page of users, oldest first, and the total count.
pub async fn list(pool: &PgPool, offset: i64, limit: i64) -> Result<(Vec<User>, u64), sqlx::Error> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await?;
    let rows = sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id OFFSET $1 LIMIT $2"
    ))
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let tokens = devices::of_users(pool, &ids).await?;
    let users = rows
        .into_iter()
        .map(|row| {
            let mine = tokens.iter().filter(|t| t.user_id == row.id).cloned().collect();
            User::from_row(row, mine)
        })
        .collect();
    Ok((users, u64::try_from(total).unwrap_or(0)))
}

/// Applies a patch (with the new password already hashed).
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(
    pool: &PgPool,
    id: UserId,
    patch: &UserPatch,
    new_password_hash: Option<&str>,
) -> Result<Written<User>, sqlx::Error> {
    let updated = sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET
            name = COALESCE($2, name),
            email = COALESCE($3, email),
            language = COALESCE($4, language),
            email_enabled = COALESCE($5, email_enabled),
            push_enabled = COALESCE($6, push_enabled),
            password_hash = COALESCE($7, password_hash),
            updated_at = now()
         WHERE id = $1
         RETURNING {USER_COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(patch.name.as_ref().map(|n| n.as_str()))
    .bind(patch.email.as_ref().map(|e| e.as_str()))
    .bind(patch.language.as_ref().map(|l| l.as_str()))
    .bind(patch.preferences.map(|p| p.email))
    .bind(patch.preferences.map(|p| p.push))
    .bind(new_password_hash)
    .fetch_optional(pool)
    .await;
    match updated {
        Err(e) if is_unique_violation(&e) => Ok(Written::EmailTaken),
        Err(e) => Err(e),
        Ok(None) => Ok(Written::NotFound),
        Ok(Some(row)) => Ok(Written::Done(User::from_row(row, tokens_of(pool, id).await?))),
    }
}

/// Sets both channel preferences.
pub async fn set_preferences(pool: &PgPool, id: UserId, preferences: Preferences) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET email_enabled = $2, push_enabled = $3, updated_at = now()
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(preferences.email)
    .bind(preferences.push)
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(User::from_row(row, tokens_of(pool, id).await?))),
    }
}

/// Deletes a user and its push tokens; false when there was none.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn delete(pool: &PgPool, id: UserId) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}
