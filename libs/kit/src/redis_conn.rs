//! A Redis connection that survives Redis going away and coming back, shared by everything
//! that talks to Redis (the delivery ledger, the lookup cache, the providers' rate limits).
//!
//! `redis`'s `ConnectionManager` reconnects by itself after a dropped connection, but once its
//! own reconnection attempts have failed (Redis down for longer than its retries) it keeps
//! answering that failure and never connects again. So the connection is dropped after any
//! connection-level failure (I/O, refused, timeout) and made anew by the next command, at
//! most once per [`RECONNECT_PAUSE`]; meanwhile commands fail at once instead of each
//! waiting for a timeout. Every failure counts in `redis_errors_total{service}`.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long after a failed connection attempt commands fail at once, before the next attempt.
pub const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Why a command did not run or did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisFailure {
    /// No connection could be made (now, or within the last [`RECONNECT_PAUSE`]).
    #[error("Redis unreachable: {0}")]
    Unreachable(String),
    /// The command failed (the connection is made anew if the failure was the connection's).
    #[error("Redis command failed: {0}")]
    Command(String),
    /// No answer within the operation timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// A cloneable handle on one lazily made, self-healing connection.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    slot: tokio::sync::Mutex<Option<ConnectionManager>>,
    paused_until: Mutex<Option<Instant>>,
    op_timeout: Duration,
}

impl RedisConnection {
    /// A connection to `url` (not contacted until the first command); every connection
    /// attempt and every command is bounded by `op_timeout`.
    pub fn new(url: &str, op_timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        crate::metrics::register_redis_errors();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                slot: tokio::sync::Mutex::new(None),
                paused_until: Mutex::new(None),
                op_timeout: op_timeout.max(Duration::from_millis(1)),
            }),
        })
    }

    /// Runs `op` on the connection, within the operation timeout.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        let failure = match tokio::time::timeout(self.inner.op_timeout, op(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
                    self.forget().await;
                }
                RedisFailure::Command(e.to_string())
            }
            Err(_) => {
                self.forget().await;
                RedisFailure::Timeout(self.inner.op_timeout)
            }
        };
        crate::metrics::redis_error();
        Err(failure)
    }

    async fn forget(&self) {
        *self.inner.slot.lock().await = None;
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisFailure> {
        let inner = &self.inner;
        let mut slot = inner.slot.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        {
            let paused = inner.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            if paused.is_some_and(|until| Instant::now() < until) {
                crate::metrics::redis_error();
                return Err(RedisFailure::Unreachable("skipped after a recent failure".into()));
            }
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(inner.op_timeout)
            .set_response_timeout(inner.op_timeout)
            .set_number_of_retries(1);
        let attempt = tokio::time::timeout(
            inner.op_timeout,
            ConnectionManager::new_with_config(inner.client.clone(), config),
        )
        .await;
        match attempt {
            Ok(Ok(conn)) => {
                *slot = Some(conn.clone());
                Ok(conn)
            }
            failed => {
                *inner.paused_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + RECONNECT_PAUSE);
                crate::metrics::redis_error();
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no connection within {:?}", inner.op_timeout),
                };
                tracing::warn!(error = %reason, "Redis unreachable; trying again in a second at the earliest");
                Err(RedisFailure::Unreachable(reason))
            }
        }
    }
}
