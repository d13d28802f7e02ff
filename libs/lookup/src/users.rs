//! Recipients from user-svc.

use std::time::Duration;

use notify_templates::Language;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    cache::{keys, Cache},
    client::ServiceClient,
    error::LookupError,
    token::TokenSource,
};

const SERVICE: &str = "user-svc";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A device platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Android,
    Ios,
    Web,
}

impl Platform {
    /// `android`, `ios` or `web`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
            Self::Web => "web",
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "android" => Ok(Self::Android),
            "ios" => Ok(Self::Ios),
            "web" => Ok(Self::Web),
            _ => Err("must be `android`, `ios` or `web`".into()),
        }
    }
}

/// The push provider a device belongs to: who can deliver to its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PushProvider {
    /// Firebase Cloud Messaging (Android, iOS through APNs, and FCM web tokens). The
    /// default, and the only provider before devices named theirs.
    #[default]
    #[serde(rename = "fcm")]
    Fcm,
    /// A browser's Web Push subscription (RFC 8030/8291), platform `web` only.
    #[serde(rename = "webpush")]
    WebPush,
    /// A OneSignal subscription id.
    #[serde(rename = "onesignal")]
    OneSignal,
}

impl PushProvider {
    /// `fcm`, `webpush` or `onesignal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fcm => "fcm",
            Self::WebPush => "webpush",
            Self::OneSignal => "onesignal",
        }
    }
}

impl std::fmt::Display for PushProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PushProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fcm" => Ok(Self::Fcm),
            "webpush" => Ok(Self::WebPush),
            "onesignal" => Ok(Self::OneSignal),
            _ => Err("must be `fcm`, `webpush` or `onesignal`".into()),
        }
    }
}

/// A device to push to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    /// user-svc's id of the device (nil from a user-svc that predates device ids).
    #[serde(default)]
    pub id: Uuid,
    /// The provider's address of the device: an FCM registration token, a OneSignal
    /// subscription id, or a Web Push subscription as JSON
    /// (`{"endpoint", "keys": {"p256dh", "auth"}}`).
    pub token: String,
    pub platform: Platform,
    /// Who delivers to it (`fcm` from a user-svc that predates providers).
    #[serde(default)]
    pub provider: PushProvider,
}

/// Whether the user accepts each channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    pub email: bool,
    pub push: bool,
}

/// Why an address is on user-svc's suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// `hard_bounce`, `complaint`, `unsubscribe` or `manual`.
    pub reason: String,
    /// Who said so (`sendgrid`, `mailgun`, `operator:<subject>`, ...).
    pub source: String,
    /// Since when (RFC 3339, as user-svc wrote it).
    pub created_at: String,
}

/// What delivery needs to know about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub user_id: Uuid,
    pub email: String,
    pub push_tokens: Vec<PushTarget>,
    pub preferences: Preferences,
    pub language: Language,
    /// Set when `email` is on the suppression list: email must not be sent to it.
    #[serde(default)]
    pub email_suppressed: Option<Suppressed>,
    /// The one-click unsubscribe link (RFC 8058) for email, minted by user-svc.
    #[serde(default)]
    pub email_unsubscribe_url: Option<String>,
}

/// user-svc's `delivery.email` (service callers only).
#[derive(Deserialize)]
struct EmailDelivery {
    suppressed: Option<Suppressed>,
    unsubscribe_url: Option<String>,
}

/// user-svc's `delivery` (service callers only).
#[derive(Deserialize)]
struct Delivery {
    email: EmailDelivery,
}

/// user-svc's `GET /api/v1/users/{id}` data (only what a recipient needs).
#[derive(Deserialize)]
struct UserView {
    id: Uuid,
    email: String,
    push_tokens: Vec<PushTarget>,
    preferences: Preferences,
    language: Language,
    #[serde(default)]
    delivery: Option<Delivery>,
}

/// Looks recipients up in user-svc, through the cache.
pub struct RecipientLookup {
    client: ServiceClient,
    cache: Cache,
}

impl RecipientLookup {
    /// A lookup client for user-svc at `base_url` (e.g. `http://127.0.0.1:8082`); requests time
    /// out after 2 s unless [`with_timeout`](Self::with_timeout) says otherwise. The token
    /// needs the scope `users:read`.
    pub fn new(base_url: &str, tokens: TokenSource, cache: Cache) -> Result<Self, LookupError> {
        Self::with_timeout(base_url, tokens, cache, DEFAULT_TIMEOUT)
    }

    /// Like [`new`](Self::new) with a per-request timeout.
    pub fn with_timeout(
        base_url: &str,
        tokens: TokenSource,
        cache: Cache,
        timeout: Duration,
    ) -> Result<Self, LookupError> {
        Ok(Self {
            client: ServiceClient::new(SERVICE, base_url, tokens, timeout)?,
            cache,
        })
    }

    /// The recipient `user_id`, or `None` when there is no such user (never created, or
    /// deleted: the worker records the notification as skipped).
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn get(&self, user_id: Uuid) -> Result<Option<Recipient>, LookupError> {
        let prefix = self.cache.prefix().to_string();
        let generation = self.cache.generation(keys::user_generation(&prefix, user_id)).await;
        if let Some(g) = generation {
            let key = keys::user_entry(&prefix, user_id, g.0);
            if let Some(hit) = self.cache.get_json::<Recipient>(key).await {
                metrics::counter!("directory_lookups_total", "kind" => "user", "result" => "hit").increment(1);
                return Ok(Some(hit));
            }
        }
        metrics::counter!("directory_lookups_total", "kind" => "user", "result" => "miss").increment(1);
        let Some(view) = self.client.get::<UserView>(&format!("/api/v1/users/{user_id}")).await? else {
            return Ok(None);
        };
        if view.id != user_id {
            return Err(LookupError::Invalid {
                service: SERVICE,
                reason: format!("asked for user {user_id}, got {}", view.id),
            });
        }
        let (email_suppressed, email_unsubscribe_url) = match view.delivery {
            Some(d) => (d.email.suppressed, d.email.unsubscribe_url),
            None => (None, None),
        };
        let recipient = Recipient {
            user_id: view.id,
            email: view.email,
            push_tokens: view.push_tokens,
            preferences: view.preferences,
            language: view.language,
            email_suppressed,
            email_unsubscribe_url,
        };
        if let Some(g) = generation {
            self.cache
                .put_json(keys::user_entry(&prefix, user_id, g.0), &recipient)
                .await;
        }
        Ok(Some(recipient))
    }

    /// Drops the cached entry of `user_id` (see [`Cache::invalidate_user`]).
    pub async fn invalidate_user(&self, user_id: Uuid) -> Result<(), crate::CacheError> {
        self.cache.invalidate_user(user_id).await
    }
}
