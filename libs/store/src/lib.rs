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
    // OUTBOX_SHARDS is a small positive constant, so the remainder fits in i16.
    i16::try_from(fnv1a_64(key.as_bytes()) % OUTBOX_SHARDS as u64).unwrap_or(0)
}

/// FNV-1a, 64 bit.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
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
    fn the_hash_is_fnv1a_64() {
        // The published FNV-1a 64-bit test vectors.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn real_keys_keep_their_shards() {
        // Message keys are user ids as the gateway writes them (lower-case, hyphenated).
        // Pinned values, computed once outside this code: a change of hash, of the shard
        // count or of the key's spelling fails here, because it would strand the rows
        // already written under the old shards.
        let pinned = [
            ("00000000-0000-0000-0000-000000000000", 17),
            ("6c1b2a3d-0000-4000-8000-000000000001", 0),
            ("0190a6f4-3c2e-7b1a-9f3d-5e8c2b7a4d10", 18),
            ("123e4567-e89b-12d3-a456-426614174000", 31),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", 17),
            ("3fa85f64-5717-4562-b3fc-2c963f66afa6", 30),
            ("9b2d4c1e-8f3a-4e6b-a1c7-52d9e0f8b3a4", 7),
            ("01938b7e-2f5c-7d4a-8e1b-6c3f9a0d2e57", 5),
        ];
        for (key, shard) in pinned {
            let uuid: uuid::Uuid = key.parse().unwrap();
            assert_eq!(uuid.to_string(), key, "the key is the id's standard spelling");
            assert_eq!(shard_of(&uuid.to_string()), shard, "shard of {key}");
        }
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let s = shard_of(&format!("user-{i}"));
            assert!((0..OUTBOX_SHARDS).contains(&s));
            seen.insert(s);
        }
        assert_eq!(seen.len(), OUTBOX_SHARDS as usize, "keys spread over every shard");
    }
}
