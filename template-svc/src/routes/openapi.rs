//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::web;
use notify_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{health, templates};
use crate::domain::{CreateTemplateBody, EmailContentBody, NewVersionBody, PushContentBody, RenderBody};

/// template-svc's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Template service", description = "Versioned, multi-language email and push templates. Every response is the envelope {success, data, message, meta}. Scopes: `templates:read` (reads, preview), `templates:write` (everything)."),
    paths(
        templates::create,
        templates::publish,
        templates::get,
        templates::list,
        templates::preview,
        health::health
    ),
    components(schemas(
        CreateTemplateBody,
        NewVersionBody,
        RenderBody,
        EmailContentBody,
        PushContentBody,
        templates::TemplateView,
        templates::TemplateSummary,
        templates::RenderView,
        notify_kit::envelope::PageMeta,
        notify_kit::envelope::ErrorBody,
        notify_kit::envelope::FieldErrorBody,
    )),
    modifiers(&BearerAuth),
    tags((name = "templates"), (name = "health"))
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
        assert_request_body_is::<CreateTemplateBody>(&doc, "post", "/api/v1/templates/");
        assert_request_body_is::<NewVersionBody>(&doc, "post", "/api/v1/templates/{code}/versions");
        assert_request_body_is::<RenderBody>(&doc, "post", "/api/v1/templates/{code}/render");
    }
}
