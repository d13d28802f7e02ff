//! The notification database: one schema shared by the gateway (writes notifications and
//! their outbox rows), the outbox relay (publishes the outbox) and the status projector
//! (owns status updates, through [`state_machine`]). Migrations live in `migrations/` and
//! run at service start.

pub mod notifications;
pub mod outbox;
pub mod state_machine;

use sqlx::{postgres::PgPoolOptions, PgPool};

/// Embedded migrations of this database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Number of outbox shards. Part of the data format: rows carry `shard_of(key)`, relays own
/// shards. Changing it needs an empty outbox.
pub const OUTBOX_SHARDS: i16 = 32;

/// The channel `NOTIFY`ed when outbox rows are committed.
pub const OUTBOX_CHANNEL: &str = "notify_outbox";

/// Stable shard of a message key: FNV-1a (64 bit) of its bytes, modulo [`OUTBOX_SHARDS`].
/// Stable across processes, versions and platforms (unlike `std`'s hasher).
pub fn shard_of(key: &str) -> i16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // OUTBOX_SHARDS is a small positive constant, so the remainder fits in i16.
    i16::try_from(hash % OUTBOX_SHARDS as u64).unwrap_or(0)
}

/// Connects a pool (lazily) and reports which database it reaches in errors.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
        .context("failed to connect to PostgreSQL")
}

/// Runs pending migrations.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    use anyhow::Context;
    MIGRATOR.run(pool).await.context("failed to run database migrations")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        // Fixed values: a change here would strand rows in shards no relay expects.
        assert_eq!(shard_of(""), (0xcbf2_9ce4_8422_2325u64 % 32) as i16);
        let a = shard_of("6c1b2a3d-0000-4000-8000-000000000001");
        assert_eq!(a, shard_of("6c1b2a3d-0000-4000-8000-000000000001"));
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let s = shard_of(&format!("user-{i}"));
            assert!((0..OUTBOX_SHARDS).contains(&s));
            seen.insert(s);
        }
        assert_eq!(seen.len(), OUTBOX_SHARDS as usize, "keys spread over every shard");
    }
}
