//! Shard ownership.
//!
//! The outbox is split into [`OUTBOX_SHARDS`] shards by a stable hash of the message key.
//! A relay publishes a shard only while it holds that shard's PostgreSQL advisory lock, on
//! the same connection that runs its claim transactions: if the relay dies, its connection
//! closes, its open batch rolls back and its locks are released in one step, so another
//! relay takes the shards over with nothing published twice *by design* (only the batch in
//! flight at the crash can be published again).
//!
//! Balancing: every relay counts the live relays (sessions with the owner application name
//! in this database) and aims at `ceil(shards / live)`. It takes free shards up to that and
//! releases extras, between batches, so ownership converges without coordination.

use std::collections::BTreeSet;

use notify_store::OUTBOX_SHARDS;
use sqlx::{PgConnection, Row};

/// `application_name` of the connection that owns shards (counted to find live relays).
pub const OWNER_APPLICATION_NAME: &str = "outbox-relay-owner";

/// First key of the two-key advisory lock (`'outb'`), the second being the shard.
const LOCK_CLASS: i32 = 0x6f75_7462;

/// The shards this relay owns.
#[derive(Debug, Default)]
pub struct ShardSet {
    owned: BTreeSet<i16>,
}

impl ShardSet {
    pub fn owned(&self) -> Vec<i16> {
        self.owned.iter().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.owned.is_empty()
    }

    pub fn len(&self) -> usize {
        self.owned.len()
    }

    /// Forgets every shard (after the owning connection was lost: its locks went with it).
    pub fn clear(&mut self) {
        self.owned.clear();
    }

    /// Takes free shards up to this relay's fair share and releases extras.
    /// Returns `(taken, released)`.
    pub async fn rebalance(&mut self, conn: &mut PgConnection) -> Result<(usize, usize), sqlx::Error> {
        let live: i64 = sqlx::query(
            "SELECT count(*) AS live FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = $1",
        )
        .bind(OWNER_APPLICATION_NAME)
        .fetch_one(&mut *conn)
        .await?
        .try_get("live")?;
        let live = usize::try_from(live.max(1)).unwrap_or(1);
        let total = usize::try_from(OUTBOX_SHARDS).unwrap_or(1);
        let target = total.div_ceil(live);

        let mut released = 0;
        while self.owned.len() > target {
            let Some(shard) = self.owned.pop_last() else {
                break;
            };
            sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(LOCK_CLASS)
                .bind(i32::from(shard))
                .execute(&mut *conn)
                .await?;
            released += 1;
        }
        let mut taken = 0;
        for shard in 0..OUTBOX_SHARDS {
            if self.owned.len() >= target {
                break;
            }
            if self.owned.contains(&shard) {
                continue;
            }
            let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1, $2) AS got")
                .bind(LOCK_CLASS)
                .bind(i32::from(shard))
                .fetch_one(&mut *conn)
                .await?
                .try_get("got")?;
            if got {
                self.owned.insert(shard);
                taken += 1;
            }
        }
        Ok((taken, released))
    }
}
