//! `/api/v1/templates/...`: create templates, publish versions, read with language
//! fallback, list, preview.
//!
//! Reads need `templates:read` or `templates:write`; writes need `templates:write`.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_kit::{auth::Caller, pagination::PageRequest, ApiError, ApiResponse, FieldError};
use notify_templates::{
    render_blocking, required_variables, resolve_language, Channel, Language, RenderError, Rendered, TemplateCode,
    TemplateContent,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::{
    db::templates::{self as db, TemplateRow, VersionRow},
    domain::{NewTemplate, NewVersion, RenderRequest},
    SCOPE_TEMPLATES_READ, SCOPE_TEMPLATES_WRITE,
};

/// Registers the `/api/v1/templates/...` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/templates/", web::post().to(create))
        .route("/api/v1/templates/", web::get().to(list))
        .route("/api/v1/templates/{code}", web::get().to(get))
        .route("/api/v1/templates/{code}/versions", web::post().to(publish))
        .route("/api/v1/templates/{code}/render", web::post().to(preview));
}

/// One version of a template in one language.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub code: String,
    pub channel: String,
    pub name: String,
    pub description: Option<String>,
    pub default_language: String,
    pub active_version: i32,
    /// The version shown.
    pub version: i32,
    /// The language shown: the requested one, its parent, or the default.
    pub language: String,
    /// The language asked for (`?lang=`), if any.
    pub requested_language: Option<String>,
    /// Whether `language` differs from the one asked for.
    pub fallback: bool,
    /// Languages this version has.
    pub available_languages: Vec<String>,
    /// The content in `language`, tagged with its channel.
    #[schema(value_type = Object)]
    pub content: TemplateContent,
    /// Variables the content uses (top-level names).
    pub required_variables: Vec<String>,
    pub version_created_by: String,
    pub version_created_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A template in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateSummary {
    pub code: String,
    pub channel: String,
    pub name: String,
    pub description: Option<String>,
    pub default_language: String,
    pub active_version: i32,
    /// Languages of the active version.
    pub languages: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rendered preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderView {
    pub code: String,
    pub version: i32,
    pub language: String,
    /// The rendered fields, tagged with the channel.
    #[schema(value_type = Object)]
    pub rendered: Rendered,
}

fn require_read(caller: &Caller) -> Result<(), ApiError> {
    if caller.has_scope(SCOPE_TEMPLATES_WRITE) {
        Ok(())
    } else {
        caller.require(SCOPE_TEMPLATES_READ)
    }
}

fn not_found(code: &str) -> ApiError {
    ApiError::NotFound(format!("template `{code}` not found"))
}

/// A path code: malformed ones cannot exist, so they are 404 too.
fn path_code(raw: &str) -> Result<TemplateCode, ApiError> {
    TemplateCode::parse(raw).map_err(|_| not_found(raw))
}

fn reject_unknown_params(query: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    let unknown: Vec<FieldError> = query
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.clone(),
                format!("unknown query parameter; expected {}", allowed.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(unknown))
    }
}

async fn load_template(state: &AppState, code: &TemplateCode) -> Result<TemplateRow, ApiError> {
    db::get(&state.pool, code)
        .await
        .context("failed to read the template")?
        .ok_or_else(|| not_found(code.as_str()))
}

async fn load_version(state: &AppState, code: &TemplateCode, version: i32) -> Result<VersionRow, ApiError> {
    db::get_version(&state.pool, code, version)
        .await
        .context("failed to read the template version")?
        .ok_or_else(|| ApiError::NotFound(format!("template `{code}` has no version {version}")))
}

fn stored_language(raw: &str) -> Result<Language, ApiError> {
    Language::parse(raw).map_err(|e| ApiError::Internal(anyhow::anyhow!("stored language `{raw}`: {e}")))
}

/// The content of `version` in `requested` (with fallback).
fn pick(
    template: &TemplateRow,
    version: &VersionRow,
    requested: Option<&Language>,
) -> Result<(Language, TemplateContent), ApiError> {
    let default = stored_language(&template.default_language)?;
    let available: Vec<Language> = version.contents.iter().map(|(l, _)| l.clone()).collect();
    let language = resolve_language(requested, &available, &default).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "version {} of `{}` lacks its default language {default}",
            version.version,
            template.code
        ))
    })?;
    let content = version
        .contents
        .iter()
        .find(|(l, _)| l == language)
        .map(|(_, c)| c.clone())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("resolved language vanished")))?;
    Ok((language.clone(), content))
}

