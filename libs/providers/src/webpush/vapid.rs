//! VAPID (RFC 8292): the application server identifies itself to push services with an
//! ES256 JWT (`aud` = the push service's origin, `exp` at most 24 h ahead, `sub` a contact
//! URI), signed with its P-256 key, and sends its public key beside it:
//! `Authorization: vapid t=<jwt>, k=<base64url public key>`.

use std::{
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey, SecretKey};
use serde::{Deserialize, Serialize};

/// How long a VAPID token is valid: 12 h (RFC 8292 allows at most 24 h).
pub const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;

/// The claims of a VAPID token.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VapidClaims {
    pub aud: String,
    pub exp: u64,
    pub sub: String,
}

/// Why a VAPID key or subject is refused (the message never holds the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    #[error("not a base64url P-256 private key (32 raw bytes)")]
    Key,
    #[error("must be a mailto: or https: URI")]
    Subject,
}

/// The application server's VAPID key. `Debug` shows only the public key.
pub struct VapidKey {
    encoding_key: EncodingKey,
    public_key: String,
    subject: String,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// The key from its raw private scalar, base64url (what `web-push generate-vapid-keys`
    /// and most libraries print as the private key), and the contact `subject`.
    pub fn from_base64url(private_key: &str, subject: &str) -> Result<Self, VapidError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(private_key.trim().trim_end_matches('='))
            .map_err(|_| VapidError::Key)?;
        let secret = SecretKey::from_slice(&bytes).map_err(|_| VapidError::Key)?;
        Self::new(&secret, subject)
    }

    /// The key from a P-256 secret key.
    pub fn new(secret: &SecretKey, subject: &str) -> Result<Self, VapidError> {
        let subject = subject.trim();
        let subject_ok = (subject.starts_with("mailto:") && subject.len() > 7 && subject.contains('@'))
            || (subject.starts_with("https://") && subject.len() > 8);
        if !subject_ok || subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(VapidError::Subject);
        }
        let der = secret.to_pkcs8_der().map_err(|_| VapidError::Key)?;
        Ok(Self {
            encoding_key: EncodingKey::from_ec_der(der.as_bytes()),
            public_key: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            subject: subject.to_string(),
        })
    }

    /// The public key, base64url of the uncompressed point: what browsers are given as
    /// `applicationServerKey` when they subscribe, and the `k=` of every request.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header value for a push service at `origin`
    /// (`https://host[:port]`).
    pub fn authorization(&self, origin: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = VapidClaims {
            aud: origin.to_string(),
            exp: now + TOKEN_LIFETIME_SECS,
            sub: self.subject.clone(),
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding_key)?;
        Ok(format!("vapid t={jwt}, k={}", self.public_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn key() -> (SecretKey, VapidKey) {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let raw = URL_SAFE_NO_PAD.encode(secret.to_bytes());
        let key = VapidKey::from_base64url(&raw, "mailto:ops@notify.test").unwrap();
        (secret, key)
    }

    #[test]
    fn the_token_verifies_with_the_public_key_and_names_the_origin() {
        let (secret, key) = key();

        let header = key.authorization("https://push.example.net").unwrap();

        let (t, k) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap();
        assert_eq!(k, key.public_key());
        let point = secret.public_key().to_encoded_point(false);
        let x = URL_SAFE_NO_PAD.encode(point.x().unwrap());
        let y = URL_SAFE_NO_PAD.encode(point.y().unwrap());
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example.net"]);
        let claims =
            jsonwebtoken::decode::<VapidClaims>(t, &DecodingKey::from_ec_components(&x, &y).unwrap(), &validation)
                .unwrap()
                .claims;
        assert_eq!(claims.sub, "mailto:ops@notify.test");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(claims.exp > now && claims.exp <= now + 24 * 3600, "exp within 24 h");
    }

    #[test]
    fn bad_keys_and_subjects_are_refused() {
        assert_eq!(
            VapidKey::from_base64url("not-a-key", "mailto:a@b.test").unwrap_err(),
            VapidError::Key
        );
        assert_eq!(
            VapidKey::from_base64url(&URL_SAFE_NO_PAD.encode([0u8; 32]), "mailto:a@b.test").unwrap_err(),
            VapidError::Key
        );
        let raw = URL_SAFE_NO_PAD.encode(SecretKey::random(&mut rand::rngs::OsRng).to_bytes());
        for subject in ["ops@notify.test", "http://notify.test", "mailto:", "https://"] {
            assert_eq!(
                VapidKey::from_base64url(&raw, subject).unwrap_err(),
                VapidError::Subject,
                "{subject}"
            );
        }
    }
}
