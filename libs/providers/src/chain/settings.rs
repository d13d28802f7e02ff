//! A channel's chain from the environment: `APP_EMAIL_PROVIDERS=sendgrid,smtp` or
//! `APP_PUSH_PROVIDERS=fcm,webpush` names the members in order (one generic reader,
//! [`ChannelChainSettings`], over each channel's [`ChannelProvider`]); each member reads its own `APP_{PROVIDER}_*` settings, and an optional
//! rate limit `APP_{PROVIDER}_RATE_PER_SEC` (with `_RATE_BURST`, `_DAILY_QUOTA`,
//! `_RATE_MAX_WAIT_MS`) kept in Redis (`APP_REDIS_URL`, `APP_RATE_LIMIT_PREFIX`,
//! `APP_REDIS_TIMEOUT_MS`). The breaker: `APP_{CHANNEL}_BREAKER_*`.

use std::{sync::Arc, time::Duration};

use notify_kit::settings::{self, SecretUrl, SettingsError};
use notify_worker::provider::Provider;

use super::{accepts_all, Accepts, ProviderChain};
use crate::{
    breaker::BreakerSettings,
    fcm::{FcmProvider, FcmSettings},
    gmail::{GmailProvider, GmailSettings},
    mailgun::{MailgunProvider, MailgunSettings},
    onesignal::{OneSignalProvider, OneSignalSettings},
    push::{HttpPushProvider, PushSettings},
    rate_limit::{RateLimit, RateLimiter},
    sendgrid::{SendGridProvider, SendGridSettings},
    smtp::{SmtpProvider, SmtpSettings},
    webpush::{WebPushProvider, WebPushSettings},
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

/// One provider of a channel, as `APP_{CHANNEL}_PROVIDERS` names it: what the generic
/// chain settings need to read, name and build it.
pub trait ChannelProvider: Sized {
    /// `EMAIL`, `PUSH`: the `APP_{CHANNEL}_*` prefix of the list and the breaker.
    const CHANNEL: &'static str;
    /// `email`, `push`: the chain's metric label.
    const LABEL: &'static str;
    /// The list when `APP_{CHANNEL}_PROVIDERS` is unset.
    const DEFAULT: &'static str;
    /// The names the list accepts.
    const NAMES: &'static [&'static str];

    /// Reads the settings of the provider called `name` (one of [`Self::NAMES`]).
    fn read(name: &str) -> Option<Result<Self, SettingsError>>;
    /// The provider's name, as in the list.
    fn name(&self) -> &'static str;
    /// Builds the provider.
    fn build(&self) -> Result<Arc<dyn Provider>, SettingsError>;
    /// Which targets it takes (default: all).
    fn accepts(&self) -> Accepts {
        accepts_all
    }
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
    /// Reads the settings of the provider called `name`.
    pub fn from_env(name: &str) -> Result<Self, SettingsError> {
        read_named::<Self>(name)
    }
}

impl ChannelProvider for EmailProviderSettings {
    const CHANNEL: &'static str = "EMAIL";
    const LABEL: &'static str = "email";
    const DEFAULT: &'static str = "smtp";
    const NAMES: &'static [&'static str] = &["smtp", "sendgrid", "mailgun", "gmail"];

    fn read(name: &str) -> Option<Result<Self, SettingsError>> {
        Some(match name {
            "smtp" => SmtpSettings::from_env().map(Self::Smtp),
            "sendgrid" => SendGridSettings::from_env().map(Self::SendGrid),
            "mailgun" => MailgunSettings::from_env().map(Self::Mailgun),
            "gmail" => GmailSettings::from_env().map(|s| Self::Gmail(Box::new(s))),
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
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

/// One push provider's settings.
#[derive(Debug, Clone)]
pub enum PushProviderSettings {
    Fcm(Box<FcmSettings>),
    WebPush(WebPushSettings),
    OneSignal(OneSignalSettings),
    /// The FCM-like JSON API with a static key (`APP_PUSH_PROVIDER_URL`): a stand-in for
    /// local runs and older deployments, not a real provider.
    Http(PushSettings),
}

impl ChannelProvider for PushProviderSettings {
    const CHANNEL: &'static str = "PUSH";
    const LABEL: &'static str = "push";
    const DEFAULT: &'static str = "fcm";
    const NAMES: &'static [&'static str] = &["fcm", "webpush", "onesignal", "http"];

    fn read(name: &str) -> Option<Result<Self, SettingsError>> {
        Some(match name {
            "fcm" => FcmSettings::from_env().map(|s| Self::Fcm(Box::new(s))),
            "webpush" => WebPushSettings::from_env().map(Self::WebPush),
            "onesignal" => OneSignalSettings::from_env().map(Self::OneSignal),
            "http" => PushSettings::from_env().map(Self::Http),
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Fcm(_) => "fcm",
            Self::WebPush(_) => "webpush",
            Self::OneSignal(_) => "onesignal",
            Self::Http(_) => "http",
        }
    }

    fn build(&self) -> Result<Arc<dyn Provider>, SettingsError> {
        Ok(match self {
            Self::Fcm(s) => Arc::new(FcmProvider::new(s)?),
            Self::WebPush(s) => Arc::new(WebPushProvider::new(s)?),
            Self::OneSignal(s) => Arc::new(OneSignalProvider::new(s)?),
            Self::Http(s) => Arc::new(HttpPushProvider::new(s)?),
        })
    }

    fn accepts(&self) -> Accepts {
        match self {
            Self::Fcm(_) => FcmProvider::accepts,
            Self::WebPush(_) => WebPushProvider::accepts,
            Self::OneSignal(_) => OneSignalProvider::accepts,
            Self::Http(_) => FcmProvider::accepts,
        }
    }
}

fn read_named<P: ChannelProvider>(name: &str) -> Result<P, SettingsError> {
    P::read(name).unwrap_or_else(|| {
        Err(SettingsError::invalid(
            &format!("APP_{}_PROVIDERS", P::CHANNEL),
            format!("unknown provider `{name}` (known: {})", P::NAMES.join(", ")),
        ))
    })
}

/// A channel's chain: members in order, each with its optional rate limit.
#[derive(Debug, Clone)]
pub struct ChannelChainSettings<P> {
    pub chain: ChainSettings,
    pub providers: Vec<(P, Option<RateLimit>)>,
}

/// The email channel's chain (`APP_EMAIL_PROVIDERS`, default `smtp`).
pub type EmailChainSettings = ChannelChainSettings<EmailProviderSettings>;
/// The push channel's chain (`APP_PUSH_PROVIDERS`, default `fcm`).
pub type PushChainSettings = ChannelChainSettings<PushProviderSettings>;

impl<P: ChannelProvider> ChannelChainSettings<P> {
    /// Reads `APP_{CHANNEL}_PROVIDERS` and the settings of each named provider (only
    /// those: a provider not listed needs no configuration).
    pub fn from_env() -> Result<Self, SettingsError> {
        let var = format!("APP_{}_PROVIDERS", P::CHANNEL);
        let names = settings::string(&var, P::DEFAULT);
        let names: Vec<String> = names
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(SettingsError::invalid(&var, "names no provider"));
        }
        let mut providers = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(SettingsError::invalid(&var, format!("`{name}` is listed twice")));
            }
            let provider = read_named::<P>(name)?;
            let limit = rate_limit_from_env(&name.to_ascii_uppercase())?;
            providers.push((provider, limit));
        }
        Ok(Self {
            chain: ChainSettings::from_env(P::CHANNEL)?,
            providers,
        })
    }
}

