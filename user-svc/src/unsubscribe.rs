//! One-click unsubscribe links (RFC 8058): signed, expiring tokens naming a user and a channel.
//!
//! A token is `v1.{user id, 32 hex digits}.{channel}.{expiry, Unix seconds}.{signature}`,
//! the signature being the unpadded base64url HMAC-SHA256 of `unsubscribe:` followed by
//! everything before it, keyed with `APP_UNSUBSCRIBE_SECRET` (user-svc's alone: the workers
//! receive finished links through the recipient lookup and never sign). The link is
//! `{APP_PUBLIC_BASE_URL}/api/v1/unsubscribe?token={token}`, valid for
//! `APP_UNSUBSCRIBE_TTL_DAYS` days from when the recipient was looked up.

use std::{sync::Arc, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use notify_kit::settings::{self, SettingsError};
use notify_schemas::{ids::UserId, Channel};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

/// Longest token accepted (a real one is about 100 characters): anything longer is refused
/// before any work.
pub const MAX_TOKEN_LEN: usize = 256;
/// The variable holding the links' signing key.
const SECRET: &str = "APP_UNSUBSCRIBE_SECRET";
/// The path the links point at.
pub const PATH: &str = "/api/v1/unsubscribe";

const VERSION: &str = "v1";
const DOMAIN: &str = "unsubscribe:";

/// Settings of the links, from `APP_UNSUBSCRIBE_*` and `APP_PUBLIC_BASE_URL`.
#[derive(Clone)]
pub struct UnsubscribeSettings {
    /// `APP_UNSUBSCRIBE_SECRET` (required): the HMAC key; must pass
    /// [`notify_kit::settings::check_secret`] (at least 32 bytes, 8 distinct characters, no
    /// placeholder).
    pub secret: SecretString,
    /// `APP_UNSUBSCRIBE_TTL_DAYS` (default 60, 1 to 3650): how long a link works.
    pub ttl: Duration,
    /// `APP_PUBLIC_BASE_URL` (default `http://127.0.0.1:8082`): where recipients reach
    /// user-svc's `/api/v1/unsubscribe` (the public address of an ingress in production).
    pub public_base_url: String,
}

impl std::fmt::Debug for UnsubscribeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeSettings")
            .field("secret", &"***")
            .field("ttl", &self.ttl)
            .field("public_base_url", &self.public_base_url)
            .finish()
    }
}

fn check_base_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(['?', '#', ' ']) {
        return Err("must be an http:// or https:// URL without query or fragment".into());
    }
    Ok(url.to_string())
}

impl UnsubscribeSettings {
    /// Reads and checks the variables above.
    pub fn from_env() -> Result<Self, SettingsError> {
        const TTL: &str = "APP_UNSUBSCRIBE_TTL_DAYS";
        const BASE: &str = "APP_PUBLIC_BASE_URL";
        // The one rule for secrets (kit's `check_secret`): long, not a placeholder, not weak.
        let secret = settings::strong_secret(SECRET)?.ok_or_else(|| SettingsError::Missing { name: SECRET.into() })?;
        let days: u64 = settings::parse(TTL, 60)?;
        if !(1..=3650).contains(&days) {
            return Err(SettingsError::invalid(TTL, "must be from 1 to 3650 days"));
        }
        let public_base_url = check_base_url(&settings::string(BASE, "http://127.0.0.1:8082"))
            .map_err(|reason| SettingsError::invalid(BASE, reason))?;
        Ok(Self {
            secret,
            ttl: Duration::from_secs(days * 24 * 3600),
            public_base_url,
        })
    }
}

/// Why a token was refused. Nothing is changed for any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not the shape of a token (or too long).
    #[error("the unsubscribe link is malformed")]
    Malformed,
    /// The signature does not match: altered, or not ours.
    #[error("the unsubscribe link is not valid")]
    BadSignature,
    /// Past its expiry.
    #[error("the unsubscribe link has expired")]
    Expired,
}

/// What a valid token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe {
    pub user_id: UserId,
    pub channel: Channel,
}

/// Mints and verifies links. Cheap to clone.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    key: Arc<SecretString>,
    ttl: chrono::Duration,
    base: Arc<str>,
}

