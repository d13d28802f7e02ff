//! Reading typed settings from the environment. Every service has one `Settings` struct
//! built with these helpers; a missing or malformed variable stops the process at start
//! with a message that names it.

use std::{fmt::Display, str::FromStr};

use secrecy::SecretString;

/// A setting that is missing or malformed, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: String },
    #[error("environment variable {name} has an invalid value: {reason}")]
    Invalid { name: String, reason: String },
}

impl SettingsError {
    pub fn invalid(name: &str, reason: impl Display) -> Self {
        Self::Invalid {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

fn raw(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A string setting with a default.
pub fn string(name: &str, default: &str) -> String {
    raw(name).unwrap_or_else(|| default.to_string())
}

/// An optional string setting.
pub fn optional(name: &str) -> Option<String> {
    raw(name)
}

/// A required string setting.
pub fn required(name: &str) -> Result<String, SettingsError> {
    raw(name).ok_or_else(|| SettingsError::Missing { name: name.to_string() })
}

/// A parsed setting with a default.
pub fn parse<T>(name: &str, default: T) -> Result<T, SettingsError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw(name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<T>().map_err(|e| SettingsError::invalid(name, e)),
    }
}

/// A secret setting (never printed by `Debug`).
pub fn secret(name: &str) -> Option<SecretString> {
    raw(name).map(SecretString::from)
}

/// The smallest secret accepted: 32 bytes (`openssl rand -hex 32` gives 64).
pub const MIN_SECRET_BYTES: usize = 32;

/// The placeholder secrets of `.env.example` (and their kin): a deployment that kept one is
/// refused at start.
const PLACEHOLDERS: &[&str] = &[
    "change-me-postgres-password",
    "change-me-redis-password",
    "change-me-grafana-password",
    "change-me-to-the-output-of-openssl-rand-hex-32-000000",
];

/// Why `value` is not fit to be the secret `name`: a placeholder (a value of `.env.example`,
/// or one that says `change-me`, `changeme`, `placeholder`), shorter than
/// [`MIN_SECRET_BYTES`], or weak (fewer than 8 distinct bytes, such as one repeated
/// character). The message names the variable and never the value.
pub fn check_secret(name: &str, value: &str) -> Result<(), SettingsError> {
    let lower = value.trim().to_ascii_lowercase();
    let placeholder = PLACEHOLDERS.contains(&lower.as_str())
        || ["change-me", "changeme", "change_me", "placeholder"]
            .iter()
            .any(|p| lower.contains(p));
    if placeholder {
        return Err(SettingsError::invalid(
            name,
            "is a placeholder secret (as in .env.example); generate one with `openssl rand -hex 32`",
        ));
    }
    if value.len() < MIN_SECRET_BYTES {
        return Err(SettingsError::invalid(
            name,
            format!("secret is shorter than {MIN_SECRET_BYTES} bytes; generate one with `openssl rand -hex 32`"),
        ));
    }
    let distinct = value.bytes().collect::<std::collections::HashSet<u8>>().len();
    if distinct < 8 {
        return Err(SettingsError::invalid(
            name,
            "secret is too weak (fewer than 8 distinct characters); generate one with `openssl rand -hex 32`",
        ));
    }
    Ok(())
}

/// A secret setting that must pass [`check_secret`] when set.
pub fn strong_secret(name: &str) -> Result<Option<SecretString>, SettingsError> {
    match raw(name) {
        None => Ok(None),
        Some(v) => {
            check_secret(name, &v)?;
            Ok(Some(SecretString::from(v)))
        }
    }
}

/// A connection URL setting with a default; the password it carries, if any, must pass
/// [`check_secret`] (a URL without a password, such as a local trust connection, passes).
pub fn secret_url(name: &str, default: &str) -> Result<SecretUrl, SettingsError> {
    let url = SecretUrl::new(string(name, default));
    if let Some(password) = url.password() {
        check_secret(name, password)?;
    }
    Ok(url)
}

/// A count that must be at least 1 (a pool size, a concurrency).
pub fn positive(name: &str, default: usize) -> Result<usize, SettingsError> {
    match parse(name, default)? {
        0 => Err(SettingsError::invalid(name, "must be > 0")),
        v => Ok(v),
    }
}

/// A duration in milliseconds with a default.
pub fn millis(name: &str, default_ms: u64) -> Result<std::time::Duration, SettingsError> {
    parse(name, default_ms).map(std::time::Duration::from_millis)
}

/// A connection URL that may carry a password: `Debug` and `Display` hide it.
#[derive(Clone)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, password included: pass it to the driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The password of `scheme://user:password@host…`, if there is one (percent-encoded as
    /// written).
    pub fn password(&self) -> Option<&str> {
        let start = self.0.find("://")? + 3;
        let at = start + self.0[start..].rfind('@')?;
        let (_, password) = self.0[start..at].split_once(':')?;
        (!password.is_empty()).then_some(password)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // scheme://user:***@host/db: keep what helps debugging, hide the password.
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let user = self.0[s + 3..at].split(':').next().unwrap_or("");
                write!(f, "{}://{}:***@{}", &self.0[..s], user, &self.0[at + 1..])
            }
            _ => f.write_str(&self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_print_without_their_password() {
        let url = SecretUrl::new("postgres://app:s3cret@db:5432/notify");
        assert_eq!(format!("{url:?}"), "postgres://app:***@db:5432/notify");
        assert!(!url.to_string().contains("s3cret"));
        assert_eq!(url.expose(), "postgres://app:s3cret@db:5432/notify");
    }

    use super::*;

    #[test]
    fn malformed_numbers_name_the_variable() {
        std::env::set_var("KIT_TEST_BAD_NUMBER", "twelve");
        let err = parse::<u32>("KIT_TEST_BAD_NUMBER", 1).unwrap_err();
        assert!(err.to_string().contains("KIT_TEST_BAD_NUMBER"));
    }

    #[test]
    fn placeholder_short_and_weak_secrets_are_refused_naming_the_variable() {
        for (value, why) in [
            ("change-me-to-the-output-of-openssl-rand-hex-32-000000", "placeholder"),
            ("change-me-postgres-password", "placeholder"),
            ("CHANGEME-0123456789abcdef0123456789abcdef", "placeholder"),
            ("0123456789abcdef", "shorter than 32"),
            (&"a".repeat(64), "too weak"),
            (&"ab".repeat(32), "too weak"),
        ] {
            let err = check_secret("APP_SOME_SECRET", value).unwrap_err().to_string();
            assert!(err.contains("APP_SOME_SECRET"), "{err}");
            assert!(err.contains(why), "{value}: {err}");
            assert!(!err.contains(value), "the message never shows the value: {err}");
        }
    }

    #[test]
    fn a_generated_secret_passes() {
        let hex_of_32_random_bytes = "3f9a1c7e5b2d84f6a0c9e1b7d3f5a8c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4";
        assert!(check_secret("APP_SOME_SECRET", hex_of_32_random_bytes).is_ok());
    }

    #[test]
    fn the_password_in_a_url_is_checked_and_a_url_without_one_passes() {
        std::env::set_var(
            "KIT_TEST_URL_PLACEHOLDER",
            "postgres://app:change-me-postgres-password@db/notify",
        );
        let err = secret_url("KIT_TEST_URL_PLACEHOLDER", "").unwrap_err().to_string();
        assert!(
            err.contains("KIT_TEST_URL_PLACEHOLDER") && err.contains("placeholder"),
            "{err}"
        );
        assert!(!err.contains("change-me-postgres-password"), "{err}");
        std::env::set_var("KIT_TEST_URL_SHORT", "redis://:s3cret@cache:6379");
        assert!(secret_url("KIT_TEST_URL_SHORT", "").is_err());
        let url = secret_url("KIT_TEST_URL_UNSET", "postgres://postgres@127.0.0.1:5432/notify").unwrap();
        assert_eq!(url.password(), None);
        assert_eq!(
            SecretUrl::new("redis://:pa:ss@h:1").password(),
            Some("pa:ss"),
            "everything after the user's colon"
        );
    }

    #[test]
    fn blank_values_fall_back_to_the_default() {
        std::env::set_var("KIT_TEST_BLANK", "  ");
        assert_eq!(parse::<u32>("KIT_TEST_BLANK", 7).unwrap(), 7);
        assert!(required("KIT_TEST_BLANK").is_err());
    }
}
