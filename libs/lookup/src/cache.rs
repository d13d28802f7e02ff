//! The Redis cache in front of the lookups, and its invalidation.
//!
//! Every operation is bounded by a timeout and never fails a lookup: on any Redis problem
//! the cache is skipped (a miss), and reconnection is attempted again at most once a second.
//! Each failed connection attempt or operation counts in `redis_errors_total{service}`.

use std::{sync::Arc, time::Duration};

use notify_kit::redis_conn::{RedisConnection, RedisFailure};

use notify_templates::TemplateCode;
use redis::{aio::ConnectionManager, AsyncCommands};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::settings::CacheSettings;

/// How long a generation counter outlives its last change. Far longer than any entry's
/// TTL, so when it expires (and restarts from 0) no entry of an old generation is left.
const GENERATION_TTL_SECS: i64 = 7 * 24 * 3600;

/// Key names (see the crate documentation for the scheme).
pub mod keys {
    use notify_templates::{Language, TemplateCode};
    use uuid::Uuid;

    /// `{prefix}dir:user:{id}:gen`
    pub fn user_generation(prefix: &str, user_id: Uuid) -> String {
        format!("{prefix}dir:user:{user_id}:gen")
    }

    /// `{prefix}dir:user:{id}:g{generation}`
    pub fn user_entry(prefix: &str, user_id: Uuid, generation: u64) -> String {
        format!("{prefix}dir:user:{user_id}:g{generation}")
    }

    /// `{prefix}dir:tpl:{code}:gen`
    pub fn template_generation(prefix: &str, code: &TemplateCode) -> String {
        format!("{prefix}dir:tpl:{code}:gen")
    }

    /// `{prefix}dir:tpl:{code}:g{generation}:{lang}`
    pub fn template_entry(prefix: &str, code: &TemplateCode, generation: u64, language: &Language) -> String {
        format!("{prefix}dir:tpl:{code}:g{generation}:{language}")
    }
}

/// A Redis operation that failed (only invalidation and health checks report it).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the cache is disabled")]
    Disabled,
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
    #[error("Redis command failed: {0}")]
    Command(String),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// The cache. Cheap to clone; connects lazily, so a service starts without Redis.
#[derive(Clone)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    conn: RedisConnection,
    prefix: String,
    ttl: Duration,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Cache(disabled)"),
            Some(i) => f
                .debug_struct("Cache")
                .field("prefix", &i.prefix)
                .field("ttl", &i.ttl)
                .finish(),
        }
    }
}

/// A generation read from Redis: where this lookup reads and writes its entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generation(pub(crate) u64);

impl Cache {
    /// A cache on the Redis at `settings.redis_url` (not contacted until first use).
    pub fn new(settings: &CacheSettings) -> Result<Self, CacheError> {
        let conn = RedisConnection::new(settings.redis_url.expose(), settings.op_timeout)
            .map_err(|e| CacheError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                conn,
                prefix: settings.prefix.clone(),
                ttl: settings.ttl,
            })),
        })
    }

    /// No cache: every lookup goes to the service, invalidation does nothing.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.inner.as_ref().map_or("", |i| i.prefix.as_str())
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager, String) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let inner = self.inner.as_deref().ok_or(CacheError::Disabled)?;
        let prefix = inner.prefix.clone();
        inner.conn.run(|c| op(c, prefix)).await.map_err(|e| match e {
            RedisFailure::Unreachable(m) => CacheError::Unreachable(m),
            RedisFailure::Command(m) => CacheError::Command(m),
            RedisFailure::Timeout(t) => CacheError::Timeout(t),
        })
    }

    /// `PING`, for health reports.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run(|mut conn, _| async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(|_| ())
    }

    async fn bump(&self, key: String) -> Result<(), CacheError> {
        self.run(|mut conn, _| async move {
            redis::pipe()
                .incr(&key, 1)
                .ignore()
                .expire(&key, GENERATION_TTL_SECS)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Drops the cached recipient of `user_id` (call after every committed change).
    pub async fn invalidate_user(&self, user_id: Uuid) -> Result<(), CacheError> {
        if self.inner.is_none() {
            return Ok(());
        }
        self.bump(keys::user_generation(self.prefix(), user_id)).await
    }

    /// Drops every cached language of `code` (call after every committed change).
    pub async fn invalidate_template(&self, code: &TemplateCode) -> Result<(), CacheError> {
        if self.inner.is_none() {
            return Ok(());
        }
        self.bump(keys::template_generation(self.prefix(), code)).await
    }

    fn caching(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| !i.ttl.is_zero())
    }

    /// The current generation behind `key`, or `None` when the cache cannot be used.
    pub(crate) async fn generation(&self, key: String) -> Option<Generation> {
        if !self.caching() {
            return None;
        }
        let read = self
            .run(|mut conn, _| async move { conn.get::<_, Option<u64>>(key).await })
            .await;
        match read {
            Ok(n) => Some(Generation(n.unwrap_or(0))),
            Err(e) => {
                tracing::debug!(error = %e, "cache skipped");
                None
            }
        }
    }

    /// The entry at `key`, if present and decodable.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, key: String) -> Option<T> {
        let raw = self
            .run(|mut conn, _| async move { conn.get::<_, Option<String>>(key).await })
            .await;
        match raw {
            Ok(Some(text)) => match serde_json::from_str(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable cache entry ignored");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "cache read skipped");
                None
            }
        }
    }

    /// Stores `value` at `key` with the TTL; failures are logged, never returned.
    pub(crate) async fn put_json<T: Serialize>(&self, key: String, value: &T) {
        let Some(ttl) = self.inner.as_ref().map(|i| i.ttl) else {
            return;
        };
        let Ok(text) = serde_json::to_string(value) else {
            return;
        };
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let written = self
            .run(|mut conn, _| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(text)
                    .arg("PX")
                    .arg(millis)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        if let Err(e) = written {
            tracing::debug!(error = %e, "cache write skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_scheme() {
        let id = Uuid::nil();
        let code = TemplateCode::parse("welcome_email").unwrap();
        let lang = notify_templates::Language::parse("pt-br").unwrap();
        assert_eq!(
            keys::user_generation("p:", id),
            "p:dir:user:00000000-0000-0000-0000-000000000000:gen"
        );
        assert_eq!(
            keys::user_entry("", id, 3),
            "dir:user:00000000-0000-0000-0000-000000000000:g3"
        );
        assert_eq!(keys::template_generation("", &code), "dir:tpl:welcome_email:gen");
        assert_eq!(
            keys::template_entry("x.", &code, 7, &lang),
            "x.dir:tpl:welcome_email:g7:pt-BR"
        );
    }

    #[tokio::test]
    async fn a_disabled_cache_ignores_invalidation() {
        let cache = Cache::disabled();
        assert!(cache.invalidate_user(Uuid::nil()).await.is_ok());
        assert!(matches!(cache.ping().await, Err(CacheError::Disabled)));
        assert!(cache.generation("k".into()).await.is_none());
    }
}
