//! The delivery ledger: which (notification, channel, target) have been handed to a provider.
//! Checked before a send and written after it, so a redelivered record (a crash before the
//! offset commit, a rebalance) does not send again, and a partial success (two devices, one
//! failed) retries only what failed.
//!
//! The one unavoidable window: a crash after the provider accepted a message and before the
//! ledger write sends that message again on redelivery. For email, the deterministic
//! `Message-ID` lets receivers drop it.
//!
//! Keys: `{prefix}ledger:{notification_id}:{channel}:{sha256(target)[..16]}`, TTL
//! `APP_LEDGER_TTL_SECS`. Targets are hashed so no address or token sits in Redis.

use std::time::Duration;

use notify_kit::redis_conn::RedisConnection;
use notify_schemas::{ids::NotificationId, Channel};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

/// The ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("delivery ledger unavailable: {0}")]
pub struct LedgerError(String);

/// Redis-backed ledger (on a connection that reconnects after Redis comes back).
#[derive(Clone)]
pub struct Ledger {
    conn: RedisConnection,
    prefix: String,
    ttl: Duration,
}

impl Ledger {
    /// The ledger on the Redis at `url`; answers `PING` before it is handed out.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, LedgerError> {
        let conn = RedisConnection::new(url, Duration::from_secs(2)).map_err(|e| LedgerError(e.to_string()))?;
        let ledger = Self {
            conn,
            prefix: prefix.to_string(),
            ttl,
        };
        ledger.ping().await?;
        Ok(ledger)
    }

    pub fn key(&self, id: NotificationId, channel: Channel, target: &str) -> String {
        let digest = Sha256::digest(target.as_bytes());
        format!("{}ledger:{id}:{channel}:{}", self.prefix, &hex::encode(digest)[..16])
    }

    /// Whether this target already got this notification.
    pub async fn delivered(&self, id: NotificationId, channel: Channel, target: &str) -> Result<bool, LedgerError> {
        let key = self.key(id, channel, target);
        self.conn
            .run(|mut c| async move { c.exists::<_, bool>(key).await })
            .await
            .map_err(|e| LedgerError(e.to_string()))
    }

    /// Records a delivery.
    pub async fn record(&self, id: NotificationId, channel: Channel, target: &str) -> Result<(), LedgerError> {
        let key = self.key(id, channel, target);
        let ttl = self.ttl.as_secs().max(1);
        self.conn
            .run(|mut c| async move { c.set_ex::<_, _, ()>(key, 1u8, ttl).await })
            .await
            .map_err(|e| LedgerError(e.to_string()))
    }

    pub async fn ping(&self) -> Result<(), LedgerError> {
        self.conn
            .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
            .map_err(|e| LedgerError(e.to_string()))
    }
}
