//! SendGrid's Event Webhook: the Signed Event Webhook's ECDSA P-256 signature, and the batch
//! of events (a JSON array).
//!
//! SendGrid signs `timestamp + raw body` (the `X-Twilio-Email-Event-Webhook-Timestamp`
//! header's text followed by the body's bytes) with ECDSA over P-256 and SHA-256, and sends
//! the DER signature, base64-encoded, in `X-Twilio-Email-Event-Webhook-Signature`. The
//! verification key is shown in SendGrid's mail settings as base64 of the DER
//! SubjectPublicKeyInfo. Custom arguments of the message (`custom_args.notification_id`,
//! set by `libs/providers/src/sendgrid.rs`) come back as top-level properties of each event.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use p256::{
    ecdsa::{signature::Verifier as _, DerSignature, VerifyingKey},
    pkcs8::DecodePublicKey,
};
use serde_json::Value;

use super::{cut, notification_id, recipient, unix_time, EventKind, InvalidEvent, ProviderEvent, SignatureError};

/// The header carrying the base64 DER signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The header carrying the signed timestamp.
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";
/// The longest signature header accepted (a P-256 DER signature is at most 72 bytes).
const MAX_SIGNATURE_CHARS: usize = 200;
/// The longest timestamp header accepted.
const MAX_TIMESTAMP_CHARS: usize = 32;

/// Verifies SendGrid's signatures with the account's verification key.
#[derive(Clone)]
pub struct SendGridVerifier {
    key: VerifyingKey,
}

impl std::fmt::Debug for SendGridVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendGridVerifier")
    }
}

