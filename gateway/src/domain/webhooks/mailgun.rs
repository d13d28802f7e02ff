//! Mailgun's webhooks: one event per request, a JSON body `{"signature": {"timestamp",
//! "token", "signature"}, "event-data": {…}}`. The signature is the hex HMAC-SHA256 of
//! `timestamp + token` keyed with the account's webhook signing key; it is compared in
//! constant time. The timestamp must be within the accepted window (both ways), and each
//! token is accepted once (checked by the route, in Redis). Our notification id comes back
//! in `event-data.user-variables.notification_id` (sent as `v:notification_id` by
//! `libs/providers/src/mailgun.rs`).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use super::{cut, notification_id, recipient, unix_time, EventKind, InvalidEvent, ProviderEvent, SignatureError};

/// The longest token accepted (Mailgun's are 50 characters).
pub const MAX_TOKEN_CHARS: usize = 100;

/// The `signature` object of a request, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailgunSignature {
    /// The Unix time (seconds) as text, exactly as signed.
    pub timestamp: String,
    pub token: String,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

/// Verifies Mailgun's signatures with the webhook signing key.
#[derive(Clone)]
pub struct MailgunVerifier {
    key: SecretString,
    max_age: chrono::Duration,
}

impl std::fmt::Debug for MailgunVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailgunVerifier")
    }
}

