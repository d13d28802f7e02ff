//! Templates, versions and contents.

use chrono::{DateTime, Utc};
use notify_templates::{Language, TemplateCode, TemplateContent};
use sqlx::{types::Json, PgPool, Postgres, Transaction};

use crate::domain::{Contents, NewTemplate};

/// A template's header row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub code: String,
    pub channel: String,
    pub name: String,
    pub description: Option<String>,
    pub default_language: String,
    pub active_version: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One published version with its content per language.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub version: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub contents: Vec<(Language, TemplateContent)>,
}

/// A template in a list: its header and the languages of its active version.
#[derive(Debug, Clone)]
pub struct Summary {
    pub template: TemplateRow,
    pub languages: Vec<String>,
}

const TEMPLATE_COLUMNS: &str =
    "code, channel, name, description, default_language, active_version, created_by, created_at, updated_at";

async fn insert_version(
    tx: &mut Transaction<'_, Postgres>,
    code: &TemplateCode,
    version: i32,
    contents: &Contents,
    created_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO template_versions (code, version, created_by) VALUES ($1, $2, $3)")
        .bind(code.as_str())
        .bind(version)
        .bind(created_by)
        .execute(&mut **tx)
        .await?;
    for (language, content) in contents.iter() {
        sqlx::query("INSERT INTO template_contents (code, version, language, content) VALUES ($1, $2, $3, $4)")
            .bind(code.as_str())
            .bind(version)
            .bind(language.as_str())
            .bind(Json(content))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Creates a template with version 1 active; `None` when the code is taken.
#[tracing::instrument(skip_all, fields(template_code = %t.code))]
pub async fn insert(pool: &PgPool, t: &NewTemplate, created_by: &str) -> Result<Option<TemplateRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query_as::<_, TemplateRow>(&format!(
        "INSERT INTO templates (code, channel, name, description, default_language, active_version, created_by)
         VALUES ($1, $2, $3, $4, $5, 1, $6)
         ON CONFLICT (code) DO NOTHING
         RETURNING {TEMPLATE_COLUMNS}"
    ))
    .bind(t.code.as_str())
    .bind(t.channel.as_str())
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.default_language.as_str())
    .bind(created_by)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    insert_version(&mut tx, &t.code, 1, &t.contents, created_by).await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// Publishes the next version of `code` and makes it active; `None` when there is no such
/// template. Concurrent publications of one code are serialised by the row lock.
#[tracing::instrument(skip_all, fields(template_code = %code))]
pub async fn publish_version(
    pool: &PgPool,
    code: &TemplateCode,
    contents: &Contents,
    created_by: &str,
) -> Result<Option<i32>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: Option<String> = sqlx::query_scalar("SELECT code FROM templates WHERE code = $1 FOR UPDATE")
        .bind(code.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    let next: i32 = sqlx::query_scalar("SELECT COALESCE(max(version), 0) + 1 FROM template_versions WHERE code = $1")
        .bind(code.as_str())
        .fetch_one(&mut *tx)
        .await?;
    insert_version(&mut tx, code, next, contents, created_by).await?;
    sqlx::query("UPDATE templates SET active_version = $2, updated_at = now() WHERE code = $1")
        .bind(code.as_str())
        .bind(next)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(next))
}

/// A template's header.
pub async fn get(pool: &PgPool, code: &TemplateCode) -> Result<Option<TemplateRow>, sqlx::Error> {
    sqlx::query_as::<_, TemplateRow>(&format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE code = $1"))
        .bind(code.as_str())
        .fetch_optional(pool)
        .await
}

/// One version of `code` with all its languages.
pub async fn get_version(pool: &PgPool, code: &TemplateCode, version: i32) -> Result<Option<VersionRow>, sqlx::Error> {
    let header = sqlx::query_as::<_, (String, DateTime<Utc>)>(
        "SELECT created_by, created_at FROM template_versions WHERE code = $1 AND version = $2",
    )
    .bind(code.as_str())
    .bind(version)
    .fetch_optional(pool)
    .await?;
    let Some((created_by, created_at)) = header else {
        return Ok(None);
    };
    let rows = sqlx::query_as::<_, (String, Json<TemplateContent>)>(
        "SELECT language, content FROM template_contents
         WHERE code = $1 AND version = $2 ORDER BY language",
    )
    .bind(code.as_str())
    .bind(version)
    .fetch_all(pool)
    .await?;
    let mut contents = Vec::with_capacity(rows.len());
    for (language, Json(content)) in rows {
        let language = Language::parse(&language)
            .map_err(|e| sqlx::Error::Decode(format!("stored language `{language}`: {e}").into()))?;
        contents.push((language, content));
    }
    Ok(Some(VersionRow {
        version,
        created_by,
        created_at,
        contents,
    }))
}

/// One page of templates by creation, optionally of one channel, and the total count.
pub async fn list(
    pool: &PgPool,
    channel: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Summary>, u64), sqlx::Error> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM templates WHERE $1::text IS NULL OR channel = $1")
        .bind(channel)
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query_as::<_, TemplateRow>(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates
         WHERE $1::text IS NULL OR channel = $1
         ORDER BY created_at, code OFFSET $2 LIMIT $3"
    ))
    .bind(channel)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let codes: Vec<&str> = rows.iter().map(|r| r.code.as_str()).collect();
    let languages = sqlx::query_as::<_, (String, String)>(
        "SELECT c.code, c.language FROM template_contents c
         JOIN templates t ON t.code = c.code AND t.active_version = c.version
         WHERE c.code = ANY($1) ORDER BY c.language",
    )
    .bind(&codes)
    .fetch_all(pool)
    .await?;
    let summaries = rows
        .into_iter()
        .map(|template| {
            let langs = languages
                .iter()
                .filter(|(c, _)| *c == template.code)
                .map(|(_, l)| l.clone())
                .collect();
            Summary {
                template,
                languages: langs,
            }
        })
        .collect();
    Ok((summaries, u64::try_from(total).unwrap_or(0)))
}
