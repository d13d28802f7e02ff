//! Request bodies: deserialized into the types the OpenAPI document shows
//! ([`CreateTemplateBody`], [`NewVersionBody`], [`RenderBody`], and per language
//! [`EmailContentBody`] or [`PushContentBody`]; snake_case only, every unknown field
//! reported), then validated field by field, every problem reported with its JSON path
//! (e.g. `content.fr.subject`).

use std::collections::BTreeMap;

use notify_kit::{validate, FieldError};
use notify_templates::{
    check_syntax, Channel, EmailContent, Language, PushContent, RenderError, TemplateCode, TemplateContent,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Request body of `POST /api/v1/templates/` (snake_case only; unknown fields rejected).
/// Fields are kept as sent and checked by [`NewTemplate::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateBody {
    /// Lowercase letters, digits, `_ . -`; 1 to 64.
    #[schema(value_type = String, example = "welcome_email")]
    pub code: Option<Value>,
    /// `email` or `push`.
    #[schema(value_type = String, example = "email")]
    pub channel: Option<Value>,
    /// Language used when a requested one (and its parent) has no content.
    #[schema(value_type = String, example = "en")]
    pub default_language: Option<Value>,
    /// 1 to 200 characters, one line.
    #[schema(value_type = String)]
    pub name: Option<Value>,
    /// At most 2000 characters.
    #[schema(value_type = Option<String>)]
    pub description: Option<Value>,
    /// Content of version 1 per language tag: an [`EmailContentBody`] for email templates, a
    /// [`PushContentBody`] for push. Fields are minijinja templates.
    #[schema(value_type = HashMap<String, Object>)]
    pub content: Option<Value>,
}

/// Request body of `POST /api/v1/templates/{code}/versions`. Checked by [`NewVersion::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersionBody {
    /// Content per language, as at creation; must include the default language.
    #[schema(value_type = HashMap<String, Object>)]
    pub content: Option<Value>,
}

/// Request body of `POST /api/v1/templates/{code}/render`. Checked by
/// [`RenderRequest::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderBody {
    /// Wanted language (fallback applies); default: the template's default.
    #[schema(value_type = Option<String>)]
    pub language: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// Version to render (default: the active one).
    #[schema(value_type = Option<i32>, minimum = 1)]
    pub version: Option<Value>,
}

/// One language's content of an email template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailContentBody {
    /// One line, at most 998 characters.
    #[schema(value_type = String)]
    pub subject: Option<Value>,
    #[schema(value_type = String)]
    pub text_body: Option<Value>,
    /// Variables are HTML-escaped here.
    #[schema(value_type = String)]
    pub html_body: Option<Value>,
}

/// One language's content of a push template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushContentBody {
    /// One line, at most 200 characters.
    #[schema(value_type = String)]
    pub title: Option<Value>,
    #[schema(value_type = String)]
    pub body: Option<Value>,
    /// A URL (`https://…`, an app link) or a template variable.
    #[schema(value_type = Option<String>)]
    pub image_url: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub link_url: Option<Value>,
    /// Sound to play (`default` or a sound bundled with the app).
    #[schema(value_type = Option<String>)]
    pub sound: Option<Value>,
    /// iOS badge count; must render to a whole number.
    #[schema(value_type = Option<String>)]
    pub badge: Option<Value>,
    /// Notifications with the same key replace each other (1 to 32 of `A-Za-z0-9-_`).
    #[schema(value_type = Option<String>)]
    pub collapse_key: Option<Value>,
    /// Seconds the push service keeps it for an offline device (at most 2419200).
    #[schema(value_type = Option<String>)]
    pub ttl_seconds: Option<Value>,
}
/// Most languages one version may hold.
pub const MAX_LANGUAGES: usize = 50;
const MAX_VARIABLES: usize = 100;

/// A version's content per language (at least one; the template's default among them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents(BTreeMap<Language, TemplateContent>);

impl Contents {
    pub fn iter(&self) -> impl Iterator<Item = (&Language, &TemplateContent)> {
        self.0.iter()
    }

    pub fn languages(&self) -> Vec<Language> {
        self.0.keys().cloned().collect()
    }