impl MailgunVerifier {
    /// With the signing key and the accepted clock difference (each way).
    pub fn new(key: SecretString, max_age: std::time::Duration) -> Self {
        Self {
            key,
            max_age: chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Checks the HMAC, then the timestamp against `now`. The token's single use is the
    /// caller's to check (it needs shared state).
    pub fn verify(&self, sig: &MailgunSignature, now: DateTime<Utc>) -> Result<(), SignatureError> {
        let expected = hex::decode(sig.signature.trim()).map_err(|_| SignatureError::Invalid)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes()).map_err(|_| SignatureError::Invalid)?;
        mac.update(sig.timestamp.as_bytes());
        mac.update(sig.token.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected).map_err(|_| SignatureError::Invalid)?;
        let signed_at = sig
            .timestamp
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(SignatureError::Invalid)?;
        if (now - signed_at).abs() > self.max_age {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

/// A request body split into its signature and its event (`Err(Missing)` when there is no
/// usable signature object: nothing else is read before it is verified).
pub fn parse_body(body: &Value) -> Result<(MailgunSignature, &Value), SignatureError> {
    let sig = body.get("signature").ok_or(SignatureError::Missing)?;
    let text = |field: &str| match sig.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let (Some(timestamp), Some(token), Some(signature)) = (text("timestamp"), text("token"), text("signature")) else {
        return Err(SignatureError::Missing);
    };
    if token.len() > MAX_TOKEN_CHARS || timestamp.len() > 20 || signature.len() > 128 {
        return Err(SignatureError::Invalid);
    }
    Ok((
        MailgunSignature {
            timestamp,
            token,
            signature,
        },
        body.get("event-data").unwrap_or(&Value::Null),
    ))
}

/// The event of a verified request.
pub fn parse_event(data: &Value) -> Result<ProviderEvent, InvalidEvent> {
    let Value::Object(e) = data else {
        return Err(InvalidEvent("`event-data` must be an object".into()));
    };
    let name = e
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidEvent("`event-data` has no `event`".into()))?;
    let occurred_at = unix_time(e.get("timestamp"))
        .ok_or_else(|| InvalidEvent(format!("`{name}` event without a valid `timestamp`")))?;
    let kind = match name {
        "delivered" => Some(EventKind::Delivered),
        "failed" => Some(match e.get("severity").and_then(Value::as_str) {
            Some("permanent") => EventKind::HardBounce,
            _ => EventKind::SoftBounce,
        }),
        "complained" => Some(EventKind::Complaint),
        "unsubscribed" => Some(EventKind::Unsubscribe),
        _ => None,
    };
    let status = e.get("delivery-status");
    let field = |v: Option<&Value>, name: &str| {
        v.and_then(|v| v.get(name)).and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let message = field(status, "description")
        .filter(|s| !s.trim().is_empty())
        .or_else(|| field(status, "message"));
    let detail = [field(status, "code"), field(Some(data), "reason"), message]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(ProviderEvent {
        name: name.chars().take(64).collect(),
        kind,
        notification_id: notification_id(e.get("user-variables").and_then(|v| v.get("notification_id"))),
        recipient: recipient(e.get("recipient")),
        occurred_at,
        detail: (!detail.is_empty()).then(|| cut(&detail)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    const ID: &str = "0190c5a1-0000-7000-8000-000000000001";
    const KNOWN_SIGNATURE: &str = "bce54fbcad565970280ea7299c6c602125e2baee67c24378db39a218a4818a71";

    fn verifier() -> MailgunVerifier {
        MailgunVerifier::new(SecretString::from(KEY), std::time::Duration::from_secs(300))
    }

    fn signed(timestamp: i64, token: &str) -> MailgunSignature {
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("{timestamp}{token}").as_bytes());
        MailgunSignature {
            timestamp: timestamp.to_string(),
            token: token.into(),
            signature: hex::encode(mac.finalize().into_bytes()),
        }
    }

    #[test]
    fn the_hmac_of_timestamp_and_token_with_the_signing_key_verifies() {
        let now = Utc::now();
        let sig = signed(now.timestamp(), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0");
        assert_eq!(verifier().verify(&sig, now), Ok(()));
    }

    #[test]
    fn a_known_signature_verifies() {
        // HMAC-SHA256("key", "1529006854" + "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"),
        // computed independently (`openssl dgst -sha256 -hmac key`).
        let v = MailgunVerifier::new(SecretString::from("key"), std::time::Duration::from_secs(300));
        let sig = MailgunSignature {
            timestamp: "1529006854".into(),
            token: "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0".into(),
            signature: KNOWN_SIGNATURE.into(),
        };
        let at = DateTime::from_timestamp(1_529_006_854, 0).unwrap();
        assert_eq!(v.verify(&sig, at), Ok(()));
    }

    #[test]
    fn a_wrong_key_token_or_signature_is_refused() {
        let now = Utc::now();
        let mut sig = signed(now.timestamp(), "token-1");
        sig.token = "token-2".into();
        assert_eq!(verifier().verify(&sig, now), Err(SignatureError::Invalid));
        let sig = signed(now.timestamp(), "token-1");
        let other = MailgunVerifier::new(SecretString::from("another-key"), std::time::Duration::from_secs(300));
        assert_eq!(other.verify(&sig, now), Err(SignatureError::Invalid));
        let mut bad = signed(now.timestamp(), "token-1");
        bad.signature = "zz".into();
        assert_eq!(verifier().verify(&bad, now), Err(SignatureError::Invalid));
    }

    #[test]
    fn an_old_or_future_timestamp_is_refused_even_when_correctly_signed() {
        let now = Utc::now();
        let old = signed(now.timestamp() - 301, "t");
        assert_eq!(verifier().verify(&old, now), Err(SignatureError::Expired));
        let future = signed(now.timestamp() + 301, "t");
        assert_eq!(verifier().verify(&future, now), Err(SignatureError::Expired));
        let recent = signed(now.timestamp() - 299, "t");
        assert_eq!(verifier().verify(&recent, now), Ok(()));
    }

    #[test]
    fn a_body_without_a_complete_signature_is_missing_its_signature() {
        assert_eq!(
            parse_body(&json!({"event-data": {}})).unwrap_err(),
            SignatureError::Missing
        );
        assert_eq!(
            parse_body(&json!({"signature": {"timestamp": "1", "token": "t"}})).unwrap_err(),
            SignatureError::Missing
        );
        let body = json!({"signature": {"timestamp": 1529006854, "token": "t", "signature": "ab"}, "event-data": {"event": "x"}});
        let (sig, data) = parse_body(&body).unwrap();
        assert_eq!(sig.timestamp, "1529006854");
        assert_eq!(data["event"], "x");
    }

    #[test]
    fn each_documented_event_maps_to_its_kind() {
        let ev = |data: Value| parse_event(&data).unwrap();
        let failed = ev(json!({
            "event": "failed", "severity": "permanent", "reason": "bounce", "timestamp": 1521233123.501324,
            "recipient": "alice@example.com", "user-variables": {"notification_id": ID},
            "delivery-status": {"code": 550, "message": "", "description": "No such mailbox"}
        }));
        assert_eq!(failed.kind, Some(EventKind::HardBounce));
        assert_eq!(failed.detail.as_deref(), Some("550 bounce No such mailbox"));
        assert_eq!(failed.recipient.as_deref(), Some("alice@example.com"));
        assert_eq!(failed.notification_id.map(|i| i.to_string()).as_deref(), Some(ID));
        assert_eq!(failed.occurred_at.timestamp_millis(), 1_521_233_123_501);
        let temp = ev(json!({"event": "failed", "severity": "temporary", "timestamp": 1}));
        assert_eq!(temp.kind, Some(EventKind::SoftBounce));
        assert_eq!(
            ev(json!({"event": "delivered", "timestamp": 1})).kind,
            Some(EventKind::Delivered)
        );
        assert_eq!(
            ev(json!({"event": "complained", "timestamp": 1})).kind,
            Some(EventKind::Complaint)
        );
        assert_eq!(
            ev(json!({"event": "unsubscribed", "timestamp": 1})).kind,
            Some(EventKind::Unsubscribe)
        );
        assert_eq!(ev(json!({"event": "opened", "timestamp": 1})).kind, None);
        assert!(parse_event(&json!({"event": "delivered"})).is_err());
        assert!(parse_event(&Value::Null).is_err());
    }
}
