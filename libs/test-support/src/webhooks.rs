//! Signing provider webhook requests the way the providers document it, for the gateway's
//! webhook tests: SendGrid's Signed Event Webhook (ECDSA P-256 with a key pair made for the
//! test) and Mailgun's HMAC-SHA256 signature object.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use p256::{
    ecdsa::{signature::Signer as _, Signature, SigningKey},
    pkcs8::EncodePublicKey,
};
use serde_json::{json, Value};
use sha2::Sha256;

/// SendGrid's signature header.
pub const SENDGRID_SIGNATURE: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// SendGrid's timestamp header.
pub const SENDGRID_TIMESTAMP: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// A SendGrid account's webhook key pair, made for one test.
pub struct SendGridSigner {
    key: SigningKey,
}

impl Default for SendGridSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl SendGridSigner {
    /// A fresh key pair.
    pub fn new() -> Self {
        Self {
            key: SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// The verification key as SendGrid shows it (`APP_SENDGRID_WEBHOOK_PUBLIC_KEY`): base64
    /// of the DER SubjectPublicKeyInfo.
    pub fn public_key(&self) -> String {
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 key encodes");
        STANDARD.encode(der.as_bytes())
    }

    /// The signature header's value for `body` sent at `timestamp`: base64 of the DER
    /// ECDSA/SHA-256 signature of `timestamp + body`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        let sig: Signature = self.key.sign(&signed);
        STANDARD.encode(sig.to_der().as_bytes())
    }

    /// Both headers for `body`, signed now.
    pub fn headers(&self, body: &[u8]) -> [(&'static str, String); 2] {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            .to_string();
        [
            (SENDGRID_SIGNATURE, self.sign(&timestamp, body)),
            (SENDGRID_TIMESTAMP, timestamp),
        ]
    }
}

/// A Mailgun webhook body: `event_data` with the signature object for `timestamp` (Unix
/// seconds) and `token`, signed with `signing_key`.
pub fn mailgun_body(signing_key: &str, timestamp: i64, token: &str, event_data: Value) -> Value {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(token.as_bytes());
    json!({
        "signature": {
            "timestamp": timestamp.to_string(),
            "token": token,
            "signature": hex::encode(mac.finalize().into_bytes()),
        },
        "event-data": event_data,
    })
}

/// A fresh 50-character token, as Mailgun makes them.
pub fn mailgun_token() -> String {
    let mut t = uuid::Uuid::new_v4().simple().to_string();
    t.push_str(&uuid::Uuid::new_v4().simple().to_string()[..18]);
    t
}
