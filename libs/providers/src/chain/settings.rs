//! A channel's chain from the environment: `APP_EMAIL_PROVIDERS=sendgrid,smtp` names the
//! members in order; each member reads its own `APP_{PROVIDER}_*` settings, and an optional
//! rate limit `APP_{PROVIDER}_RATE_PER_SEC` (with `_RATE_BURST`, `_DAILY_QUOTA`,
//! `_RATE_MAX_WAIT_MS`) kept in Redis (`APP_REDIS_URL`, `APP_RATE_LIMIT_PREFIX`,
//! `APP_REDIS_TIMEOUT_MS`). The breaker: `APP_{CHANNEL}_BREAKER_*`.

use std::{sync::Arc, time::Duration};

use notify_kit::settings::{self, SecretUrl, SettingsError};
use notify_worker::provider::Provider;

use super::ProviderChain;
use crate::{
    breaker::BreakerSettings,
    gmail::{GmailProvider, GmailSettings},
    mailgun::{MailgunProvider, MailgunSettings},
    rate_limit::{RateLimit, RateLimiter},
    sendgrid::{SendGridProvider, SendGridSettings},
    smtp::{SmtpProvider, SmtpSettings},
};

/// What every chain reads, whatever its channel.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// `APP_{CHANNEL}_BREAKER_*`.
    pub breaker: BreakerSettings,
    /// `APP_REDIS_URL` (default `redis://127.0.0.1:6379`): where the rate-limit buckets live.
    pub redis_url: SecretUrl,
    /// `APP_RATE_LIMIT_PREFIX` (default `notify:ratelimit`): key prefix of the buckets.
    /// Every instance of a worker must use the same prefix to share the buckets.
    pub rate_limit_prefix: String,
    /// `APP_REDIS_TIMEOUT_MS` (default 250): bound on one rate-limiter call.
    pub redis_timeout: Duration,
}

impl ChainSettings {
    /// Reads the breaker of `channel` (`EMAIL`, `PUSH`) and the rate limiter's Redis.
    pub fn from_env(channel: &str) -> Result<Self, SettingsError> {
        let var = |name: &str| format!("APP_{channel}_BREAKER_{name}");
        let d = BreakerSettings::default();
        let breaker = BreakerSettings {
            consecutive_failures: settings::positive(&var("FAILURES"), d.consecutive_failures as usize)? as u32,
            failure_ratio: settings::parse(&var("FAILURE_RATIO"), d.failure_ratio)?,
            window: settings::millis(&var("WINDOW_MS"), d.window.as_millis() as u64)?,
            min_requests: settings::positive(&var("MIN_REQUESTS"), d.min_requests as usize)? as u32,
            cool_down: settings::millis(&var("COOL_DOWN_MS"), d.cool_down.as_millis() as u64)?,
        };
        if !(breaker.failure_ratio > 0.0 && breaker.failure_ratio <= 1.0) {
            return Err(SettingsError::invalid(&var("FAILURE_RATIO"), "must be in (0, 1]"));
        }
        for (name, value) in [("WINDOW_MS", breaker.window), ("COOL_DOWN_MS", breaker.cool_down)] {
            if value.is_zero() {
                return Err(SettingsError::invalid(&var(name), "must be > 0"));
            }
        }
        Ok(Self {
            breaker,
            redis_url: SecretUrl::new(settings::string("APP_REDIS_URL", "redis://127.0.0.1:6379")),
            rate_limit_prefix: settings::string("APP_RATE_LIMIT_PREFIX", "notify:ratelimit"),
            redis_timeout: settings::millis("APP_REDIS_TIMEOUT_MS", 250)?,
        })
    }
}

/// Reads `APP_{PROVIDER}_RATE_*`: `None` when no rate is set.
pub fn rate_limit_from_env(provider: &str) -> Result<Option<RateLimit>, SettingsError> {
    let var = |name: &str| format!("APP_{provider}_{name}");
    let Some(per_second) = settings::optional(&var("RATE_PER_SEC")) else {
        return Ok(None);
    };
    let per_second: f64 = per_second
        .trim()
        .parse()
        .map_err(|e| SettingsError::invalid(&var("RATE_PER_SEC"), e))?;
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(SettingsError::invalid(&var("RATE_PER_SEC"), "must be > 0"));
    }
    let daily_quota = match settings::optional(&var("DAILY_QUOTA")) {
        None => None,
        Some(v) => Some(match v.trim().parse::<u64>() {
            Ok(0) | Err(_) => return Err(SettingsError::invalid(&var("DAILY_QUOTA"), "must be a count > 0")),
            Ok(n) => n,
        }),
    };
    Ok(Some(RateLimit {
        per_second,
        burst: settings::positive(&var("RATE_BURST"), 1)? as u32,
        daily_quota,
        max_wait: settings::millis(&var("RATE_MAX_WAIT_MS"), 1000)?,
    }))
}

/// One email provider's settings.
#[derive(Debug, Clone)]
pub enum EmailProviderSettings {
    Smtp(SmtpSettings),
    SendGrid(SendGridSettings),
    Mailgun(MailgunSettings),
    Gmail(Box<GmailSettings>),
}

