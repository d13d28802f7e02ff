//! JWT bearer authentication with scopes.
//!
//! Tokens are verified with one pinned algorithm (HS256 with a shared secret, or RS256 with
//! a public key), so `alg: none` and algorithm confusion (an HS256 token signed with the
//! RS256 public key) are rejected. `exp`, `nbf`, `iss` and `aud` are checked. Scopes are the
//! OAuth2 space-separated `scope` claim: service credentials carry `notifications:send`,
//! end-user login tokens do not.

use std::{collections::HashSet, future::Future, pin::Pin, sync::Arc};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{error::ApiError, settings, settings::SettingsError};

/// Scope that allows sending notifications.
pub const SCOPE_SEND: &str = "notifications:send";
/// Scope that allows reading any notification's status.
pub const SCOPE_READ: &str = "notifications:read";
/// Scope that allows posting delivery reports.
pub const SCOPE_STATUS_WRITE: &str = "notifications:status";
/// Scope of the push worker at user-svc: mark devices used and remove the ones a provider
/// says are gone (nothing else about users).
pub const SCOPE_USERS_DEVICES_WRITE: &str = "users:devices:write";
/// Scope that allows adding entries to the suppression list (user-svc): the gateway's
/// provider webhooks (bounces, complaints, unsubscribes).
pub const SCOPE_SUPPRESSIONS_WRITE: &str = "suppressions:write";
/// Scope that allows reading the suppression list (user-svc).
pub const SCOPE_SUPPRESSIONS_READ: &str = "suppressions:read";

/// Who signed tokens and how they are checked.
#[derive(Clone)]
pub enum KeyMaterial {
    /// Shared secret (HS256).
    Hs256(SecretString),
    /// RS256 public key (PEM) to verify; the private key (PEM) only where tokens are issued.
    Rs256 {
        public_pem: String,
        private_pem: Option<SecretString>,
    },
}

/// JWT settings, from `APP_JWT_*`.
#[derive(Clone)]
pub struct AuthSettings {
    pub keys: KeyMaterial,
    /// Expected `iss` (`APP_JWT_ISSUER`, default `notify-platform`).
    pub issuer: String,
    /// Expected `aud` (`APP_JWT_AUDIENCE`, default `notify-api`).
    pub audience: String,
    /// Clock skew tolerated on `exp`/`nbf`, seconds (`APP_JWT_LEEWAY_SECS`, default 5).
    pub leeway_secs: u64,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self.keys {
            KeyMaterial::Hs256(_) => "HS256",
            KeyMaterial::Rs256 { .. } => "RS256",
        };
        f.debug_struct("AuthSettings")
            .field("algorithm", &alg)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl AuthSettings {
    /// Reads `APP_JWT_HS256_SECRET`, or `APP_JWT_RS256_PUBLIC_KEY` / `APP_JWT_RS256_PUBLIC_KEY_FILE`
    /// (and optionally `APP_JWT_RS256_PRIVATE_KEY(_FILE)` where tokens are issued).
    pub fn from_env() -> Result<Self, SettingsError> {
        let keys = if let Some(secret) = settings::strong_secret("APP_JWT_HS256_SECRET")? {
            KeyMaterial::Hs256(secret)
        } else {
            let public_pem = pem_from_env("APP_JWT_RS256_PUBLIC_KEY")?.ok_or_else(|| SettingsError::Missing {
                name: "APP_JWT_HS256_SECRET or APP_JWT_RS256_PUBLIC_KEY".into(),
            })?;
            DecodingKey::from_rsa_pem(public_pem.as_bytes())
                .map_err(|e| SettingsError::invalid("APP_JWT_RS256_PUBLIC_KEY", e))?;
            let private_pem = pem_from_env("APP_JWT_RS256_PRIVATE_KEY")?.map(SecretString::from);
            KeyMaterial::Rs256 {
                public_pem,
                private_pem,
            }
        };
        Ok(Self {
            keys,
            issuer: settings::string("APP_JWT_ISSUER", "notify-platform"),
            audience: settings::string("APP_JWT_AUDIENCE", "notify-api"),
            leeway_secs: settings::parse("APP_JWT_LEEWAY_SECS", 5)?,
        })
    }

    /// HS256 settings with the default issuer and audience (tests, local runs).
    pub fn hs256(secret: &str) -> Self {
        Self {
            keys: KeyMaterial::Hs256(SecretString::from(secret.to_string())),
            issuer: "notify-platform".into(),
            audience: "notify-api".into(),
            leeway_secs: 5,
        }
    }
}

fn pem_from_env(base: &str) -> Result<Option<String>, SettingsError> {
    if let Some(pem) = settings::optional(base) {
        return Ok(Some(pem.replace("\\n", "\n")));
    }
    let file_var = format!("{base}_FILE");
    match settings::optional(&file_var) {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| SettingsError::invalid(&file_var, format!("cannot read {path}: {e}"))),
    }
}

