//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::web;
use notify_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{delivery_reports, health, notifications};
use crate::domain::{DeliveryReportBody, SendNotificationBody};

/// The gateway's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Notification gateway", description = "Accepts email and push notifications for asynchronous delivery. Every response is the envelope {success, data, message, meta}."),
    paths(notifications::create, notifications::get, delivery_reports::report, health::health),
    components(schemas(
        SendNotificationBody,
        notifications::Accepted,
        notifications::NotificationView,
        notifications::HistoryEntry,
        DeliveryReportBody,
        delivery_reports::ReportAccepted,
        notify_kit::envelope::PageMeta,
        notify_kit::envelope::ErrorBody,
        notify_kit::envelope::FieldErrorBody,
    )),
    modifiers(&BearerAuth),
    tags((name = "notifications"), (name = "health"))
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
        assert_request_body_is::<SendNotificationBody>(&doc, "post", "/api/v1/notifications/");
        assert_request_body_is::<DeliveryReportBody>(&doc, "post", "/api/v1/{channel}/status/");
    }
}
