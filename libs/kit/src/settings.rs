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
    fn blank_values_fall_back_to_the_default() {
        std::env::set_var("KIT_TEST_BLANK", "  ");
        assert_eq!(parse::<u32>("KIT_TEST_BLANK", 7).unwrap(), 7);
        assert!(required("KIT_TEST_BLANK").is_err());
    }
}