impl EmailProviderSettings {
    /// The names `APP_EMAIL_PROVIDERS` accepts.
    pub const NAMES: [&'static str; 4] = ["smtp", "sendgrid", "mailgun", "gmail"];

    /// Reads the settings of the provider called `name`.
    pub fn from_env(name: &str) -> Result<Self, SettingsError> {
        Ok(match name {
            "smtp" => Self::Smtp(SmtpSettings::from_env()?),
            "sendgrid" => Self::SendGrid(SendGridSettings::from_env()?),
            "mailgun" => Self::Mailgun(MailgunSettings::from_env()?),
            "gmail" => Self::Gmail(Box::new(GmailSettings::from_env()?)),
            other => {
                return Err(SettingsError::invalid(
                    "APP_EMAIL_PROVIDERS",
                    format!("unknown provider `{other}` (known: {})", Self::NAMES.join(", ")),
                ))
            }
        })
    }

    /// The provider's name, as in `APP_EMAIL_PROVIDERS`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "smtp",
            Self::SendGrid(_) => "sendgrid",
            Self::Mailgun(_) => "mailgun",
            Self::Gmail(_) => "gmail",
        }
    }

    fn build(&self) -> Result<Arc<dyn Provider>, SettingsError> {
        Ok(match self {
            Self::Smtp(s) => Arc::new(SmtpProvider::new(s)?),
            Self::SendGrid(s) => Arc::new(SendGridProvider::new(s)?),
            Self::Mailgun(s) => Arc::new(MailgunProvider::new(s)?),
            Self::Gmail(s) => Arc::new(GmailProvider::new(s)?),
        })
    }
}

/// The email channel's chain: members in order, each with its optional rate limit.
#[derive(Debug, Clone)]
pub struct EmailChainSettings {
    pub chain: ChainSettings,
    pub providers: Vec<(EmailProviderSettings, Option<RateLimit>)>,
}

impl EmailChainSettings {
    /// Reads `APP_EMAIL_PROVIDERS` (default `smtp`) and the settings of each named provider
    /// (only those: a provider not listed needs no configuration).
    pub fn from_env() -> Result<Self, SettingsError> {
        let names = settings::string("APP_EMAIL_PROVIDERS", "smtp");
        let names: Vec<String> = names
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(SettingsError::invalid("APP_EMAIL_PROVIDERS", "names no provider"));
        }
        let mut providers = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(SettingsError::invalid(
                    "APP_EMAIL_PROVIDERS",
                    format!("`{name}` is listed twice"),
                ));
            }
            let provider = EmailProviderSettings::from_env(name)?;
            let limit = rate_limit_from_env(&name.to_ascii_uppercase())?;
            providers.push((provider, limit));
        }
        Ok(Self {
            chain: ChainSettings::from_env("EMAIL")?,
            providers,
        })
    }
}

/// Builds the email chain: each provider (validated), its breaker, its rate limiter.
pub fn build_email_chain(settings: &EmailChainSettings) -> Result<ProviderChain, SettingsError> {
    let chain = &settings.chain;
    let mut builder = ProviderChain::builder("email").breaker(chain.breaker.clone());
    for (provider, limit) in &settings.providers {
        let limiter = limit
            .clone()
            .map(|limit| {
                RateLimiter::new(
                    &chain.redis_url,
                    &chain.rate_limit_prefix,
                    provider.name(),
                    limit,
                    chain.redis_timeout,
                )
                .map_err(|e| SettingsError::invalid("APP_REDIS_URL", e))
            })
            .transpose()?;
        builder = builder.member(provider.build()?, limiter);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test for every `APP_EMAIL_PROVIDERS` case: the variables are process-wide.
    #[test]
    fn the_provider_list_defaults_to_smtp_and_refuses_unknown_duplicate_or_unconfigured_names() {
        std::env::remove_var("APP_EMAIL_PROVIDERS");
        let default = EmailChainSettings::from_env().unwrap();
        let names: Vec<_> = default.providers.iter().map(|(p, _)| p.name()).collect();
        assert_eq!(names, ["smtp"]);
        assert!(default.providers[0].1.is_none(), "no rate limit unless one is set");
        assert_eq!(default.chain.breaker, BreakerSettings::default());
        let chain = build_email_chain(&default).unwrap();
        assert_eq!(chain.providers(), ["smtp"]);

        for (list, named) in [
            ("smtp,postal", "unknown provider `postal`"),
            ("smtp, SMTP", "`smtp` is listed twice"),
            (" , ", "names no provider"),
        ] {
            std::env::set_var("APP_EMAIL_PROVIDERS", list);
            let err = EmailChainSettings::from_env().unwrap_err().to_string();
            assert!(
                err.contains("APP_EMAIL_PROVIDERS") && err.contains(named),
                "{list}: {err}"
            );
        }

        std::env::set_var("APP_EMAIL_PROVIDERS", "sendgrid,smtp");
        std::env::remove_var("APP_SENDGRID_API_KEY");
        let err = EmailChainSettings::from_env().unwrap_err().to_string();
        assert!(err.contains("APP_SENDGRID_API_KEY"), "{err}");

        std::env::set_var("APP_SENDGRID_API_KEY", "SG.k");
        std::env::set_var("APP_SENDGRID_RATE_PER_SEC", "2.5");
        std::env::set_var("APP_SENDGRID_DAILY_QUOTA", "100000");
        let chain = EmailChainSettings::from_env().unwrap();
        std::env::remove_var("APP_EMAIL_PROVIDERS");
        let limit = chain.providers[0].1.clone().unwrap();
        assert_eq!(
            (limit.per_second, limit.burst, limit.daily_quota),
            (2.5, 1, Some(100_000))
        );
        assert_eq!(build_email_chain(&chain).unwrap().providers(), ["sendgrid", "smtp"]);
    }

    #[test]
    fn a_rate_that_is_not_positive_names_its_variable() {
        std::env::set_var("APP_TESTPROVIDER_RATE_PER_SEC", "0");

        let err = rate_limit_from_env("TESTPROVIDER").unwrap_err().to_string();

        assert!(err.contains("APP_TESTPROVIDER_RATE_PER_SEC"), "{err}");
    }
}
