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

use notify_schemas::{ids::NotificationId, Channel};
use redis::{aio::ConnectionManager, AsyncCommands};
use sha2::{Digest, Sha256};

/// The ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("delivery ledger unavailable: {0}")]
pub struct LedgerError(String);

/// Redis-backed ledger.
#[derive(Clone)]
pub struct Ledger {
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
    op_timeout: Duration,
}

impl Ledger {
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, LedgerError> {
        let client = redis::Client::open(url).map_err(|e| LedgerError(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| LedgerError("timed out connecting to Redis".into()))?
            .map_err(|e| LedgerError(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            ttl,
            op_timeout: Duration::from_secs(2),
        })
    }

    pub fn key(&self, id: NotificationId, channel: Channel, target: &str) -> String {
        let digest = Sha256::digest(target.as_bytes());
        format!("{}ledger:{id}:{channel}:{}", self.prefix, &hex::encode(digest)[..16])
    }

    /// Whether this target already got this notification.
    pub async fn delivered(&self, id: NotificationId, channel: Channel, target: &str) -> Result<bool, LedgerError> {
        let mut conn = self.conn.clone();
        let key = self.key(id, channel, target);
        tokio::time::timeout(self.op_timeout, conn.exists::<_, bool>(key))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))
    }

    /// Records a delivery.
    pub async fn record(&self, id: NotificationId, channel: Channel, target: &str) -> Result<(), LedgerError> {
        let mut conn = self.conn.clone();
        let key = self.key(id, channel, target);
        tokio::time::timeout(
            self.op_timeout,
            conn.set_ex::<_, _, ()>(key, 1u8, self.ttl.as_secs().max(1)),
        )
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))
    }

    pub async fn ping(&self) -> Result<(), LedgerError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.op_timeout, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map(|_| ())
            .map_err(|e| failed(e.to_string()))
    }
}

/// A failed ledger operation, counted in `redis_errors_total{service}`.
fn failed(message: String) -> LedgerError {
    notify_kit::metrics::redis_error();
    LedgerError(message)
}
