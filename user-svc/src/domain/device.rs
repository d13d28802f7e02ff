//! Devices: a push token checked for the shape its platform and provider give it.
//!
//! | provider | platforms | token |
//! |---|---|---|
//! | `fcm` | `android`, `ios` (APNs through FCM), `web` | an FCM registration token: 8 to 4096 characters of letters, digits and `_ - : .` |
//! | `webpush` | `web` | a Web Push subscription `{"endpoint": "https://…", "keys": {"p256dh", "auth"}}` (the browser's `PushSubscription.toJSON()`; `expirationTime` may be there and is ignored): `p256dh` the base64url of a 65-byte uncompressed P-256 point, `auth` of 16 bytes |
//! | `onesignal` | any | a OneSignal subscription id (a UUID) |
//!
//! The provider defaults by platform ([`DeviceDefaults`], `APP_PUSH_DEFAULT_PROVIDERS`).

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use notify_kit::{settings::SettingsError, validate, FieldError};
use notify_lookup::{Platform, PushProvider};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// Longest FCM registration token accepted.
pub const MAX_FCM_TOKEN: usize = 4096;
/// Shortest FCM registration token accepted (real ones are about 160 characters; this only
/// refuses what cannot be one).
pub const MIN_FCM_TOKEN: usize = 8;
/// Longest Web Push endpoint accepted.
pub const MAX_ENDPOINT: usize = 2048;

/// Request body of `POST /api/v1/users/{id}/push-tokens`, and the object form of a new
/// user's `push_token`. Checked by [`NewPushToken::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushTokenBody {
    /// An FCM registration token or a OneSignal subscription id (strings), or, for
    /// `webpush`, the browser's subscription object
    /// `{"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}`.
    #[schema(value_type = Object)]
    pub token: Option<Value>,
    /// `android`, `ios` or `web`.
    #[schema(value_type = String, example = "android")]
    pub platform: Option<Value>,
    /// `fcm`, `webpush` or `onesignal`; by default `webpush` for `web` and `fcm` for
    /// `android` and `ios` (configurable: `APP_PUSH_DEFAULT_PROVIDERS`).
    #[schema(value_type = Option<String>, example = "fcm")]
    pub provider: Option<Value>,
}

/// The provider a device gets when its registration names none, per platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceDefaults {
    pub android: PushProvider,
    pub ios: PushProvider,
    pub web: PushProvider,
}

impl Default for DeviceDefaults {
    /// `android=fcm,ios=fcm,web=webpush`.
    fn default() -> Self {
        Self {
            android: PushProvider::Fcm,
            ios: PushProvider::Fcm,
            web: PushProvider::WebPush,
        }
    }
}

impl DeviceDefaults {
    const VARIABLE: &'static str = "APP_PUSH_DEFAULT_PROVIDERS";

    /// The provider of `platform`.
    pub fn of(&self, platform: Platform) -> PushProvider {
        match platform {
            Platform::Android => self.android,
            Platform::Ios => self.ios,
            Platform::Web => self.web,
        }
    }

    /// `platform=provider` pairs separated by commas (e.g. `web=fcm`); platforms left out
    /// keep their default. Each pair must be a combination [`check_pair`] accepts.
    pub fn parse(raw: &str) -> Result<Self, SettingsError> {
        let mut defaults = Self::default();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |why: String| SettingsError::invalid(Self::VARIABLE, format!("`{pair}`: {why}"));
            let (platform, provider) = pair
                .split_once('=')
                .ok_or_else(|| bad("expected platform=provider".into()))?;
            let platform: Platform = platform.trim().parse().map_err(bad)?;
            let provider: PushProvider = provider.trim().parse().map_err(bad)?;
            check_pair(platform, provider).map_err(bad)?;
            match platform {
                Platform::Android => defaults.android = provider,
                Platform::Ios => defaults.ios = provider,
                Platform::Web => defaults.web = provider,
            }
        }
        Ok(defaults)
    }
}

/// Whether `provider` can deliver to a device of `platform`.
pub fn check_pair(platform: Platform, provider: PushProvider) -> Result<(), String> {
    match (platform, provider) {
        (Platform::Android | Platform::Ios, PushProvider::WebPush) => Err(format!(
            "provider webpush serves only platform web, not {}",
            platform.as_str()
        )),
        _ => Ok(()),
    }
}

