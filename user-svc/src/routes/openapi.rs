//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::{get, HttpResponse};
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

use super::{auth, health, users};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// user-svc's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "User service", description = "Users, their contacts (email, push tokens) and channel preferences, and login. Every response is the envelope {success, data, message, meta}. Scopes: `users:read`, `users:write` (services), `users:self` (login tokens: own record only)."),
    paths(
        users::create,
        users::list,
        users::get,
        users::patch,
        users::delete,
        users::add_push_token,
        users::remove_push_token,
        users::set_preferences,
        auth::login,
        health::health
    ),
    components(schemas(
        users::CreateUserBody,
        users::PatchUserBody,
        users::PushTokenBody,
        users::PreferencesView,
        users::PushTokenView,
        users::UserView,
        users::Deleted,
        auth::LoginBody,
        auth::TokenView,
        notify_kit::envelope::PageMeta,
        notify_kit::envelope::ErrorBody,
        notify_kit::envelope::FieldErrorBody,
    )),
    modifiers(&BearerAuth),
    tags((name = "users"), (name = "auth"), (name = "health"))
)]
pub struct ApiDoc;

/// `GET /api-docs/openapi.json`.
#[get("/api-docs/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