    /// Parses `content` of a body for a template of `channel` whose default language is
    /// `default` (which must be present).
    fn parse(
        value: Option<&Value>,
        channel: Channel,
        default: Option<&Language>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            errors.push(FieldError::new("content", "is required"));
            return None;
        };
        let obj = validate::object(value, "content", errors)?;
        if obj.is_empty() || obj.len() > MAX_LANGUAGES {
            errors.push(FieldError::new(
                "content",
                format!("must hold content for 1 to {MAX_LANGUAGES} languages, keyed by language tag"),
            ));
            return None;
        }
        let before = errors.len();
        let mut contents = BTreeMap::new();
        for (key, value) in obj {
            let at = validate::path("content", key);
            let language = match Language::parse(key) {
                Ok(l) => l,
                Err(reason) => {
                    errors.push(FieldError::new(at, reason));
                    continue;
                }
            };
            if contents.contains_key(&language) {
                errors.push(FieldError::new(
                    at,
                    format!("is the same language as another key ({language})"),
                ));
                continue;
            }
            if let Some(content) = parse_content(value, channel, &at, errors) {
                contents.insert(language, content);
            }
        }
        if let Some(default) = default {
            if !obj.is_empty() && errors.len() == before && !contents.contains_key(default) {
                errors.push(FieldError::new(
                    "content",
                    format!("must include the default language `{default}`"),
                ));
            }
        }
        (errors.len() == before).then_some(Self(contents))
    }
}

/// A string field at `path` of at most `max_chars`, not blank: `None` (error recorded) when
/// invalid, `Some(None)` when optional and absent.
fn bounded(
    value: Option<&Value>,
    path: &str,
    required: bool,
    max_chars: usize,
    single_line: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Option<String>> {
    let raw = if required {
        validate::string(value, path, errors).map(Some)
    } else {
        validate::optional_string(value, path, errors).ok()
    }?;
    let Some(raw) = raw else {
        return Some(None);
    };
    let chars = raw.chars().count();
    if raw.trim().is_empty() || chars > max_chars {
        errors.push(FieldError::new(
            path,
            format!("must be 1 to {max_chars} characters, not blank"),
        ));
        return None;
    }
    if single_line && raw.contains(['\r', '\n']) {
        errors.push(FieldError::new(path, "must be a single line"));
        return None;
    }
    Some(Some(raw.to_string()))
}

fn url_like(value: Option<String>, field: &str, at: &str, errors: &mut Vec<FieldError>) -> Option<Option<String>> {
    let Some(url) = value else {
        return Some(None);
    };
    let scheme_ok = url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    });
    if scheme_ok || url.trim_start().starts_with("{{") {
        Some(Some(url))
    } else {
        errors.push(FieldError::new(
            validate::path(at, field),
            "must be a URL (https://..., or an app link such as myapp://...) or a template variable",
        ));
        None
    }
}

/// One language's content for `channel`, fields checked for size and template syntax.
fn parse_content(value: &Value, channel: Channel, at: &str, errors: &mut Vec<FieldError>) -> Option<TemplateContent> {
    let before = errors.len();
    let path = |field| validate::path(at, field);
    let content = match channel {
        Channel::Email => {
            let c = validate::body::<EmailContentBody>(value, at, errors)?;
            let subject = bounded(c.subject.as_ref(), &path("subject"), true, 998, true, errors);
            let text_body = bounded(c.text_body.as_ref(), &path("text_body"), true, 100_000, false, errors);
            let html_body = bounded(c.html_body.as_ref(), &path("html_body"), true, 200_000, false, errors);
            TemplateContent::Email(EmailContent {
                subject: subject.flatten()?,
                text_body: text_body.flatten()?,
                html_body: html_body.flatten()?,
            })
        }
        Channel::Push => {
            let c = validate::body::<PushContentBody>(value, at, errors)?;
            let title = bounded(c.title.as_ref(), &path("title"), true, 200, true, errors);
            let body = bounded(c.body.as_ref(), &path("body"), true, 4000, false, errors);
            let image_url = bounded(c.image_url.as_ref(), &path("image_url"), false, 2048, true, errors)
                .and_then(|v| url_like(v, "image_url", at, errors));
            let link_url = bounded(c.link_url.as_ref(), &path("link_url"), false, 2048, true, errors)
                .and_then(|v| url_like(v, "link_url", at, errors));
            // Template text: what it renders to is checked at render time.
            let sound = bounded(c.sound.as_ref(), &path("sound"), false, 200, true, errors);
            let badge = bounded(c.badge.as_ref(), &path("badge"), false, 200, true, errors);
            let collapse_key = bounded(c.collapse_key.as_ref(), &path("collapse_key"), false, 200, true, errors);
            let ttl_seconds = bounded(c.ttl_seconds.as_ref(), &path("ttl_seconds"), false, 200, true, errors);
            TemplateContent::Push(PushContent {
                title: title.flatten()?,
                body: body.flatten()?,
                image_url: image_url?,
                link_url: link_url?,
                sound: sound?,
                badge: badge?,
                collapse_key: collapse_key?,
                ttl_seconds: ttl_seconds?,
            })
        }
    };
    if errors.len() != before {
        return None;
    }
    let syntax = check_syntax(&content);
    if !syntax.is_empty() {
        for e in syntax {
            if let RenderError::Syntax { field, message } = e {
                errors.push(FieldError::new(
                    validate::path(at, &field),
                    format!("is not a valid template: {message}"),
                ));
            }
        }
        return None;
    }
    Some(content)
}

