//! Checking that a request's user and template exist, through the same cached lookups the
//! workers use, so bad requests fail fast instead of dead-lettering later.
//!
//! The two callers differ only in what a lookup outage means:
//! - the gateway ([`References::check`]) *accepts* the request: its availability does not
//!   depend on user-svc or template-svc, and the worker checks again at delivery time
//!   (where a missing user is `skipped` and a missing template dead-lettered);
//! - the ingest service ([`References::verify`]) *holds* the record until the services answer:
//!   a Kafka record can wait, and dead-lettering it for an outage that hits every record
//!   would be wrong.

use std::time::Duration;

use notify_kit::{auth::JwtIssuer, FieldError};
use notify_lookup::{
    Cache, LookupError, LookupSettings, RecipientLookup, TemplateLookup, TokenSource, SCOPE_TEMPLATES_READ,
    SCOPE_USERS_READ,
};
use notify_schemas::{ids::UserId, Channel};
use notify_templates::{Language, TemplateCode};

/// The reference checker.
pub struct References {
    users: RecipientLookup,
    templates: TemplateLookup,
}

/// What one lookup found: a definite problem, none, or no answer.
type Found = Result<Option<FieldError>, LookupError>;

impl References {
    /// A checker whose service tokens name `service` (`gateway`, `ingest`) as their subject.
    pub fn new(settings: &LookupSettings, issuer: JwtIssuer, service: &str) -> anyhow::Result<Self> {
        let tokens = TokenSource::issuer(
            issuer,
            service,
            &[SCOPE_USERS_READ, SCOPE_TEMPLATES_READ],
            Duration::from_secs(600),
        );
        let cache = Cache::new(&settings.cache)?;
        Ok(Self {
            users: RecipientLookup::with_timeout(
                &settings.user_svc_url,
                tokens.clone(),
                cache.clone(),
                settings.timeout,
            )?,
            templates: TemplateLookup::with_timeout(&settings.template_svc_url, tokens, cache, settings.timeout)?,
        })
    }

    /// Field errors for references that do not exist; empty when they do or when a service
    /// could not answer (logged): the gateway's rule.
    pub async fn check(&self, user_id: UserId, template_code: &str, channel: Channel) -> Vec<FieldError> {
        let (user, template) = self.look_up(user_id, template_code, channel).await;
        let mut errors = Vec::new();
        for (what, found) in [("user", user), ("template", template)] {
            match found {
                Ok(problem) => errors.extend(problem),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the {what}; accepting (the worker checks again)")
                }
            }
        }
        errors
    }

    /// Field errors for references that do not exist, or the first lookup that could not be
    /// answered (the caller holds the request and asks again later): the ingest service's rule.
    pub async fn verify(
        &self,
        user_id: UserId,
        template_code: &str,
        channel: Channel,
    ) -> Result<Vec<FieldError>, LookupError> {
        let (user, template) = self.look_up(user_id, template_code, channel).await;
        Ok(user?.into_iter().chain(template?).collect())
    }

    async fn look_up(&self, user_id: UserId, template_code: &str, channel: Channel) -> (Found, Found) {
        tokio::join!(
            self.user_problem(user_id),
            self.template_problem(template_code, channel)
        )
    }

    async fn user_problem(&self, user_id: UserId) -> Found {
        Ok(match self.users.get(user_id.as_uuid()).await? {
            Some(_) => None,
            None => Some(FieldError::new("user_id", "no such user")),
        })
    }

    async fn template_problem(&self, template_code: &str, channel: Channel) -> Found {
        let code = match TemplateCode::parse(template_code) {
            Ok(code) => code,
            Err(e) => return Ok(Some(FieldError::new("template_code", e))),
        };
        let lang = Language::parse("en").map_err(|e| LookupError::Invalid {
            service: "template-svc",
            reason: e,
        })?;
        Ok(match self.templates.get(&code, &lang).await? {
            Some(t) if t.channel.as_str() != channel.as_str() => Some(FieldError::new(
                "template_code",
                format!(
                    "template `{template_code}` is a {} template, not {channel}",
                    t.channel.as_str()
                ),
            )),
            Some(_) => None,
            None => Some(FieldError::new("template_code", "no such template")),
        })
    }
}