/// A device's token in its stored form, valid for its provider: an FCM token as sent, a
/// OneSignal id lower-cased, a Web Push subscription as canonical JSON (keys in base64url
/// without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl DeviceToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `value` (the request's `token`, at `at`) as a token of `provider`; each
    /// problem is recorded with its field.
    pub fn parse(value: &Value, provider: PushProvider, at: &str, errors: &mut Vec<FieldError>) -> Option<Self> {
        match provider {
            PushProvider::Fcm => {
                let raw = validate::string(Some(value), at, errors)?;
                record(fcm_token(raw), at, errors)
            }
            PushProvider::OneSignal => {
                let raw = validate::string(Some(value), at, errors)?;
                record(onesignal_id(raw), at, errors)
            }
            PushProvider::WebPush => match value {
                Value::Object(obj) => web_push_subscription(obj, at, errors),
                // The subscription serialized (its stored form, or a client that sends it
                // as text).
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(obj)) => web_push_subscription(&obj, at, errors),
                    _ => {
                        errors.push(FieldError::new(at, WEB_PUSH_SHAPE));
                        None
                    }
                },
                _ => {
                    errors.push(FieldError::new(at, WEB_PUSH_SHAPE));
                    None
                }
            },
        }
    }
}

const WEB_PUSH_SHAPE: &str =
    "must be a Web Push subscription: {\"endpoint\": \"https://…\", \"keys\": {\"p256dh\": \"…\", \"auth\": \"…\"}}";

fn record(checked: Result<String, String>, at: &str, errors: &mut Vec<FieldError>) -> Option<DeviceToken> {
    checked
        .map(DeviceToken)
        .map_err(|reason| errors.push(FieldError::new(at, reason)))
        .ok()
}

/// An FCM registration token (also what FCM gives iOS apps for APNs, and web apps).
fn fcm_token(raw: &str) -> Result<String, String> {
    if !(MIN_FCM_TOKEN..=MAX_FCM_TOKEN).contains(&raw.len()) {
        return Err(format!(
            "an FCM registration token is {MIN_FCM_TOKEN} to {MAX_FCM_TOKEN} characters"
        ));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
    {
        return Err("an FCM registration token has only letters, digits and _ - : .".into());
    }
    Ok(raw.to_string())
}

/// A OneSignal subscription id: a UUID, stored lower-case and hyphenated.
fn onesignal_id(raw: &str) -> Result<String, String> {
    uuid::Uuid::try_parse(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| "a OneSignal subscription id is a UUID".into())
}

/// base64url, padded or not (browsers send it unpadded; RFC 8291 says either).
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64URL_UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false),
);

fn web_push_subscription(obj: &Map<String, Value>, at: &str, errors: &mut Vec<FieldError>) -> Option<DeviceToken> {
    validate::reject_unknown(obj, &["endpoint", "keys", "expirationTime"], at, errors);
    let endpoint_at = validate::path(at, "endpoint");
    let endpoint = validate::required_str(obj, "endpoint", at, errors).and_then(|e| {
        https_endpoint(e)
            .map_err(|r| errors.push(FieldError::new(&endpoint_at, r)))
            .ok()
    });
    let keys_at = validate::path(at, "keys");
    let (p256dh, auth) = match validate::required_object(obj, "keys", at, errors) {
        None => (None, None),
        Some(keys) => {
            validate::reject_unknown(keys, &["p256dh", "auth"], &keys_at, errors);
            let key = |field: &str, errors: &mut Vec<FieldError>, check: fn(&[u8]) -> Result<(), String>| {
                let field_at = validate::path(&keys_at, field);
                let raw = validate::required_str(keys, field, &keys_at, errors)?;
                let bytes = BASE64URL
                    .decode(raw.trim_end_matches('='))
                    .map_err(|_| errors.push(FieldError::new(&field_at, "must be base64url")))
                    .ok()?;
                check(&bytes)
                    .map_err(|r| errors.push(FieldError::new(&field_at, r)))
                    .ok()?;
                Some(BASE64URL_UNPADDED.encode(bytes))
            };
            (key("p256dh", errors, p256dh_key), key("auth", errors, auth_secret))
        }
    };
    let token = json!({
        "endpoint": endpoint?,
        "keys": {"p256dh": p256dh?, "auth": auth?},
    });
    Some(DeviceToken(token.to_string()))
}

/// The subscriber's ECDH public key: an uncompressed P-256 point (RFC 8291 §3.1).
fn p256dh_key(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() != 65 || bytes[0] != 0x04 {
        return Err("must be the base64url of a 65-byte uncompressed P-256 point (0x04 || X || Y)".into());
    }
    Ok(())
}

/// The authentication secret (RFC 8291 §3.2).
fn auth_secret(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() != 16 {
        return Err("must be the base64url of 16 bytes".into());
    }
    Ok(())
}

