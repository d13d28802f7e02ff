//! `/api/v1/users/...`: create, list, read, change and delete users and their preferences
//! (their devices: [`super::devices`]).
//!
//! Who may do what: a service token with `users:read` reads any user, with `users:write`
//! reads and changes any user; an end-user token (`token_use = user`, scope `users:self`)
//! reads and changes only its own record (any other id answers 404, as if it did not
//! exist). Creating needs `users:write` unless `APP_OPEN_REGISTRATION` is on.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_kit::{
    auth::{Caller, TokenUse},
    pagination::PageRequest,
    ApiError, ApiResponse, FieldError,
};
use notify_schemas::ids::UserId;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    devices::{actor, token_taken, PushTokenView},
    AppState,
};
use crate::{
    db::users::{self as db, User, Written},
    domain::{NewUser, PreferencesInput, UserPatch},
    SCOPE_USERS_READ, SCOPE_USERS_SELF, SCOPE_USERS_WRITE,
};

/// Registers the `/api/v1/users/...` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/users/", web::post().to(create))
        .route("/api/v1/users/", web::get().to(list))
        .route("/api/v1/users/{id}", web::get().to(get))
        .route("/api/v1/users/{id}", web::patch().to(patch))
        .route("/api/v1/users/{id}", web::delete().to(delete))
        .route("/api/v1/users/{id}/preferences", web::put().to(set_preferences));
}

/// Whether the user accepts each channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreferencesView {
    pub email: bool,
    pub push: bool,
}

/// A user (never the password or its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub language: String,
    pub preferences: PreferencesView,
    pub push_tokens: Vec<PushTokenView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a delete answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    pub deleted: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            email: u.email,
            language: u.language,
            preferences: PreferencesView {
                email: u.preferences.email,
                push: u.preferences.push,
            },
            push_tokens: u.push_tokens.into_iter().map(PushTokenView::from).collect(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// What a caller wants to do with a user's record (or devices).
#[derive(Clone, Copy)]
pub(super) enum Access {
    Read,
    Write,
}

pub(super) fn not_found(id: UserId) -> ApiError {
    ApiError::NotFound(format!("user {id} not found"))
}

/// Ownership and scopes, before anything is read: a user token naming another user gets
/// the same 404 as a missing user.
pub(super) fn authorize(caller: &Caller, id: UserId, access: Access) -> Result<(), ApiError> {
    match caller.token_use {
        TokenUse::User => {
            if caller.subject != id.to_string() {
                return Err(not_found(id));
            }
            caller.require(SCOPE_USERS_SELF)
        }
        TokenUse::Service => match access {
            Access::Read if caller.has_scope(SCOPE_USERS_READ) => Ok(()),
            Access::Read if caller.has_scope(SCOPE_USERS_WRITE) => Ok(()),
            Access::Read => caller.require(SCOPE_USERS_READ),
            Access::Write => caller.require(SCOPE_USERS_WRITE),
        },
    }
}

fn email_taken() -> ApiError {
    ApiError::Conflict("a user with this email already exists".into())
}

fn ok(user: User, message: &str) -> HttpResponse {
    HttpResponse::Ok().json(ApiResponse::ok(UserView::from(user), message))
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/api/v1/users/",
    tag = "users",
    request_body = crate::domain::CreateUserBody,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 401, description = "Missing or invalid token (unless open registration)"),
        (status = 403, description = "Token lacks `users:write`"),
        (status = 409, description = "Email already registered, or the push token belongs to another user (register it once signed in as the new user)"),
        (status = 422, description = "Validation failed; `error.details` names each field")
    ),
    security(("bearer" = []))
)]
pub async fn create(
    caller: Result<Caller, ApiError>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let actor = match &caller {
        Ok(c) => actor(c),
        Err(_) => "anonymous".to_string(),
    };
    if !state.open_registration {
        let caller = caller?;
        if caller.token_use != TokenUse::Service {
            return Err(ApiError::Forbidden(
                "users are created by a service with `users:write`".into(),
            ));
        }
        caller.require(SCOPE_USERS_WRITE)?;
    }
    let new_user = NewUser::parse_with(&body, &state.device_defaults).map_err(ApiError::Validation)?;
    let id = UserId::from(uuid::Uuid::now_v7());
    let hash = state.passwords.hash(new_user.password.secret()).await?;
    match db::insert(&state.pool, id, &new_user, &hash, &actor)
        .await
        .context("failed to store the user")?
    {
        Written::Done(user) => {
            state.invalidate(id).await;
            tracing::info!(user_id = %id, "user created");
            Ok(HttpResponse::Created().json(ApiResponse::ok(UserView::from(user), "user created")))
        }
        Written::EmailTaken => Err(email_taken()),
        Written::NotFound => Err(not_found(id)),
        Written::TokenTaken => Err(token_taken("push_token")),
    }
}