impl UnsubscribeLinks {
    /// Links signed with the settings' key. Fails on a key the settings would refuse (the
    /// settings of tests are built without `from_env`).
    pub fn new(settings: &UnsubscribeSettings) -> anyhow::Result<Self> {
        settings::check_secret(SECRET, settings.secret.expose_secret())?;
        let base = check_base_url(&settings.public_base_url)
            .map_err(|reason| anyhow::anyhow!("APP_PUBLIC_BASE_URL {reason}"))?;
        Ok(Self {
            key: Arc::new(settings.secret.clone()),
            ttl: chrono::Duration::from_std(settings.ttl)?,
            base: base.into(),
        })
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this never fails.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(DOMAIN.as_bytes());
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `user_id` and `channel`, expiring at `expires_at`.
    pub fn token_expiring(&self, user_id: UserId, channel: Channel, expires_at: DateTime<Utc>) -> String {
        let payload = format!(
            "{VERSION}.{}.{}.{}",
            user_id.as_uuid().simple(),
            channel.as_str(),
            expires_at.timestamp()
        );
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The link for `user_id` and `channel`, valid for the configured lifetime from `now`.
    pub fn url(&self, user_id: UserId, channel: Channel, now: DateTime<Utc>) -> String {
        self.url_of(&self.token_expiring(user_id, channel, now + self.ttl))
    }

    /// The link carrying `token`.
    pub fn url_of(&self, token: &str) -> String {
        format!("{}{PATH}?token={token}", self.base)
    }

    /// What `token` names, if it is ours, unaltered and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Unsubscribe, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        // The signature first: nothing of an unsigned payload is interpreted.
        self.mac(payload)
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let mut parts = payload.split('.');
        let (Some(VERSION), Some(user), Some(channel), Some(expiry), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let user_id = Uuid::try_parse(user).map_err(|_| TokenError::Malformed)?.into();
        let channel: Channel = channel.parse().map_err(|_| TokenError::Malformed)?;
        let expiry: i64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        if now.timestamp() >= expiry {
            return Err(TokenError::Expired);
        }
        Ok(Unsubscribe { user_id, channel })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(secret: &str) -> UnsubscribeLinks {
        UnsubscribeLinks::new(&UnsubscribeSettings {
            secret: SecretString::from(secret.to_string()),
            ttl: Duration::from_secs(60 * 24 * 3600),
            public_base_url: "https://notify.example.com/".into(),
        })
        .unwrap()
    }

    const KEY: &str = "unsubscribe-test-key-unsubscribe-test-key";

    #[test]
    fn a_minted_link_verifies_until_it_expires() {
        let l = links(KEY);
        let user = UserId::from(Uuid::now_v7());
        let now = Utc::now();
        let url = l.url(user, Channel::Email, now);
        let token = url
            .strip_prefix("https://notify.example.com/api/v1/unsubscribe?token=")
            .unwrap();
        assert!(token.len() < MAX_TOKEN_LEN);
        assert!(
            token.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{token}"
        );
        assert_eq!(
            l.verify(token, now).unwrap(),
            Unsubscribe {
                user_id: user,
                channel: Channel::Email
            }
        );
        let later = now + chrono::Duration::days(60) + chrono::Duration::seconds(1);
        assert_eq!(l.verify(token, later), Err(TokenError::Expired));
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let l = links(KEY);
        let user = UserId::from(Uuid::now_v7());
        let now = Utc::now();
        let token = l.token_expiring(user, Channel::Email, now + chrono::Duration::days(1));
        let pushed = token.replacen(".email.", ".push.", 1);
        assert_eq!(l.verify(&pushed, now), Err(TokenError::BadSignature));
        let other = links("another-key-another-key-another-key-0000");
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
        assert_eq!(l.verify("", now), Err(TokenError::Malformed));
        assert_eq!(l.verify("nodots", now), Err(TokenError::Malformed));
        assert_eq!(l.verify(&"a.".repeat(200), now), Err(TokenError::Malformed));
        assert!(l.verify(&format!("{token}x"), now).is_err());
        assert_eq!(l.verify(&format!("{token}!"), now), Err(TokenError::Malformed));
    }

    #[test]
    fn weak_or_placeholder_secrets_are_refused() {
        let with_key = |secret: &str| {
            UnsubscribeLinks::new(&UnsubscribeSettings {
                secret: SecretString::from(secret.to_string()),
                ttl: Duration::from_secs(3600),
                public_base_url: "https://x.example".into(),
            })
        };
        assert!(with_key("short").is_err());
        assert!(with_key("change-me-to-the-output-of-openssl-rand-hex-32-unsubscribe").is_err());
        // Long enough but weak (kit's rule: at least 8 distinct characters).
        assert!(with_key(&"ab".repeat(32)).is_err());
        assert!(with_key(KEY).is_ok());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("https://x.example/?a").is_err());
        assert_eq!(check_base_url("https://x.example/").unwrap(), "https://x.example");
    }
}