/// A push service endpoint: an absolute `https` URL with a host, no credentials, no white
/// space, at most [`MAX_ENDPOINT`] characters.
fn https_endpoint(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_ENDPOINT {
        return Err(format!("must be at most {MAX_ENDPOINT} characters"));
    }
    let rest = raw
        .strip_prefix("https://")
        .ok_or("must be an https:// URL (the push service's endpoint)")?;
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    // Push services are named hosts: no user info, no IP literals in brackets.
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok {
        return Err("must be an https URL with a host name (no user info)".into());
    }
    Ok(raw.to_string())
}

/// A device to register: its token valid for its provider, which serves its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPushToken {
    pub token: DeviceToken,
    pub platform: Platform,
    pub provider: PushProvider,
}

impl NewPushToken {
    /// The object at `at` (`push_token` in a new-user body, the body itself for
    /// `POST .../push-tokens`).
    pub fn parse_at(value: &Value, at: &str, defaults: &DeviceDefaults, errors: &mut Vec<FieldError>) -> Option<Self> {
        let body = validate::body::<PushTokenBody>(value, at, errors)?;
        let platform_at = validate::path(at, "platform");
        let platform = validate::string(body.platform.as_ref(), &platform_at, errors).and_then(|s| {
            s.parse::<Platform>()
                .map_err(|r| errors.push(FieldError::new(&platform_at, r)))
                .ok()
        });
        let provider_at = validate::path(at, "provider");
        let provider = match validate::optional_string(body.provider.as_ref(), &provider_at, errors) {
            Err(()) => None,
            Ok(None) => platform.map(|p| defaults.of(p)),
            Ok(Some(s)) => s
                .parse::<PushProvider>()
                .map_err(|r| errors.push(FieldError::new(&provider_at, r)))
                .ok(),
        };
        let (platform, provider) = (platform?, provider?);
        if let Err(reason) = check_pair(platform, provider) {
            errors.push(FieldError::new(&provider_at, reason));
            return None;
        }
        let token_at = validate::path(at, "token");
        let token = match &body.token {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(&token_at, "is required"));
                None
            }
            Some(v) => DeviceToken::parse(v, provider, &token_at, errors),
        }?;
        Some(Self {
            token,
            platform,
            provider,
        })
    }

    /// A `POST /api/v1/users/{id}/push-tokens` body.
    pub fn parse(body: &Value, defaults: &DeviceDefaults) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        match Self::parse_at(body, "", defaults, &mut errors) {
            Some(t) if errors.is_empty() => Ok(t),
            _ => Err(errors),
        }
    }

    /// A bare token string (a new user's `push_token` in the product spec's form): an FCM
    /// token of platform `android` with android's default provider.
    pub fn bare(raw: &str, at: &str, defaults: &DeviceDefaults, errors: &mut Vec<FieldError>) -> Option<Self> {
        let provider = defaults.of(Platform::Android);
        let token = DeviceToken::parse(&Value::String(raw.to_string()), provider, at, errors)?;
        Some(Self {
            token,
            platform: Platform::Android,
            provider,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn point() -> String {
        let mut p = vec![0x04_u8];
        p.extend([7_u8; 64]);
        BASE64URL_UNPADDED.encode(p)
    }

    fn auth() -> String {
        BASE64URL_UNPADDED.encode([9_u8; 16])
    }

    fn subscription() -> Value {
        json!({"endpoint": "https://push.example.net/send/abc", "expirationTime": null, "keys": {"p256dh": point(), "auth": auth()}})
    }

    #[test]
    fn the_provider_defaults_by_platform() {
        let d = DeviceDefaults::default();
        let android = NewPushToken::parse(&json!({"token": "fcm-token-0001", "platform": "android"}), &d).unwrap();
        assert_eq!(android.provider, PushProvider::Fcm);
        let web = NewPushToken::parse(&json!({"token": subscription(), "platform": "web"}), &d).unwrap();
        assert_eq!(web.provider, PushProvider::WebPush);
        let configured = DeviceDefaults::parse("web=fcm, ios=onesignal").unwrap();
        assert_eq!(configured.of(Platform::Web), PushProvider::Fcm);
        assert_eq!(configured.of(Platform::Ios), PushProvider::OneSignal);
        assert_eq!(configured.of(Platform::Android), PushProvider::Fcm);
        assert!(DeviceDefaults::parse("android=webpush").is_err());
        assert!(DeviceDefaults::parse("web").is_err());
        assert!(DeviceDefaults::parse("tv=fcm").is_err());
    }

    #[test]
    fn a_web_push_subscription_is_stored_canonically() {
        let mut padded = subscription();
        padded["keys"]["auth"] = json!(format!("{}==", auth()));
        let t = NewPushToken::parse(&json!({"token": padded, "platform": "web"}), &DeviceDefaults::default()).unwrap();
        let stored: Value = serde_json::from_str(t.token.as_str()).unwrap();
        assert_eq!(
            stored,
            json!({"endpoint": "https://push.example.net/send/abc", "keys": {"p256dh": point(), "auth": auth()}})
        );
        // Its stored form parses back to itself.
        let again = NewPushToken::parse(
            &json!({"token": t.token.as_str(), "platform": "web"}),
            &DeviceDefaults::default(),
        )
        .unwrap();
        assert_eq!(again.token, t.token);
    }

    #[test]
    fn a_bad_web_push_subscription_names_each_field() {
        let d = DeviceDefaults::default();
        let short_point = BASE64URL_UNPADDED.encode([4_u8; 33]);
        let errs = NewPushToken::parse(
            &json!({"token": {"endpoint": "http://push.example.net/x", "keys": {"p256dh": short_point, "auth": "!!"}}, "platform": "web"}),
            &d,
        )
        .unwrap_err();
        assert_eq!(
            fields(&errs),
            ["token.endpoint", "token.keys.p256dh", "token.keys.auth"]
        );
        let errs = NewPushToken::parse(
            &json!({"token": {"endpoint": "https://x.test/"}, "platform": "web"}),
            &d,
        )
        .unwrap_err();
        assert_eq!(fields(&errs), ["token.keys"]);
        let errs = NewPushToken::parse(&json!({"token": "not-a-subscription", "platform": "web"}), &d).unwrap_err();
        assert_eq!(fields(&errs), ["token"]);
        let mut compressed = vec![0x02_u8];
        compressed.extend([1_u8; 64]);
        let mut sub = subscription();
        sub["keys"]["p256dh"] = json!(BASE64URL_UNPADDED.encode(compressed));
        let errs = NewPushToken::parse(&json!({"token": sub, "platform": "web"}), &d).unwrap_err();
        assert_eq!(fields(&errs), ["token.keys.p256dh"]);
        for endpoint in ["https://", "https://user@host/x", "https://host:abc/", "https://a b/"] {
            let mut sub = subscription();
            sub["endpoint"] = json!(endpoint);
            let errs = NewPushToken::parse(&json!({"token": sub, "platform": "web"}), &d).unwrap_err();
            assert_eq!(fields(&errs), ["token.endpoint"], "{endpoint}");
        }
    }

    #[test]
    fn fcm_and_onesignal_tokens_have_their_shapes() {
        let d = DeviceDefaults::default();
        for bad in ["short", "has space in it", "slash/inside/token", "plus+inside-token"] {
            let errs = NewPushToken::parse(&json!({"token": bad, "platform": "ios"}), &d).unwrap_err();
            assert_eq!(fields(&errs), ["token"], "{bad}");
        }
        let long = "a".repeat(MAX_FCM_TOKEN + 1);
        assert!(NewPushToken::parse(&json!({"token": long, "platform": "android"}), &d).is_err());
        let id = "5F3C1E2A-8D3B-4C55-9E7A-0123456789AB";
        let t = NewPushToken::parse(&json!({"token": id, "platform": "ios", "provider": "onesignal"}), &d).unwrap();
        assert_eq!(t.token.as_str(), id.to_lowercase());
        let errs = NewPushToken::parse(
            &json!({"token": "fcm-token-0001", "platform": "ios", "provider": "onesignal"}),
            &d,
        )
        .unwrap_err();
        assert_eq!(fields(&errs), ["token"]);
    }

    #[test]
    fn webpush_serves_only_the_web() {
        let errs = NewPushToken::parse(
            &json!({"token": subscription(), "platform": "android", "provider": "webpush"}),
            &DeviceDefaults::default(),
        )
        .unwrap_err();
        assert_eq!(fields(&errs), ["provider"]);
    }

    proptest! {
        #[test]
        fn token_parsing_never_panics(raw in "\\PC{0,200}", provider in 0..3_u8) {
            let provider = [PushProvider::Fcm, PushProvider::WebPush, PushProvider::OneSignal][usize::from(provider)];
            let _ = DeviceToken::parse(&Value::String(raw), provider, "token", &mut Vec::new());
        }

        #[test]
        fn fcm_shaped_tokens_are_kept_as_sent(raw in "[A-Za-z0-9_:.-]{8,300}") {
            let t = DeviceToken::parse(&Value::String(raw.clone()), PushProvider::Fcm, "token", &mut Vec::new()).unwrap();
            prop_assert_eq!(t.as_str(), raw.as_str());
        }
    }
}