/// Lists users, oldest first (services with `users:read` or `users:write`).
#[utoipa::path(
    get,
    path = "/api/v1/users/",
    tag = "users",
    params(
        ("page" = Option<u32>, Query, description = "1-based page (default 1)"),
        ("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)")
    ),
    responses(
        (status = 200, description = "A page of users; `meta` has the counts", body = [UserView]),
        (status = 403, description = "Not a service token with `users:read`"),
        (status = 422, description = "Bad `page` or `limit`")
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    if caller.token_use != TokenUse::Service {
        return Err(ApiError::Forbidden(
            "listing users needs a service token with `users:read`".into(),
        ));
    }
    if !caller.has_scope(SCOPE_USERS_WRITE) {
        caller.require(SCOPE_USERS_READ)?;
    }
    let unknown: Vec<FieldError> = query
        .keys()
        .filter(|k| !matches!(k.as_str(), "page" | "limit"))
        .map(|k| FieldError::new(k.clone(), "unknown query parameter; expected page, limit"))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Validation(unknown));
    }
    let page = PageRequest::parse(
        query.get("page").map(String::as_str),
        query.get("limit").map(String::as_str),
    )
    .map_err(ApiError::Validation)?;
    let (users, total) = db::list(&state.pool, page.offset(), page.limit_i64())
        .await
        .context("failed to list users")?;
    let views: Vec<UserView> = users.into_iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok().json(ApiResponse::page(views, "users", page.meta(total))))
}

/// A user (its own record for a user token). Service callers (the recipient lookup of the
/// workers) also get `delivery`: whether the email address is suppressed, and the one-click
/// unsubscribe link.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user; a service caller also gets `delivery` (suppression of the email address, unsubscribe link)", body = super::delivery::RecipientView),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Token lacks the scope"),
        (status = 404, description = "No such user (or not yours)")
    ),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    authorize(&caller, id, Access::Read)?;
    let user = db::get(&state.pool, id)
        .await
        .context("failed to read the user")?
        .ok_or_else(|| not_found(id))?;
    if caller.token_use == TokenUse::Service {
        let delivery = super::delivery::of(&state, &user).await?;
        let view = super::delivery::RecipientView {
            user: UserView::from(user),
            delivery,
        };
        return Ok(HttpResponse::Ok().json(ApiResponse::ok(view, "user found")));
    }
    Ok(ok(user, "user found"))
}

/// Changes some fields of a user. An end user changing their password must send
/// `current_password`.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = crate::domain::PatchUserBody,
    responses(
        (status = 200, description = "The changed user", body = UserView),
        (status = 404, description = "No such user (or not yours)"),
        (status = 409, description = "Email already registered"),
        (status = 422, description = "Validation failed")
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    caller: Caller,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    authorize(&caller, id, Access::Write)?;
    let patch = UserPatch::parse(&body).map_err(ApiError::Validation)?;
    let new_hash = match &patch.password {
        None => None,
        Some(password) => {
            if caller.token_use == TokenUse::User {
                let current = patch
                    .current_password
                    .as_ref()
                    .ok_or_else(|| ApiError::field("current_password", "is required to change the password"))?;
                let stored = db::password_hash(&state.pool, id)
                    .await
                    .context("failed to read the password hash")?
                    .ok_or_else(|| not_found(id))?;
                if !state.passwords.verify(current.secret(), Some(stored)).await? {
                    return Err(ApiError::field(
                        "current_password",
                        "does not match the current password",
                    ));
                }
            }
            Some(state.passwords.hash(password.secret()).await?)
        }
    };
    match db::update(&state.pool, id, &patch, new_hash.as_deref())
        .await
        .context("failed to update the user")?
    {
        Written::Done(user) => {
            state.invalidate(id).await;
            tracing::info!(user_id = %id, "user updated");
            Ok(ok(user, "user updated"))
        }
        Written::EmailTaken => Err(email_taken()),
        Written::NotFound => Err(not_found(id)),
        // A patch does not touch devices.
        Written::TokenTaken => Err(token_taken("push_token")),
    }
}

/// Deletes a user and its push tokens (for good: later lookups answer 404).
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such user (or not yours)")
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    caller: Caller,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    authorize(&caller, id, Access::Write)?;
    if !db::delete(&state.pool, id).await.context("failed to delete the user")? {
        return Err(not_found(id));
    }
    state.invalidate(id).await;
    tracing::info!(user_id = %id, "user deleted");
    Ok(HttpResponse::Ok().json(ApiResponse::ok(Deleted { id, deleted: true }, "user deleted")))
}

/// Sets the channel preferences.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}/preferences",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = crate::domain::PreferencesBody,
    responses(
        (status = 200, description = "The user with its new preferences", body = UserView),
        (status = 404, description = "No such user (or not yours)"),
        (status = 422, description = "Validation failed")
    ),
    security(("bearer" = []))
)]
pub async fn set_preferences(
    caller: Caller,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    authorize(&caller, id, Access::Write)?;
    let preferences = PreferencesInput::parse(&body).map_err(ApiError::Validation)?;
    let user = db::set_preferences(&state.pool, id, preferences.0)
        .await
        .context("failed to set the preferences")?
        .ok_or_else(|| not_found(id))?;
    state.invalidate(id).await;
    Ok(ok(user, "preferences updated"))
}
