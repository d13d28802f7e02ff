//! Password hashing with Argon2id. Hashing runs on the blocking pool (it is CPU-bound by
//! design); the PHC string stores its parameters, so raising the cost later keeps old
//! hashes verifiable.

use anyhow::Context;
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist, so
    /// that "no such email" and "wrong password" take the same time.
    dummy_hash: String,
    /// Hashes running at once. Each takes `memory_kib` of memory: unbounded (the blocking
    /// pool has 512 threads) a burst of sign-ups or logins would take gigabytes.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Passwords {
    /// Checks the parameters (a bad value stops the service at start).
    pub fn new(p: HashingParams) -> anyhow::Result<Self> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid APP_PASSWORD_HASH_* parameters: {e}"))?;
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let dummy_hash = hash_with(&params, dummy_password.as_bytes())?;
        let parallel = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            params,
            dummy_hash,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(parallel)),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let params = self.params.clone();
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing is shutting down")?;
        tokio::task::spawn_blocking(move || hash_with(&params, password.expose_secret().as_bytes()))
            .await
            .context("password hashing task failed")?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown account) it does
    /// the same work and answers false.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing is shutting down")?;
        let matches = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let parsed =
                PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
            Ok(Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .context("password verification task failed")??;
        Ok(known && matches)
    }
}

fn hash_with(params: &Params, password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(HashingParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let p = cheap();
        let hash = p.hash(secret("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(p.verify(secret("correct horse"), Some(hash.clone())).await.unwrap());
        assert!(!p.verify(secret("wrong horse"), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let p = cheap();
        assert!(!p.verify(secret("anything"), None).await.unwrap());
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let p = cheap();
        let a = p.hash(secret("same password")).await.unwrap();
        let b = p.hash(secret("same password")).await.unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        assert!(Passwords::new(HashingParams {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1
        })
        .is_err());
    }
}