fn view(template: TemplateRow, version: &VersionRow, requested: Option<&Language>) -> Result<TemplateView, ApiError> {
    let (language, content) = pick(&template, version, requested)?;
    let required = required_variables(&content)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored template does not compile: {e}")))?;
    Ok(TemplateView {
        code: template.code,
        channel: template.channel,
        name: template.name,
        description: template.description,
        default_language: template.default_language,
        active_version: template.active_version,
        version: version.version,
        fallback: requested.is_some_and(|r| *r != language),
        language: language.to_string(),
        requested_language: requested.map(Language::to_string),
        available_languages: version.contents.iter().map(|(l, _)| l.to_string()).collect(),
        content,
        required_variables: required,
        version_created_by: version.created_by.clone(),
        version_created_at: version.created_at,
        created_at: template.created_at,
        updated_at: template.updated_at,
    })
}

fn channel_of(template: &TemplateRow) -> Result<Channel, ApiError> {
    template
        .channel
        .parse()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored channel: {e}")))
}

/// Creates a template; its content becomes version 1, active.
#[utoipa::path(
    post,
    path = "/api/v1/templates/",
    tag = "templates",
    request_body = crate::domain::CreateTemplateBody,
    responses(
        (status = 201, description = "Created", body = TemplateView),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks `templates:write`"),
        (status = 409, description = "The code is taken"),
        (status = 422, description = "Validation failed; `error.details` names each field")
    ),
    security(("bearer" = []))
)]
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_TEMPLATES_WRITE)?;
    let new = NewTemplate::parse(&body).map_err(ApiError::Validation)?;
    let Some(template) = db::insert(&state.pool, &new, &caller.subject)
        .await
        .context("failed to store the template")?
    else {
        return Err(ApiError::Conflict(format!(
            "template `{}` already exists; publish a new version instead",
            new.code
        )));
    };
    state.invalidate(&new.code).await;
    tracing::info!(template_code = %new.code, "template created");
    let version = load_version(&state, &new.code, 1).await?;
    let view = view(template, &version, None)?;
    Ok(HttpResponse::Created().json(ApiResponse::ok(view, "template created")))
}

/// Publishes a new version, which becomes the active one. Earlier versions stay readable.
#[utoipa::path(
    post,
    path = "/api/v1/templates/{code}/versions",
    tag = "templates",
    params(("code" = String, Path, description = "Template code")),
    request_body = crate::domain::NewVersionBody,
    responses(
        (status = 201, description = "Published and active", body = TemplateView),
        (status = 403, description = "Token lacks `templates:write`"),
        (status = 404, description = "No such template"),
        (status = 422, description = "Validation failed")
    ),
    security(("bearer" = []))
)]
pub async fn publish(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE_TEMPLATES_WRITE)?;
    let code = path_code(&path)?;
    let template = load_template(&state, &code).await?;
    let default = stored_language(&template.default_language)?;
    let new = NewVersion::parse(&body, channel_of(&template)?, &default).map_err(ApiError::Validation)?;
    let version = db::publish_version(&state.pool, &code, &new.contents, &caller.subject)
        .await
        .context("failed to publish the version")?
        .ok_or_else(|| not_found(code.as_str()))?;
    state.invalidate(&code).await;
    tracing::info!(template_code = %code, version, "template version published");
    let template = load_template(&state, &code).await?;
    let stored = load_version(&state, &code, version).await?;
    let view = view(template, &stored, None)?;
    Ok(HttpResponse::Created().json(ApiResponse::ok(view, "version published")))
}

/// A template's active version (or `?version=N`) in a language (`?lang=`, with fallback
/// `pt-BR` → `pt` → the default language).
#[utoipa::path(
    get,
    path = "/api/v1/templates/{code}",
    tag = "templates",
    params(
        ("code" = String, Path, description = "Template code"),
        ("version" = Option<i32>, Query, description = "Version (default: the active one)"),
        ("lang" = Option<String>, Query, description = "Wanted language")
    ),
    responses(
        (status = 200, description = "The template; `version` and `language` say what was picked", body = TemplateView),
        (status = 403, description = "Token lacks `templates:read`"),
        (status = 404, description = "No such template or version"),
        (status = 422, description = "Bad `version` or `lang`")
    ),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let code = path_code(&path)?;
    reject_unknown_params(&query, &["version", "lang"])?;
    let mut errors = Vec::new();
    let version = match query.get("version") {
        None => None,
        Some(raw) => match raw.trim().parse::<i32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                errors.push(FieldError::new("version", "must be a positive integer"));
                None
            }
        },
    };
    let requested = match query.get("lang") {
        None => None,
        Some(raw) => Language::parse(raw)
            .map_err(|r| errors.push(FieldError::new("lang", r)))
            .ok(),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let template = load_template(&state, &code).await?;
    let stored = load_version(&state, &code, version.unwrap_or(template.active_version)).await?;
    let view = view(template, &stored, requested.as_ref())?;
    Ok(HttpResponse::Ok().json(ApiResponse::ok(view, "template found")))
}