/// Whether a token belongs to a service or to an end user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    Service,
    User,
}

/// The claims this platform issues and verifies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    pub token_use: TokenUse,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `sub`: the service name or the user id.
    pub subject: String,
    pub token_use: TokenUse,
    scopes: HashSet<String>,
}

impl Caller {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this token lacks the scope `{scope}`")))
        }
    }
}

/// Verifies bearer tokens. Cheap to clone; put it in app data.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    key: DecodingKey,
    validation: Validation,
    /// `validation` without the clock checks, for [`JwtVerifier::verify_at`].
    untimed: Validation,
    leeway: i64,
}

impl JwtVerifier {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let (alg, key) = match &settings.keys {
            KeyMaterial::Hs256(secret) => (
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            ),
            KeyMaterial::Rs256 { public_pem, .. } => {
                (Algorithm::RS256, DecodingKey::from_rsa_pem(public_pem.as_bytes())?)
            }
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut untimed = validation.clone();
        untimed.validate_exp = false;
        untimed.validate_nbf = false;
        Ok(Self {
            inner: Arc::new(VerifierInner {
                key,
                validation,
                untimed,
                leeway: i64::try_from(settings.leeway_secs).unwrap_or(0),
            }),
        })
    }

    /// Verifies a token as of `at` (Unix seconds) instead of now: for a credential that came
    /// with a record written at `at` (a producer token on a Kafka record), which must have been
    /// valid when it was written, however long the record then waited to be read.
    pub fn verify_at(&self, token: &str, at: i64) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.key, &self.inner.untimed)
            .map_err(|e| ApiError::Unauthorized(reason_of(&e).to_string()))?;
        let claims = data.claims;
        if claims.exp + self.inner.leeway < at {
            return Err(ApiError::Unauthorized(
                "token had expired when the record was written".into(),
            ));
        }
        if claims.nbf.is_some_and(|nbf| nbf - self.inner.leeway > at) {
            return Err(ApiError::Unauthorized(
                "token was not valid yet (nbf) when the record was written".into(),
            ));
        }
        Ok(Caller {
            subject: claims.sub,
            token_use: claims.token_use,
            scopes: claims.scope.split_whitespace().map(str::to_string).collect(),
        })
    }

    /// Verifies a raw token and returns the caller it names.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.key, &self.inner.validation)
            .map_err(|e| ApiError::Unauthorized(reason_of(&e).to_string()))?;
        let claims = data.claims;
        Ok(Caller {
            subject: claims.sub,
            token_use: claims.token_use,
            scopes: claims.scope.split_whitespace().map(str::to_string).collect(),
        })
    }
}

/// Why a token was refused, in words safe to show the caller.
fn reason_of(e: &jsonwebtoken::errors::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ExpiredSignature => "token has expired",
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "token issuer is not accepted",
        ErrorKind::InvalidAudience => "token audience is not accepted",
        ErrorKind::InvalidSignature => "token signature is invalid",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "token algorithm is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        _ => "token is malformed",
    }
}

/// Issues tokens in the format [`JwtVerifier`] accepts (user-svc, local tooling, tests).
#[derive(Clone)]
pub struct JwtIssuer {
    key: Arc<EncodingKey>,
    alg: Algorithm,
    issuer: String,
    audience: String,
}

