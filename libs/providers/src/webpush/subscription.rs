//! A browser's push subscription as a device token.
//!
//! **Encoding:** the token of a `web` device delivered through Web Push is the JSON of the
//! browser's `PushSubscription.toJSON()`:
//!
//! ```json
//! {"endpoint": "https://push.example.net/send/abc", "expirationTime": null,
//!  "keys": {"p256dh": "<base64url, 65-byte uncompressed P-256 point>",
//!           "auth": "<base64url, 16 bytes>"}}
//! ```
//!
//! Other members are ignored; base64url padding is tolerated. [`WebPushSubscription::parse`]
//! is what registration (user-svc) and delivery both call, so a token that was accepted at
//! registration is one the provider can use.

use std::fmt;

use base64::{
    engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD},
    Engine as _,
};
use p256::PublicKey;
use reqwest::Url;
use serde::Deserialize;

/// Longest token accepted, in bytes (the subscription JSON).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest endpoint accepted, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// Why a Web Push token is not a usable subscription. The message names the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSubscription {
    #[error("the subscription is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("the subscription is not the JSON of PushSubscription.toJSON() (endpoint, keys.p256dh, keys.auth)")]
    NotJson,
    #[error("`endpoint` {0}")]
    Endpoint(&'static str),
    #[error("`keys.p256dh` {0}")]
    P256dh(&'static str),
    #[error("`keys.auth` {0}")]
    Auth(&'static str),
}

#[derive(Deserialize)]
struct Raw {
    endpoint: String,
    keys: RawKeys,
}

#[derive(Deserialize)]
struct RawKeys {
    p256dh: String,
    auth: String,
}

/// A Web Push subscription, valid by construction: an https endpoint, the subscriber's
/// P-256 public key and its 16-byte auth secret. `Debug` hides the endpoint's path (a
/// capability) and the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct WebPushSubscription {
    endpoint: Url,
    p256dh: PublicKey,
    auth: [u8; 16],
}

impl fmt::Debug for WebPushSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebPushSubscription")
            .field("origin", &self.origin())
            .finish_non_exhaustive()
    }
}

fn base64url(value: &str) -> Option<Vec<u8>> {
    let value = value.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .or_else(|| URL_SAFE.decode(value).ok())
}

impl WebPushSubscription {
    /// Parses a `web` device token (see the module documentation); the endpoint must be
    /// `https`.
    pub fn parse(token: &str) -> Result<Self, InvalidSubscription> {
        Self::parse_allowing_http(token, false)
    }

    /// [`WebPushSubscription::parse`], also accepting an `http` endpoint when `allow_http`
    /// (a local push service in development and tests only).
    pub fn parse_allowing_http(token: &str, allow_http: bool) -> Result<Self, InvalidSubscription> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidSubscription::TooLong);
        }
        let raw: Raw = serde_json::from_str(token).map_err(|_| InvalidSubscription::NotJson)?;
        if raw.endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(InvalidSubscription::Endpoint("is longer than 2048 bytes"));
        }
        let endpoint = Url::parse(&raw.endpoint).map_err(|_| InvalidSubscription::Endpoint("is not a URL"))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ => return Err(InvalidSubscription::Endpoint("must be an https URL")),
        }
        if endpoint.host_str().is_none_or(str::is_empty) {
            return Err(InvalidSubscription::Endpoint("has no host"));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(InvalidSubscription::Endpoint("must not carry credentials"));
        }
        let p256dh = base64url(&raw.keys.p256dh).ok_or(InvalidSubscription::P256dh("is not base64url"))?;
        if p256dh.len() != 65 || p256dh[0] != 4 {
            return Err(InvalidSubscription::P256dh(
                "is not a 65-byte uncompressed P-256 public key",
            ));
        }
        let p256dh =
            PublicKey::from_sec1_bytes(&p256dh).map_err(|_| InvalidSubscription::P256dh("is not a point of P-256"))?;
        let auth = base64url(&raw.keys.auth).ok_or(InvalidSubscription::Auth("is not base64url"))?;
        let auth: [u8; 16] = auth
            .try_into()
            .map_err(|_| InvalidSubscription::Auth("is not 16 bytes"))?;
        Ok(Self { endpoint, p256dh, auth })
    }

    /// Whether `token` looks like a subscription (a JSON object) rather than an opaque
    /// provider token: how a chain routes a device without parsing it.
    pub fn looks_like(token: &str) -> bool {
        token.trim_start().starts_with('{')
    }

    /// Where the encrypted message is posted.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `scheme://host[:port]` of the endpoint: the VAPID token's `aud`.
    pub fn origin(&self) -> String {
        self.endpoint.origin().ascii_serialization()
    }

    /// The subscriber's public key (`keys.p256dh`).
    pub fn public_key(&self) -> &PublicKey {
        &self.p256dh
    }

    /// The subscriber's auth secret (`keys.auth`).
    pub fn auth_secret(&self) -> &[u8; 16] {
        &self.auth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P256DH: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn token(endpoint: &str, p256dh: &str, auth: &str) -> String {
        json!({"endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}}).to_string()
    }

    #[test]
    fn a_browser_subscription_parses_and_names_its_origin() {
        let s = WebPushSubscription::parse(&token("https://push.example.net:8443/wpush/v2/abc", P256DH, AUTH)).unwrap();

        assert_eq!(s.origin(), "https://push.example.net:8443");
        assert_eq!(s.auth_secret().len(), 16);
        assert!(!format!("{s:?}").contains("abc"), "the endpoint path is a capability");
    }

    #[test]
    fn padded_base64_is_accepted() {
        assert!(
            WebPushSubscription::parse(&token("https://p.test/x", &format!("{P256DH}="), &format!("{AUTH}=="))).is_ok()
        );
    }

    #[test]
    fn each_defect_names_its_member() {
        let cases = [
            (token("http://p.test/x", P256DH, AUTH), "endpoint"),
            (token("javascript:alert(1)", P256DH, AUTH), "endpoint"),
            (token("https://user:pw@p.test/x", P256DH, AUTH), "endpoint"),
            (token("https://p.test/x", "AAAA", AUTH), "keys.p256dh"),
            // The last bits of y changed: not a point of the curve.
            (
                token("https://p.test/x", &format!("{}A", &P256DH[..86]), AUTH),
                "keys.p256dh",
            ),
            (token("https://p.test/x", "!!", AUTH), "keys.p256dh"),
            (token("https://p.test/x", P256DH, "AAAA"), "keys.auth"),
            ("an-fcm-token".to_string(), "JSON"),
            (json!({"endpoint": "https://p.test/x"}).to_string(), "JSON"),
        ];
        for (token, member) in cases {
            let err = WebPushSubscription::parse(&token).unwrap_err().to_string();
            assert!(err.contains(member), "{token}: {err}");
        }
        assert!(WebPushSubscription::parse_allowing_http(&token("http://127.0.0.1:9/x", P256DH, AUTH), true).is_ok());
    }
}
