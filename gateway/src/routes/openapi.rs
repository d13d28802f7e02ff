//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::web;
use notify_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{delivery_reports, health, notifications, webhooks};
use crate::domain::{DeliveryReportBody, SendNotificationBody};

/// The gateway's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Notification gateway", description = "Accepts email and push notifications for asynchronous delivery. Every response is the envelope {success, data, message, meta}."),
    paths(
        notifications::create,
        notifications::get,
        delivery_reports::report,
        webhooks::sendgrid_events,
        webhooks::mailgun_event,
        health::health
    ),
    components(schemas(
        SendNotificationBody,
        notifications::Accepted,
        notifications::NotificationView,
        notifications::HistoryEntry,
        DeliveryReportBody,
        delivery_reports::ReportAccepted,
        webhooks::WebhookAccepted,
        webhooks::SendGridEvent,
        webhooks::MailgunWebhookBody,
        webhooks::MailgunSignatureBody,
        notify_kit::envelope::PageMeta,
        notify_kit::envelope::ErrorBody,
        notify_kit::envelope::FieldErrorBody,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "notifications"),
        (name = "webhooks", description = "Provider event webhooks, authenticated by the provider's signature, not a bearer token"),
        (name = "health")
    )
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

    #[test]
    fn the_webhooks_are_documented_without_a_bearer_token_and_with_their_signature_headers() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
        let sendgrid = &doc["paths"]["/api/v1/webhooks/sendgrid"]["post"];
        let mailgun = &doc["paths"]["/api/v1/webhooks/mailgun"]["post"];
        for op in [sendgrid, mailgun] {
            assert_eq!(op["security"], serde_json::json!([{}]), "no bearer token: {op}");
            assert!(op["responses"]["401"].is_object(), "{op}");
        }
        let headers: Vec<&str> = sendgrid["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            headers,
            [
                "X-Twilio-Email-Event-Webhook-Signature",
                "X-Twilio-Email-Event-Webhook-Timestamp"
            ]
        );
    }
}
