//! Web Push message encryption: `aes128gcm` content coding (RFC 8188) with the key
//! derivation of RFC 8291 §3.4, composed from maintained primitives (`p256` ECDH, `hkdf`
//! with SHA-256, `aes-gcm`). One record, so the body is the 86-byte header (salt, record
//! size, the sender's ephemeral public key) followed by the ciphertext of the payload and
//! its `0x02` delimiter. The RFC 8291 Appendix A vector pins both directions.

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes128Gcm, Nonce,
};
use hkdf::Hkdf;
use p256::{ecdh, elliptic_curve::sec1::ToEncodedPoint, PublicKey, SecretKey};
use sha2::Sha256;

/// Record size written in the header: the whole body is one record of at most this.
pub const RECORD_SIZE: u32 = 4096;
/// Bytes of the header: salt (16), record size (4), key id length (1), key id (65).
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// Longest payload that fits one 4096-byte record (16-byte tag, 1-byte delimiter): push
/// services accept at most 4096 bytes of body.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - 16 - 1;

/// Why a message cannot be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EceError {
    #[error("the payload is {0} bytes, more than the {MAX_PLAINTEXT} one Web Push record holds")]
    TooLarge(usize),
    #[error("the body is not an aes128gcm message: {0}")]
    Malformed(&'static str),
    #[error("the message does not decrypt with this key and auth secret")]
    Decrypt,
}

/// The content-encryption key and nonce of one message (RFC 8291 §3.3-3.4, RFC 8188 §2.2).
fn derive(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> ([u8; 16], [u8; 12]) {
    // IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth_secret), ecdh_secret)
        .expand(&key_info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 length");
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .expect("16 bytes is a valid HKDF-SHA-256 length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .expect("12 bytes is a valid HKDF-SHA-256 length");
    (cek, nonce)
}

fn shared_secret(secret: &SecretKey, public: &PublicKey) -> Vec<u8> {
    ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine())
        .raw_secret_bytes()
        .to_vec()
}

/// Encrypts `plaintext` for the subscriber (`ua_public`, `auth_secret`) with a fresh
/// ephemeral key and salt.
pub fn encrypt(plaintext: &[u8], ua_public: &PublicKey, auth_secret: &[u8; 16]) -> Result<Vec<u8>, EceError> {
    let mut rng = rand::rngs::OsRng;
    let ephemeral = SecretKey::random(&mut rng);
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rng, &mut salt);
    encrypt_with(plaintext, ua_public, auth_secret, &ephemeral, &salt)
}

/// [`encrypt`] with a given ephemeral key and salt (the RFC's test vector; never reuse
/// either for two messages).
pub fn encrypt_with(
    plaintext: &[u8],
    ua_public: &PublicKey,
    auth_secret: &[u8; 16],
    ephemeral: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, EceError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EceError::TooLarge(plaintext.len()));
    }
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let ua_point = ua_public.to_encoded_point(false);
    let secret = shared_secret(ephemeral, ua_public);
    let (cek, nonce) = derive(&secret, auth_secret, ua_point.as_bytes(), as_public.as_bytes(), salt);
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2); // the last (and only) record's delimiter, no padding
    let ciphertext = Aes128Gcm::new(&cek.into())
        .encrypt(Nonce::from_slice(&nonce), Payload::from(record.as_slice()))
        .map_err(|_| EceError::Malformed("encryption failed"))?;
    let mut body = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.as_bytes().len() as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&ciphertext);
    Ok(body)
}

/// The subscriber's side: decrypts a one-record `aes128gcm` body with the subscription's
/// private key and auth secret (tests, and the local Web Push receiver).
pub fn decrypt(body: &[u8], ua_secret: &SecretKey, auth_secret: &[u8; 16]) -> Result<Vec<u8>, EceError> {
    if body.len() < 21 {
        return Err(EceError::Malformed("shorter than its header"));
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let id_len = body[20] as usize;
    let Some(key_id) = body.get(21..21 + id_len) else {
        return Err(EceError::Malformed("key id runs past the end"));
    };
    let ciphertext = &body[21 + id_len..];
    if ciphertext.len() < 17 || ciphertext.len() > record_size {
        return Err(EceError::Malformed("not exactly one record"));
    }
    let as_public =
        PublicKey::from_sec1_bytes(key_id).map_err(|_| EceError::Malformed("key id is not a P-256 point"))?;
    let ua_public = ua_secret.public_key().to_encoded_point(false);
    let secret = shared_secret(ua_secret, &as_public);
    let (cek, nonce) = derive(&secret, auth_secret, ua_public.as_bytes(), key_id, salt);
    let mut record = Aes128Gcm::new(&cek.into())
        .decrypt(Nonce::from_slice(&nonce), ciphertext)
        .map_err(|_| EceError::Decrypt)?;
    // Strip padding: zeros, then the delimiter (2 for the last record).
    while record.last() == Some(&0) {
        record.pop();
    }
    match record.pop() {
        Some(2) => Ok(record),
        _ => Err(EceError::Malformed("the last record lacks its 0x02 delimiter")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

    // RFC 8291 Appendix A.
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    fn auth() -> [u8; 16] {
        b64(AUTH).try_into().unwrap()
    }

    #[test]
    fn encryption_reproduces_the_rfc_8291_example_byte_for_byte() {
        let ephemeral = SecretKey::from_slice(&b64(AS_PRIVATE)).unwrap();
        assert_eq!(
            ephemeral.public_key().to_encoded_point(false).as_bytes(),
            b64(AS_PUBLIC)
        );
        let ua_public = PublicKey::from_sec1_bytes(&b64(UA_PUBLIC)).unwrap();
        let salt: [u8; 16] = b64(SALT).try_into().unwrap();

        let body = encrypt_with(PLAINTEXT.as_bytes(), &ua_public, &auth(), &ephemeral, &salt).unwrap();

        assert_eq!(URL_SAFE_NO_PAD.encode(body), BODY);
    }

    #[test]
    fn decryption_reads_the_rfc_8291_example() {
        let ua_secret = SecretKey::from_slice(&b64(UA_PRIVATE)).unwrap();

        let plaintext = decrypt(&b64(BODY), &ua_secret, &auth()).unwrap();

        assert_eq!(plaintext, PLAINTEXT.as_bytes());
    }

    #[test]
    fn a_fresh_message_decrypts_only_with_the_right_auth_secret() {
        let ua_secret = SecretKey::random(&mut rand::rngs::OsRng);
        let body = encrypt(b"hello", &ua_secret.public_key(), &auth()).unwrap();

        assert_eq!(decrypt(&body, &ua_secret, &auth()).unwrap(), b"hello");
        assert_eq!(decrypt(&body, &ua_secret, &[0; 16]), Err(EceError::Decrypt));
    }

    #[test]
    fn a_payload_larger_than_one_record_is_refused() {
        let ua_secret = SecretKey::random(&mut rand::rngs::OsRng);
        let at_limit = vec![b'a'; MAX_PLAINTEXT];
        let body = encrypt(&at_limit, &ua_secret.public_key(), &auth()).unwrap();
        assert_eq!(
            body.len(),
            RECORD_SIZE as usize,
            "header and one full record: the 4096 bytes push services take"
        );

        let err = encrypt(&[b'a'; MAX_PLAINTEXT + 1], &ua_secret.public_key(), &auth()).unwrap_err();

        assert_eq!(err, EceError::TooLarge(MAX_PLAINTEXT + 1));
    }
}
