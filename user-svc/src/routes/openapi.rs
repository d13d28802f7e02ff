//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::web;
use notify_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{auth, delivery, devices, health, suppressions, unsubscribe, users};
use crate::domain::{CreateUserBody, LoginBody, PatchUserBody, PreferencesBody, PushTokenBody, SuppressionBody};

/// user-svc's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "User service", description = "Users, their contacts (email, push tokens) and channel preferences, and login. Every response is the envelope {success, data, message, meta}. Scopes: `users:read`, `users:write` (services), `users:self` (login tokens: own record only), `users:devices:write` (the push worker: devices used and gone), `suppressions:read`, `suppressions:write` (operators, provider webhooks). `/api/v1/unsubscribe` needs no token: its signed `token` parameter is the authority."),
    paths(
        users::create,
        users::list,
        users::get,
        users::patch,
        users::delete,
        devices::list,
        devices::register,
        devices::remove,
        devices::remove_gone,
        devices::mark_used,
        users::set_preferences,
        suppressions::list,
        suppressions::get,
        suppressions::put,
        suppressions::delete,
        unsubscribe::confirm,
        unsubscribe::unsubscribe,
        auth::login,
        health::health
    ),
    components(schemas(
        CreateUserBody,
        PatchUserBody,
        PushTokenBody,
        PreferencesBody,
        users::PreferencesView,
        devices::PushTokenView,
        devices::GoneBody,
        devices::GoneView,
        devices::UsedBody,
        devices::UsedView,
        users::UserView,
        users::Deleted,
        delivery::RecipientView,
        delivery::DeliveryView,
        delivery::EmailDeliveryView,
        delivery::SuppressedView,
        SuppressionBody,
        suppressions::SuppressionView,
        unsubscribe::Unsubscribed,
        LoginBody,
        auth::TokenView,
        notify_kit::envelope::PageMeta,
        notify_kit::envelope::ErrorBody,
        notify_kit::envelope::FieldErrorBody,
    )),
    modifiers(&BearerAuth),
    tags((name = "users"), (name = "devices"), (name = "suppressions"), (name = "unsubscribe"), (name = "auth"), (name = "health"))
)]
pub struct ApiDoc;

/// Registers `GET /api-docs/openapi.json`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    notify_kit::openapi::serve::<ApiDoc>(cfg);
}

#[cfg(test)]
mod tests {
    use test_support::openapi::assert_request_body_is;

    use super::*;

    #[test]
    fn each_request_body_documents_exactly_the_fields_its_handler_parses() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
        assert_request_body_is::<CreateUserBody>(&doc, "post", "/api/v1/users/");
        assert_request_body_is::<PatchUserBody>(&doc, "patch", "/api/v1/users/{id}");
        assert_request_body_is::<PushTokenBody>(&doc, "post", "/api/v1/users/{id}/push-tokens");
        assert_request_body_is::<devices::GoneBody>(&doc, "delete", "/api/v1/devices");
        assert_request_body_is::<devices::UsedBody>(&doc, "post", "/api/v1/devices/used");
        assert_request_body_is::<PreferencesBody>(&doc, "put", "/api/v1/users/{id}/preferences");
        assert_request_body_is::<LoginBody>(&doc, "post", "/api/v1/auth/login");
        assert_request_body_is::<SuppressionBody>(&doc, "put", "/api/v1/suppressions/{channel}/{address}");
    }
}
