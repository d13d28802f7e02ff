//! OAuth2 access tokens for Google APIs from a service-account key (the Gmail API with
//! domain-wide delegation; FCM): an RS256 JWT assertion signed with the key, exchanged at
//! the key's `token_uri` (RFC 7523 `jwt-bearer` grant), cached until shortly before it
//! expires. Concurrent callers share one refresh.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notify_kit::settings::{self, SettingsError};
use notify_worker::provider::ProviderFailure;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    breaker::{Clock, SystemClock},
    http,
};

/// The grant type of a JWT assertion (RFC 7523 §2.1).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of an assertion; Google accepts at most one hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// A cached token is refreshed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The fields of a service-account JSON key that signing needs. `Debug` hides the key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key: SecretString,
    /// Where assertions are exchanged (`https://oauth2.googleapis.com/token`).
    pub token_uri: String,
    /// Goes in the assertion's `kid` header.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// The Google Cloud project of the key (FCM's default project).
    #[serde(default)]
    pub project_id: Option<String>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// The key from `json_var` (the JSON itself, secret) or else `file_var` (a path to it);
    /// one of them is required. Errors name the variable.
    pub fn from_env(json_var: &str, file_var: &str) -> Result<Self, SettingsError> {
        if let Some(json) = settings::secret(json_var) {
            return Self::parse(json.expose_secret(), json_var);
        }
        let Some(path) = settings::optional(file_var) else {
            return Err(SettingsError::Missing {
                name: format!("{json_var} or {file_var}"),
            });
        };
        let json = std::fs::read_to_string(&path)
            .map_err(|e| SettingsError::invalid(file_var, format!("cannot read {path}: {e}")))?;
        Self::parse(&json, file_var)
    }

    /// Parses and checks a JSON key; `var` names its source in errors (never its content).
    pub fn parse(json: &str, var: &str) -> Result<Self, SettingsError> {
        let key: Self = serde_json::from_str(json).map_err(|e| {
            SettingsError::invalid(var, format!("not a service-account JSON key: {}", json_error_kind(&e)))
        })?;
        if !key.client_email.contains('@') {
            return Err(SettingsError::invalid(var, "client_email is not an address"));
        }
        if !(key.token_uri.starts_with("https://") || key.token_uri.starts_with("http://")) {
            return Err(SettingsError::invalid(var, "token_uri is not an http(s) URL"));
        }
        EncodingKey::from_rsa_pem(key.private_key.expose_secret().as_bytes())
            .map_err(|e| SettingsError::invalid(var, format!("private_key is not an RSA PEM key: {e}")))?;
        Ok(key)
    }
}

/// What is wrong with a JSON document, without the input `serde_json` would quote (it could
/// hold the key).
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

/// The claims of the assertion (Google's service-account flow).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssertionClaims {
    pub iss: String,
    /// The user to act for (domain-wide delegation); absent for FCM.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub: Option<String>,
    pub scope: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// Access tokens for one (key, scope, subject). Share it (`Arc`).
pub struct TokenSource {
    key: ServiceAccountKey,
    encoding_key: EncodingKey,
    scope: String,
    subject: Option<String>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<Cached>>,
}

impl TokenSource {
    /// A source of tokens for `scope` (space-separated), acting as `subject` when set
    /// (Gmail: the sending user, with domain-wide delegation).
    pub fn new(
        key: ServiceAccountKey,
        scope: &str,
        subject: Option<String>,
        timeout: Duration,
    ) -> Result<Self, SettingsError> {
        Self::with_clock(key, scope, subject, timeout, Arc::new(SystemClock))
    }

    /// [`TokenSource::new`] with the clock that decides when a cached token is stale.
    pub fn with_clock(
        key: ServiceAccountKey,
        scope: &str,
        subject: Option<String>,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SettingsError> {
        let encoding_key = EncodingKey::from_rsa_pem(key.private_key.expose_secret().as_bytes())
            .map_err(|e| SettingsError::invalid("service-account key", format!("private_key: {e}")))?;
        Ok(Self {
            key,
            encoding_key,
            scope: scope.to_string(),
            subject,
            client: http::client(timeout, "service-account token")?,
            clock,
            cached: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one (one refresh at a time; callers
    /// that arrive meanwhile wait for it and share it).
    pub async fn access_token(&self) -> Result<SecretString, ProviderFailure> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if self.clock.now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fetched_at = self.clock.now();
        let (token, lifetime) = self.fetch().await?;
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: fetched_at + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(token)
    }

    /// Forgets the cached token (the API refused it): the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The signed assertion for now.
    pub fn assertion(&self) -> Result<String, ProviderFailure> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AssertionClaims {
            iss: self.key.client_email.clone(),
            sub: self.subject.clone(),
            scope: self.scope.clone(),
            aud: self.key.token_uri.clone(),
            iat,
            exp: iat + ASSERTION_LIFETIME,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key.private_key_id);
        jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|e| ProviderFailure::alert(format!("cannot sign the service-account assertion: {e}")))
    }

    async fn fetch(&self) -> Result<(SecretString, Duration), ProviderFailure> {
        let assertion = self.assertion()?;
        let response = self
            .client
            .post(&self.key.token_uri)
            .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| http::request_failed("the OAuth token endpoint", e))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let what = format!(
                "the OAuth token endpoint answered {}: {}",
                status.as_u16(),
                oauth_error(&body)
            );
            // 400 invalid_grant / unauthorized_client, 401: the key, its delegation or the
            // clock is wrong; an operator must act.
            return Err(match status.as_u16() {
                400 | 401 | 403 => ProviderFailure::alert(what),
                _ => ProviderFailure::transient(what).with_retry_after(retry_after),
            });
        }
        let parsed: TokenResponse = serde_json::from_str(&body)
            .map_err(|_| ProviderFailure::transient("the OAuth token endpoint answered without an access_token"))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(ASSERTION_LIFETIME));
        Ok((parsed.access_token, lifetime))
    }
}

/// `error: error_description` of an OAuth error body, else its start.
fn oauth_error(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match (field("error"), field("error_description")) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e,
        _ => body.chars().take(200).collect(),
    }
}
