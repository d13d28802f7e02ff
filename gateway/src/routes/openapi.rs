//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::{get, HttpResponse};
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

use super::{health, notifications, status};

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

/// The gateway's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Notification gateway", description = "Accepts email and push notifications for asynchronous delivery. Every response is the envelope {success, data, message, meta}."),
    paths(notifications::create, notifications::get, status::report, health::health),
    components(schemas(
        notifications::SendNotificationBody,
        notifications::Accepted,
        notifications::NotificationView,
        notifications::HistoryEntry,
        status::StatusReportBody,
        status::ReportAccepted,
        notify_kit::envelope::PageMeta,
        notify_kit::envelope::ErrorBody,
        notify_kit::envelope::FieldErrorBody,
    )),
    modifiers(&BearerAuth),
    tags((name = "notifications"), (name = "health"))
)]
pub struct ApiDoc;

/// `GET /api-docs/openapi.json`.
#[get("/api-docs/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
