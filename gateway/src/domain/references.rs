//! Rejecting notifications for unknown users or templates up front (422), so bad requests
//! fail fast instead of dead-lettering later. Lookups go through the same cached lookups
//! the workers use. When user-svc or template-svc cannot answer, the request is *accepted*:
//! the gateway's availability does not depend on them, and the worker checks again at
//! delivery time (where a missing user is `skipped` and a missing template dead-lettered).

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

impl References {
    pub fn new(settings: &LookupSettings, issuer: JwtIssuer) -> anyhow::Result<Self> {
        let tokens = TokenSource::issuer(
            issuer,
            "gateway",
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
    /// could not answer (logged).
    pub async fn check(&self, user_id: UserId, template_code: &str, channel: Channel) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let (user, template) = tokio::join!(self.users.get(user_id.as_uuid()), async {
            match TemplateCode::parse(template_code) {
                Ok(code) => {
                    let lang = Language::parse("en").map_err(|e| LookupError::Invalid {
                        service: "gateway",
                        reason: e,
                    })?;
                    self.templates.get(&code, &lang).await
                }
                Err(e) => Err(LookupError::Invalid {
                    service: "gateway",
                    reason: e,
                }),
            }
        });
        match user {
            Ok(Some(_)) => {}
            Ok(None) => errors.push(FieldError::new("user_id", "no such user")),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the user; accepting (the worker checks again)")
            }
        }
        match template {
            Ok(Some(t)) if t.channel.as_str() != channel.as_str() => errors.push(FieldError::new(
                "template_code",
                format!(
                    "template `{template_code}` is a {} template, not {channel}",
                    t.channel.as_str()
                ),
            )),
            Ok(Some(_)) => {}
            Ok(None) => errors.push(FieldError::new("template_code", "no such template")),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the template; accepting (the worker checks again)")
            }
        }
        errors
    }
}