/// Lists templates by creation (`?channel=email|push` to filter).
#[utoipa::path(
    get,
    path = "/api/v1/templates/",
    tag = "templates",
    params(
        ("page" = Option<u32>, Query, description = "1-based page (default 1)"),
        ("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)"),
        ("channel" = Option<String>, Query, description = "`email` or `push`")
    ),
    responses(
        (status = 200, description = "A page of templates; `meta` has the counts", body = [TemplateSummary]),
        (status = 403, description = "Token lacks `templates:read`"),
        (status = 422, description = "Bad `page`, `limit` or `channel`")
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    reject_unknown_params(&query, &["page", "limit", "channel"])?;
    let page = PageRequest::parse(
        query.get("page").map(String::as_str),
        query.get("limit").map(String::as_str),
    );
    let channel = query.get("channel").map(|c| c.parse::<Channel>());
    let (page, channel) = match (page, channel) {
        (Ok(p), None) => (p, None),
        (Ok(p), Some(Ok(c))) => (p, Some(c)),
        (page, channel) => {
            let mut errors = page.err().unwrap_or_default();
            if let Some(Err(reason)) = channel {
                errors.push(FieldError::new("channel", reason));
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let (rows, total) = db::list(
        &state.pool,
        channel.map(Channel::as_str),
        page.offset(),
        page.limit_i64(),
    )
    .await
    .context("failed to list templates")?;
    let items: Vec<TemplateSummary> = rows
        .into_iter()
        .map(|s| TemplateSummary {
            code: s.template.code,
            channel: s.template.channel,
            name: s.template.name,
            description: s.template.description,
            default_language: s.template.default_language,
            active_version: s.template.active_version,
            languages: s.languages,
            created_at: s.template.created_at,
            updated_at: s.template.updated_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ApiResponse::page(items, "templates", page.meta(total))))
}

/// Renders a preview with the same engine the workers deliver with. A missing variable is
/// a 422 naming it (`variables.<name>`).
#[utoipa::path(
    post,
    path = "/api/v1/templates/{code}/render",
    tag = "templates",
    params(("code" = String, Path, description = "Template code")),
    request_body = crate::domain::RenderBody,
    responses(
        (status = 200, description = "Rendered", body = RenderView),
        (status = 403, description = "Token lacks `templates:read`"),
        (status = 404, description = "No such template or version"),
        (status = 409, description = "The stored version cannot be rendered any more (publish a new one)"),
        (status = 422, description = "Bad body, a variable the template needs is missing, or the output is over the size limit")
    ),
    security(("bearer" = []))
)]
pub async fn preview(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let code = path_code(&path)?;
    let request = RenderRequest::parse(&body).map_err(ApiError::Validation)?;
    let template = load_template(&state, &code).await?;
    let version_number = request.version.unwrap_or(template.active_version);
    let stored = load_version(&state, &code, version_number).await?;
    let (language, content) = pick(&template, &stored, request.language.as_ref())?;
    let rendered = render_blocking(content.clone(), request.variables.clone()).await.map_err(|e| match e {
        RenderError::MissingVariable { name } => ApiError::field(
            format!("variables.{name}"),
            format!("is used by the template (version {version_number}, language {language}) but was not given"),
        ),
        RenderError::Failed { message, .. } => ApiError::field("variables", message),
        // The variables made a field the platforms cannot carry (a `javascript:` link).
        RenderError::Invalid { field, message } => {
            ApiError::field("variables", format!("rendered `{field}` {message}"))
        }
        e @ RenderError::TooLarge { .. } => ApiError::field("variables", e.to_string()),
        // Stored before a rule of the template language refused it (e.g. the render limits):
        // the caller can do nothing with the variables, the template needs a new version.
        RenderError::Syntax { field, message } => ApiError::Conflict(format!(
            "stored template `{code}` v{version_number} {language} cannot be rendered: `{field}`: {message}; publish a new version"
        )),
    })?;
    let view = RenderView {
        code: code.to_string(),
        version: version_number,
        language: language.to_string(),
        rendered,
    };
    Ok(HttpResponse::Ok().json(ApiResponse::ok(view, "rendered")))
}