/// Builds a channel's chain: each provider (validated), its breaker, its rate limiter, the
/// targets it takes.
pub fn build_chain<P: ChannelProvider>(settings: &ChannelChainSettings<P>) -> Result<ProviderChain, SettingsError> {
    let chain = &settings.chain;
    let mut builder = ProviderChain::builder(P::LABEL).breaker(chain.breaker.clone());
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
        builder = builder.member_for(provider.build()?, limiter, provider.accepts());
    }
    Ok(builder.build())
}

/// Builds the email chain (`APP_EMAIL_PROVIDERS`).
pub fn build_email_chain(settings: &EmailChainSettings) -> Result<ProviderChain, SettingsError> {
    build_chain(settings)
}

/// Builds the push chain (`APP_PUSH_PROVIDERS`): each device goes to the members that take
/// its kind of token (a Web Push subscription to `webpush`, a OneSignal subscription id to
/// `onesignal`, any other token to `fcm`), in the listed order.
pub fn build_push_chain(settings: &PushChainSettings) -> Result<ProviderChain, SettingsError> {
    build_chain(settings)
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

    /// One test for `APP_PUSH_PROVIDERS` (process-wide variables, none shared with the email
    /// test above).
    #[test]
    fn the_push_list_defaults_to_fcm_and_reads_only_the_listed_providers() {
        use base64::Engine as _;
        std::env::remove_var("APP_PUSH_PROVIDERS");
        std::env::remove_var("APP_FCM_SERVICE_ACCOUNT_JSON");
        std::env::remove_var("APP_FCM_SERVICE_ACCOUNT_FILE");
        let err = PushChainSettings::from_env().unwrap_err().to_string();
        assert!(
            err.contains("APP_FCM_SERVICE_ACCOUNT_JSON"),
            "fcm is the default: {err}"
        );

        std::env::set_var("APP_PUSH_PROVIDERS", "webpush,apns");
        let err = PushChainSettings::from_env().unwrap_err().to_string();
        assert!(err.contains("APP_VAPID_PRIVATE_KEY"), "{err}");

        let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
        std::env::set_var(
            "APP_VAPID_PRIVATE_KEY",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_bytes()),
        );
        std::env::set_var("APP_VAPID_SUBJECT", "mailto:ops@notify.test");
        let err = PushChainSettings::from_env().unwrap_err().to_string();
        assert!(
            err.contains("APP_PUSH_PROVIDERS") && err.contains("unknown provider `apns`"),
            "{err}"
        );

        std::env::set_var("APP_PUSH_PROVIDERS", "webpush");
        std::env::set_var("APP_PUSH_BREAKER_FAILURES", "2");
        let settings = PushChainSettings::from_env().unwrap();
        std::env::remove_var("APP_PUSH_PROVIDERS");
        assert_eq!(settings.chain.breaker.consecutive_failures, 2);
        assert_eq!(build_push_chain(&settings).unwrap().providers(), ["webpush"]);
        std::env::set_var("APP_VAPID_SUBJECT", "ops@notify.test");
        std::env::set_var("APP_PUSH_PROVIDERS", "webpush");
        let err = PushChainSettings::from_env().unwrap_err().to_string();
        std::env::remove_var("APP_PUSH_PROVIDERS");
        assert!(err.contains("APP_VAPID_SUBJECT"), "{err}");
    }

    #[test]
    fn a_rate_that_is_not_positive_names_its_variable() {
        std::env::set_var("APP_TESTPROVIDER_RATE_PER_SEC", "0");

        let err = rate_limit_from_env("TESTPROVIDER").unwrap_err().to_string();

        assert!(err.contains("APP_TESTPROVIDER_RATE_PER_SEC"), "{err}");
    }
}