impl JwtIssuer {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let (alg, key) = match &settings.keys {
            KeyMaterial::Hs256(secret) => (
                Algorithm::HS256,
                EncodingKey::from_secret(secret.expose_secret().as_bytes()),
            ),
            KeyMaterial::Rs256 { private_pem, .. } => {
                let pem = private_pem
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("APP_JWT_RS256_PRIVATE_KEY is required to issue tokens"))?;
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes())?,
                )
            }
        };
        Ok(Self {
            key: Arc::new(key),
            alg,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// Claims for `subject` valid for `ttl` from now.
    pub fn claims(&self, subject: &str, token_use: TokenUse, scopes: &[&str], ttl: std::time::Duration) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: subject.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            nbf: Some(now),
            iat: Some(now),
            scope: scopes.join(" "),
            token_use,
        }
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(&Header::new(self.alg), claims, &self.key)?)
    }

    /// Issues a token for `subject` with `scopes`, valid for `ttl`.
    pub fn issue(
        &self,
        subject: &str,
        token_use: TokenUse,
        scopes: &[&str],
        ttl: std::time::Duration,
    ) -> anyhow::Result<String> {
        self.sign(&self.claims(subject, token_use, scopes, ttl))
    }
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("malformed Authorization header".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("Authorization must be `Bearer <token>`".into()));
    }
    Ok(token.trim())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<JwtVerifier>>() {
            None => Err(ApiError::Internal(anyhow::anyhow!("JwtVerifier missing from app data"))),
            Some(verifier) => bearer(req).and_then(|token| verifier.verify(token)),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn encode_url(input: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input)
    }

    fn pair() -> (JwtIssuer, JwtVerifier) {
        let s = AuthSettings::hs256(SECRET);
        (JwtIssuer::new(&s).unwrap(), JwtVerifier::new(&s).unwrap())
    }

    #[test]
    fn a_valid_service_token_carries_its_scopes() {
        let (issuer, verifier) = pair();
        let token = issuer
            .issue(
                "billing",
                TokenUse::Service,
                &[SCOPE_SEND],
                std::time::Duration::from_secs(60),
            )
            .unwrap();
        let caller = verifier.verify(&token).unwrap();
        assert_eq!(caller.subject, "billing");
        assert!(caller.require(SCOPE_SEND).is_ok());
        assert!(matches!(caller.require(SCOPE_READ), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let (issuer, verifier) = pair();
        let mut claims = issuer.claims("svc", TokenUse::Service, &[], std::time::Duration::ZERO);
        claims.exp -= 3600;
        let token = issuer.sign(&claims).unwrap();
        let err = verifier.verify(&token).unwrap_err();
        assert_eq!(err.to_string(), "token has expired");
    }

    #[test]
    fn a_token_from_another_issuer_or_audience_is_rejected() {
        let (issuer, verifier) = pair();
        let mut claims = issuer.claims("svc", TokenUse::Service, &[], std::time::Duration::from_secs(60));
        claims.iss = "someone-else".into();
        assert!(verifier.verify(&issuer.sign(&claims).unwrap()).is_err());
        let mut claims = issuer.claims("svc", TokenUse::Service, &[], std::time::Duration::from_secs(60));
        claims.aud = "other-api".into();
        assert!(verifier.verify(&issuer.sign(&claims).unwrap()).is_err());
    }

    #[test]
    fn a_token_is_judged_at_the_time_given_not_now() {
        let (issuer, verifier) = pair();
        let mut claims = issuer.claims("svc", TokenUse::Service, &[], std::time::Duration::from_secs(60));
        claims.exp -= 3600;
        claims.nbf = claims.nbf.map(|n| n - 3700);
        let token = issuer.sign(&claims).unwrap();
        assert!(verifier.verify(&token).is_err(), "expired now");
        assert_eq!(verifier.verify_at(&token, claims.exp - 10).unwrap().subject, "svc");
        assert_eq!(
            verifier.verify_at(&token, claims.exp + 60).unwrap_err().to_string(),
            "token had expired when the record was written"
        );
        let forged = JwtIssuer::new(&AuthSettings::hs256("another-secret-another-secret-1234")).unwrap();
        let other = forged.sign(&claims).unwrap();
        assert!(
            verifier.verify_at(&other, claims.exp - 10).is_err(),
            "the signature is still checked"
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let (issuer, verifier) = pair();
        let claims = issuer.claims(
            "svc",
            TokenUse::Service,
            &[SCOPE_SEND],
            std::time::Duration::from_secs(60),
        );
        let header = encode_url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = encode_url(&serde_json::to_vec(&claims).unwrap());
        let token = format!("{header}.{payload}.");
        assert!(matches!(verifier.verify(&token), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let (_, verifier) = pair();
        let other = JwtIssuer::new(&AuthSettings::hs256("another-secret-another-secret-1234")).unwrap();
        let token = other
            .issue(
                "svc",
                TokenUse::Service,
                &[SCOPE_SEND],
                std::time::Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(
            verifier.verify(&token).unwrap_err().to_string(),
            "token signature is invalid"
        );
    }
}
