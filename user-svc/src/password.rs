//! Password hashing with Argon2id, on a few threads of its own (it is CPU-bound by design);
//! the PHC string stores its parameters, so raising the cost later keeps old hashes
//! verifiable.
//!
//! Memory: a hash needs `memory_kib` (19 MiB by default) of working memory. Allocated per hash
//! and freed, glibc kept those blocks in its arenas: 200 sign-ups left user-svc at ~1 GiB RSS
//! on the blocking pool, still ~280 MiB on two threads of its own. So each hashing thread
//! allocates its working memory once and reuses it for every hash: RSS is bounded by
//! #cpus × `memory_kib` (a stored hash with a larger cost gets a temporary buffer).

use std::sync::{Arc, Mutex};

use anyhow::Context;
use argon2::{
    password_hash::{self, rand_core::OsRng, Output, ParamsString, PasswordHash, Salt, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

type Job = Box<dyn FnOnce(&mut Hasher) + Send>;

/// One hashing thread's state: its reusable working memory.
struct Hasher {
    blocks: Vec<Block>,
}

impl Hasher {
    fn new(params: &Params) -> Self {
        Self {
            blocks: vec![Block::default(); params.block_count()],
        }
    }

    /// A fresh PHC string of `password` under `params`, Argon2id.
    fn hash(&mut self, params: &Params, password: &[u8]) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        let phc = self
            .compute(
                Algorithm::Argon2id,
                Version::V0x13,
                params.clone(),
                salt.as_salt(),
                password,
            )
            .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))?;
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `stored` (its own algorithm, version, cost
    /// and salt); the comparison is constant-time.
    fn verify(&mut self, stored: &str, password: &[u8]) -> anyhow::Result<bool> {
        let parsed =
            PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            anyhow::bail!("stored password hash has no salt or no hash");
        };
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| anyhow::anyhow!("stored hash: {e}"))?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok(match self.compute(algorithm, version, params, salt, password) {
            Ok(computed) => computed.hash.is_some_and(|h| h == expected),
            Err(_) => false,
        })
    }

    fn compute<'a>(
        &mut self,
        algorithm: Algorithm,
        version: Version,
        params: Params,
        salt: Salt<'a>,
        password: &[u8],
    ) -> password_hash::Result<PasswordHash<'a>> {
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buf)?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let count = params.block_count();
        let mut temporary;
        let blocks: &mut [Block] = if count <= self.blocks.len() {
            &mut self.blocks[..count]
        } else {
            temporary = vec![Block::default(); count];
            &mut temporary
        };
        let output = Output::init_with(params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN), |out| {
            Ok(argon.hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)?)
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist, so
    /// that "no such email" and "wrong password" take the same time.
    dummy_hash: String,
    /// The hashing threads' queue (bounded: a burst waits here, not in memory).
    jobs: mpsc::Sender<Job>,
}

impl Passwords {
    /// Checks the parameters (a bad value stops the service at start) and starts one
    /// hashing thread per CPU.
    pub fn new(p: HashingParams) -> anyhow::Result<Self> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid APP_PASSWORD_HASH_* parameters: {e}"))?;
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let dummy_hash = Hasher::new(&params).hash(&params, dummy_password.as_bytes())?;
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let (jobs, queue) = mpsc::channel::<Job>(256);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut hasher = Hasher::new(&params);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(mut q) => q.blocking_recv(),
                            Err(_) => None,
                        };
                        match job {
                            Some(job) => job(&mut hasher),
                            None => return,
                        }
                    }
                })
                .context("cannot start a password hashing thread")?;
        }
        Ok(Self {
            params,
            dummy_hash,
            jobs,
        })
    }

    /// Runs `f` on a hashing thread.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Hasher) -> T + Send + 'static) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |hasher| {
            let _ = tx.send(f(hasher));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| anyhow::anyhow!("password hashing is shutting down"))?;
        rx.await.context("password hashing thread failed")
    }

    /// The PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let params = self.params.clone();
        self.run(move |h| h.hash(&params, password.expose_secret().as_bytes()))
            .await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown account) it does
    /// the same work and answers false.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run(move |h| h.verify(&hash, password.expose_secret().as_bytes()))
            .await??;
        Ok(known && matches)
    }
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
    async fn hashes_of_the_argon2_crate_and_of_other_costs_verify_both_ways() {
        let p = cheap();
        // Made by the crate's own hasher with another cost: verified with its own parameters.
        let params = Params::new(2048, 2, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            b"s3cret pass",
            &salt,
        )
        .unwrap()
        .to_string();
        assert!(p.verify(secret("s3cret pass"), Some(theirs.clone())).await.unwrap());
        assert!(!p.verify(secret("s3cret pasS"), Some(theirs)).await.unwrap());
        // Ours verify with the crate's verifier.
        let ours = p.hash(secret("another one")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2::PasswordVerifier::verify_password(&Argon2::default(), b"another one", &parsed).is_ok());
        // A malformed stored hash is an error, not a match.
        assert!(p.verify(secret("x"), Some("$argon2id$nonsense".into())).await.is_err());
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

    #[tokio::test]
    async fn a_burst_of_hashes_runs_only_on_the_hashing_threads() {
        let p = cheap();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let p = p.clone();
            set.spawn(async move {
                p.run(|_| std::thread::current().name().map(str::to_string))
                    .await
                    .unwrap()
            });
        }
        let names = set.join_all().await;
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let distinct: std::collections::HashSet<_> = names.iter().cloned().collect();
        assert!(names
            .iter()
            .all(|n| n.as_deref().is_some_and(|n| n.starts_with("argon2-"))));
        assert!(distinct.len() <= threads, "{distinct:?}");
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
