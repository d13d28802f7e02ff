//! Single-channel preference changes (the one-click unsubscribe).

use notify_schemas::{ids::UserId, Channel};
use sqlx::PgPool;

/// Turns `user_id`'s preference for `channel` off, in one statement (a concurrent change of
/// the other channel is not overwritten); false when there is no such user.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn turn_off(pool: &PgPool, user_id: UserId, channel: Channel) -> Result<bool, sqlx::Error> {
    let column = match channel {
        Channel::Email => "email_enabled",
        Channel::Push => "push_enabled",
    };
    let result = sqlx::query(&format!(
        "UPDATE users SET {column} = false, updated_at = CASE WHEN {column} THEN now() ELSE updated_at END
         WHERE id = $1"
    ))
    .bind(user_id.as_uuid())
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}