/// A validated `POST /api/v1/templates/` body.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub code: TemplateCode,
    pub channel: Channel,
    pub default_language: Language,
    pub name: String,
    pub description: Option<String>,
    pub contents: Contents,
}

impl NewTemplate {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<CreateTemplateBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let code = validate::string(body.code.as_ref(), "code", &mut errors).and_then(|s| {
            TemplateCode::parse(s)
                .map_err(|r| errors.push(FieldError::new("code", r)))
                .ok()
        });
        let channel = validate::string(body.channel.as_ref(), "channel", &mut errors).and_then(|s| {
            s.parse::<Channel>()
                .map_err(|r| errors.push(FieldError::new("channel", r)))
                .ok()
        });
        let default_language = validate::string(body.default_language.as_ref(), "default_language", &mut errors)
            .and_then(|s| {
                Language::parse(s)
                    .map_err(|r| errors.push(FieldError::new("default_language", r)))
                    .ok()
            });
        let name = bounded(body.name.as_ref(), "name", true, 200, true, &mut errors).flatten();
        let description = bounded(
            body.description.as_ref(),
            "description",
            false,
            2000,
            false,
            &mut errors,
        );
        let contents = match channel {
            Some(channel) => Contents::parse(body.content.as_ref(), channel, default_language.as_ref(), &mut errors),
            None => None,
        };
        match (code, channel, default_language, name, description, contents) {
            (Some(code), Some(channel), Some(default_language), Some(name), Some(description), Some(contents))
                if errors.is_empty() =>
            {
                Ok(Self {
                    code,
                    channel,
                    default_language,
                    name,
                    description,
                    contents,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A validated `POST /api/v1/templates/{code}/versions` body.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub contents: Contents,
}

impl NewVersion {
    /// Parses a body for a template of `channel` with `default_language`.
    pub fn parse(body: &Value, channel: Channel, default_language: &Language) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<NewVersionBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let contents = Contents::parse(body.content.as_ref(), channel, Some(default_language), &mut errors);
        match contents {
            Some(contents) if errors.is_empty() => Ok(Self { contents }),
            _ => Err(errors),
        }
    }
}

/// A validated `POST /api/v1/templates/{code}/render` body.
#[derive(Debug, Clone, Default)]
pub struct RenderRequest {
    pub language: Option<Language>,
    pub variables: Map<String, Value>,
    pub version: Option<i32>,
}

impl RenderRequest {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<RenderBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let language = validate::optional_string(body.language.as_ref(), "language", &mut errors)
            .ok()
            .flatten()
            .and_then(|s| {
                Language::parse(s)
                    .map_err(|r| errors.push(FieldError::new("language", r)))
                    .ok()
            });
        let variables = match &body.variables {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) if m.len() <= MAX_VARIABLES => m.clone(),
            Some(Value::Object(_)) => {
                errors.push(FieldError::new(
                    "variables",
                    format!("may hold at most {MAX_VARIABLES} keys"),
                ));
                Map::new()
            }
            Some(_) => {
                errors.push(FieldError::new("variables", "must be a JSON object"));
                Map::new()
            }
        };
        let version = match &body.version {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    errors.push(FieldError::new("version", "must be a positive integer"));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self {
                language,
                variables,
                version,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn email_body() -> Value {
        json!({
            "code": "welcome_email",
            "channel": "email",
            "default_language": "en",
            "name": "Welcome",
            "content": {
                "en": {"subject": "Hi {{ name }}", "text_body": "Hello {{ name }}", "html_body": "<p>{{ name }}</p>"},
                "pt_br": {"subject": "Olá {{ name }}", "text_body": "Olá", "html_body": "<p>Olá</p>"}
            }
        })
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        let mut f: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        f.sort_unstable();
        f
    }

    #[test]
    fn a_valid_body_canonicalises_languages() {
        let t = NewTemplate::parse(&email_body()).unwrap();
        let langs: Vec<String> = t.contents.languages().into_iter().map(String::from).collect();
        assert_eq!(langs, ["en", "pt-BR"]);
        assert_eq!(t.channel, Channel::Email);
        assert_eq!(t.description, None);
    }

    #[test]
    fn every_content_problem_is_named_with_its_path() {
        let mut body = email_body();
        body["content"] = json!({
            "en": {"subject": "Hi\nthere", "text_body": "{{ oops", "html_body": "ok", "footer": "x"},
            "english": {"subject": "a", "text_body": "b", "html_body": "c"},
            "fr": {"subject": "a"}
        });
        let errs = NewTemplate::parse(&body).unwrap_err();
        assert_eq!(
            fields(&errs),
            [
                "content.en.footer",
                "content.en.subject",
                "content.english",
                "content.fr.html_body",
                "content.fr.text_body",
            ]
        );
        // Syntax is checked once the fields are well-formed.
        body["content"] = json!({"en": {"subject": "Hi", "text_body": "{{ oops", "html_body": "{% if %}"}});
        let errs = NewTemplate::parse(&body).unwrap_err();
        assert_eq!(fields(&errs), ["content.en.html_body", "content.en.text_body"]);
        assert!(errs[0].reason.starts_with("is not a valid template"));
    }

    #[test]
    fn the_default_language_must_have_content() {
        let mut body = email_body();
        body["default_language"] = json!("fr");
        let errs = NewTemplate::parse(&body).unwrap_err();
        assert_eq!(fields(&errs), ["content"]);
        assert!(errs[0].reason.contains("`fr`"));
    }

    #[test]
    fn duplicate_spellings_of_a_language_are_refused() {
        let mut body = email_body();
        body["content"]["pt-BR"] = body["content"]["pt_br"].clone();
        assert_eq!(fields(&NewTemplate::parse(&body).unwrap_err()).len(), 1);
    }

    #[test]
    fn push_content_checks_its_urls() {
        let body = json!({
            "code": "order_shipped", "channel": "push", "default_language": "en", "name": "Shipped",
            "content": {"en": {"title": "T", "body": "B", "image_url": "not a url", "link_url": "myapp://orders/{{ id }}"}}
        });
        assert_eq!(
            fields(&NewTemplate::parse(&body).unwrap_err()),
            ["content.en.image_url"]
        );
    }

    #[test]
    fn top_level_problems_are_all_reported() {
        let errs = NewTemplate::parse(&json!({
            "code": "Bad Code", "channel": "sms", "default_language": "x", "name": "", "templateCode": 1
        }))
        .unwrap_err();
        assert_eq!(
            fields(&errs),
            ["channel", "code", "default_language", "name", "templateCode"]
        );
    }

    #[test]
    fn render_requests_are_checked() {
        let r = RenderRequest::parse(&json!({"language": "fr", "variables": {"a": 1}, "version": 2})).unwrap();
        assert_eq!(r.version, Some(2));
        let errs =
            RenderRequest::parse(&json!({"language": "?", "variables": [], "version": 0, "vars": {}})).unwrap_err();
        assert_eq!(fields(&errs), ["language", "variables", "vars", "version"]);
    }
}