impl SendGridVerifier {
    /// From the verification key as SendGrid shows it: base64 of the DER
    /// SubjectPublicKeyInfo (a PEM block is accepted too: its armour is dropped).
    pub fn from_base64_der(key: &str) -> Result<Self, String> {
        let body: String = key.lines().map(str::trim).filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("not base64: {e}"))?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|e| format!("not a P-256 public key (DER SubjectPublicKeyInfo): {e}"))?;
        Ok(Self { key })
    }

    /// Checks the headers' signature over `timestamp + body`.
    pub fn verify(&self, signature: Option<&str>, timestamp: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err(SignatureError::Missing);
        };
        let (signature, timestamp) = (signature.trim(), timestamp.trim());
        if signature.is_empty() || timestamp.is_empty() {
            return Err(SignatureError::Missing);
        }
        if signature.len() > MAX_SIGNATURE_CHARS || timestamp.len() > MAX_TIMESTAMP_CHARS {
            return Err(SignatureError::Invalid);
        }
        let der = STANDARD
            .decode(signature.as_bytes())
            .map_err(|_| SignatureError::Invalid)?;
        let signature = DerSignature::from_bytes(&der).map_err(|_| SignatureError::Invalid)?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        self.key
            .verify(&signed, &signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// The events of a (verified) body: a JSON array of event objects. An element that cannot be
/// read is its own `Err`, so one bad event does not lose the others.
pub fn parse_events(body: &[u8]) -> Result<Vec<Result<ProviderEvent, InvalidEvent>>, InvalidEvent> {
    let value: Value = serde_json::from_slice(body).map_err(|e| InvalidEvent(format!("the body is not JSON: {e}")))?;
    let Value::Array(events) = value else {
        return Err(InvalidEvent("the body must be a JSON array of events".into()));
    };
    Ok(events.iter().map(parse_event).collect())
}

fn parse_event(event: &Value) -> Result<ProviderEvent, InvalidEvent> {
    let Value::Object(e) = event else {
        return Err(InvalidEvent("an event must be an object".into()));
    };
    let name = e
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidEvent("an event has no `event`".into()))?;
    let occurred_at = unix_time(e.get("timestamp"))
        .ok_or_else(|| InvalidEvent(format!("`{name}` event without a valid `timestamp`")))?;
    let text = |field: &str| e.get(field).and_then(Value::as_str).filter(|s| !s.is_empty());
    let kind = match name {
        "delivered" => Some(EventKind::Delivered),
        // `type` tells a bounce (the receiving server refused for good) from a block (a
        // temporary refusal, e.g. reputation or content).
        "bounce" => Some(match text("type") {
            Some("blocked") => EventKind::SoftBounce,
            _ => EventKind::HardBounce,
        }),
        "deferred" => Some(EventKind::SoftBounce),
        "dropped" => Some(EventKind::Dropped),
        "spamreport" => Some(EventKind::Complaint),
        "unsubscribe" | "group_unsubscribe" => Some(EventKind::Unsubscribe),
        _ => None,
    };
    let detail = match (text("status"), text("reason").or_else(|| text("response"))) {
        (Some(status), Some(reason)) => Some(format!("{status} {reason}")),
        (None, Some(reason)) => Some(reason.to_string()),
        (Some(status), None) => Some(status.to_string()),
        (None, None) => None,
    };
    Ok(ProviderEvent {
        name: name.chars().take(64).collect(),
        kind,
        notification_id: notification_id(e.get("notification_id")),
        recipient: recipient(e.get("email")),
        occurred_at,
        detail: detail.as_deref().map(cut),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use test_support::webhooks::SendGridSigner;

    use super::*;

    const ID: &str = "0190c5a1-0000-7000-8000-000000000001";

    /// A key pair made for the test (P-256), and its public half as SendGrid shows it.
    fn key_pair() -> (SendGridSigner, String) {
        let signer = SendGridSigner::new();
        let public = signer.public_key();
        (signer, public)
    }

    /// What SendGrid sends: base64 of the DER signature of `timestamp + body`.
    fn sign(key: &SendGridSigner, timestamp: &str, body: &[u8]) -> String {
        key.sign(timestamp, body)
    }

    #[test]
    fn a_signature_made_with_the_private_half_verifies() {
        let (signing, public) = key_pair();
        let verifier = SendGridVerifier::from_base64_der(&public).unwrap();
        let body = br#"[{"event":"delivered"}]"#;
        let sig = sign(&signing, "1600112502", body);
        assert_eq!(verifier.verify(Some(&sig), Some("1600112502"), body), Ok(()));
    }

    #[test]
    fn a_pem_wrapped_key_is_accepted_too() {
        let (signing, public) = key_pair();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{public}\n-----END PUBLIC KEY-----\n");
        let verifier = SendGridVerifier::from_base64_der(&pem).unwrap();
        let sig = sign(&signing, "1", b"[]");
        assert_eq!(verifier.verify(Some(&sig), Some("1"), b"[]"), Ok(()));
    }

    #[test]
    fn a_changed_body_timestamp_or_key_is_refused() {
        let (signing, public) = key_pair();
        let verifier = SendGridVerifier::from_base64_der(&public).unwrap();
        let body = br#"[{"event":"bounce"}]"#;
        let sig = sign(&signing, "1600112502", body);
        assert_eq!(
            verifier.verify(Some(&sig), Some("1600112502"), br#"[{"event":"delivered"}]"#),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verifier.verify(Some(&sig), Some("1600112503"), body),
            Err(SignatureError::Invalid)
        );
        let (other, _) = key_pair();
        let forged = sign(&other, "1600112502", body);
        assert_eq!(
            verifier.verify(Some(&forged), Some("1600112502"), body),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verifier.verify(Some("not base64!"), Some("1600112502"), body),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn missing_headers_are_told_apart_from_bad_ones() {
        let (_, public) = key_pair();
        let verifier = SendGridVerifier::from_base64_der(&public).unwrap();
        assert_eq!(verifier.verify(None, Some("1"), b"[]"), Err(SignatureError::Missing));
        assert_eq!(verifier.verify(Some("abc"), None, b"[]"), Err(SignatureError::Missing));
        assert_eq!(
            verifier.verify(Some(" "), Some("1"), b"[]"),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn a_key_that_is_not_a_p256_public_key_is_refused_at_start() {
        assert!(SendGridVerifier::from_base64_der("%%%").unwrap_err().contains("base64"));
        assert!(SendGridVerifier::from_base64_der(&STANDARD.encode(b"junk"))
            .unwrap_err()
            .contains("P-256"));
    }

    #[test]
    fn each_documented_event_maps_to_its_kind() {
        let body = json!([
            {"email": "a@example.com", "timestamp": 1513299569, "event": "delivered", "response": "250 OK", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "bounce", "type": "bounce", "status": "5.0.0", "reason": "550 5.1.1 unknown user", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "bounce", "type": "blocked", "reason": "421 try later", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "deferred", "response": "400 try again later", "attempt": "5", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "dropped", "reason": "Bounced Address", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "spamreport", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "group_unsubscribe", "notification_id": ID},
            {"email": "a@example.com", "timestamp": 1513299569, "event": "open", "notification_id": ID},
        ])
        .to_string();
        let events: Vec<ProviderEvent> = parse_events(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let kinds: Vec<Option<EventKind>> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                Some(EventKind::Delivered),
                Some(EventKind::HardBounce),
                Some(EventKind::SoftBounce),
                Some(EventKind::SoftBounce),
                Some(EventKind::Dropped),
                Some(EventKind::Complaint),
                Some(EventKind::Unsubscribe),
                None
            ]
        );
        assert_eq!(events[1].detail.as_deref(), Some("5.0.0 550 5.1.1 unknown user"));
        assert_eq!(events[1].recipient.as_deref(), Some("a@example.com"));
        assert_eq!(events[1].notification_id.map(|i| i.to_string()).as_deref(), Some(ID));
        assert_eq!(events[1].occurred_at.timestamp(), 1_513_299_569);
    }

    #[test]
    fn a_bad_event_does_not_lose_the_batch() {
        let body = json!([{"event": "delivered"}, 7, {"event": "delivered", "timestamp": 1, "notification_id": "x"}])
            .to_string();
        let events = parse_events(body.as_bytes()).unwrap();
        assert!(events[0].is_err(), "no timestamp");
        assert!(events[1].is_err(), "not an object");
        let third = events[2].as_ref().unwrap();
        assert_eq!(third.notification_id, None, "not a UUID: not ours");
        assert!(parse_events(b"{}").is_err());
        assert!(parse_events(b"nope").is_err());
    }
}
