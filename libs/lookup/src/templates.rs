//! Templates from template-svc.

use std::time::Duration;

use notify_templates::{Channel, Language, TemplateCode, TemplateContent};
use serde::{Deserialize, Serialize};

use crate::{
    cache::{keys, Cache},
    client::ServiceClient,
    error::LookupError,
    token::TokenSource,
};

const SERVICE: &str = "template-svc";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A template's active version in the language that was picked for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTemplate {
    pub code: TemplateCode,
    pub channel: Channel,
    pub version: u32,
    /// The language of `content`: the one asked for, or its fallback.
    pub language: Language,
    pub content: TemplateContent,
}

/// template-svc's `GET /api/v1/templates/{code}` data (only what delivery needs).
#[derive(Deserialize)]
struct TemplateView {
    code: TemplateCode,
    channel: Channel,
    version: u32,
    language: Language,
    content: TemplateContent,
}

/// Looks templates up in template-svc, through the cache.
pub struct TemplateLookup {
    client: ServiceClient,
    cache: Cache,
}

impl TemplateLookup {
    /// A lookup client for template-svc at `base_url` (e.g. `http://127.0.0.1:8083`); requests
    /// time out after 2 s unless [`with_timeout`](Self::with_timeout) says otherwise. The
    /// token needs the scope `templates:read`.
    pub fn new(base_url: &str, tokens: TokenSource, cache: Cache) -> Result<Self, LookupError> {
        Self::with_timeout(base_url, tokens, cache, DEFAULT_TIMEOUT)
    }

    /// Like [`new`](Self::new) with a per-request timeout.
    pub fn with_timeout(
        base_url: &str,
        tokens: TokenSource,
        cache: Cache,
        timeout: Duration,
    ) -> Result<Self, LookupError> {
        Ok(Self {
            client: ServiceClient::new(SERVICE, base_url, tokens, timeout)?,
            cache,
        })
    }

    /// The active version of `code` in `language` (or its fallback: `pt-BR` → `pt` → the
    /// template's default language); `None` when there is no such template.
    #[tracing::instrument(skip_all, fields(template_code = %code, language = %language))]
    pub async fn get(&self, code: &TemplateCode, language: &Language) -> Result<Option<ResolvedTemplate>, LookupError> {
        let prefix = self.cache.prefix().to_string();
        let generation = self.cache.generation(keys::template_generation(&prefix, code)).await;
        if let Some(g) = generation {
            let key = keys::template_entry(&prefix, code, g.0, language);
            if let Some(hit) = self.cache.get_json::<ResolvedTemplate>(key).await {
                metrics::counter!("directory_lookups_total", "kind" => "template", "result" => "hit").increment(1);
                return Ok(Some(hit));
            }
        }
        metrics::counter!("directory_lookups_total", "kind" => "template", "result" => "miss").increment(1);
        let Some(view) = self
            .client
            .get::<TemplateView>(&format!("/api/v1/templates/{code}?lang={language}"))
            .await?
        else {
            return Ok(None);
        };
        if &view.code != code || view.content.channel() != view.channel {
            return Err(LookupError::Invalid {
                service: SERVICE,
                reason: format!(
                    "asked for `{code}`, got `{}` ({} content for a {} template)",
                    view.code,
                    view.content.channel(),
                    view.channel
                ),
            });
        }
        let resolved = ResolvedTemplate {
            code: view.code,
            channel: view.channel,
            version: view.version,
            language: view.language,
            content: view.content,
        };
        if let Some(g) = generation {
            self.cache
                .put_json(keys::template_entry(&prefix, code, g.0, language), &resolved)
                .await;
        }
        Ok(Some(resolved))
    }

    /// Drops every cached language of `code` (see [`Cache::invalidate_template`]).
    pub async fn invalidate_template(&self, code: &TemplateCode) -> Result<(), crate::CacheError> {
        self.cache.invalidate_template(code).await
    }
}
