//! What every HTTP service's OpenAPI document shares: the bearer-token security scheme its
//! operations name, and the route that serves the document.

use actix_web::{web, HttpResponse};
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

/// Adds the `bearer` security scheme: a JWT in `Authorization: Bearer …`.
pub struct BearerAuth;

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

/// Registers `GET /api-docs/openapi.json`, serving `D`'s document as [`document`] completes it.
pub fn serve<D: OpenApi + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api-docs/openapi.json",
        web::get().to(|| async { HttpResponse::Ok().json(document::<D>()) }),
    );
}

/// `D`'s document as the services answer: every `2xx` JSON body is the envelope
/// `{success, data, message, error, meta}` with the annotated schema as `data` (handlers
/// annotate the data only), and the answers every operation can give without its handler
/// are listed: `401`/`403` where a token is needed, `400` (not JSON), `413` (too large),
/// `415` (not `application/json`) and `422` (invalid) where there is a body.
pub fn document<D: OpenApi>() -> serde_json::Value {
    let mut doc = serde_json::to_value(D::openapi()).unwrap_or_default();
    let secured_by_default = doc
        .get("security")
        .is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty()));
    let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            complete_operation(op, secured_by_default);
        }
    }
    doc
}

fn complete_operation(op: &mut serde_json::Value, secured_by_default: bool) {
    use serde_json::json;
    let secured = op
        .get("security")
        .and_then(serde_json::Value::as_array)
        .map_or(secured_by_default, |a| !a.is_empty());
    let has_body = op.get("requestBody").is_some();
    let Some(responses) = op.get_mut("responses").and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    for (code, response) in responses.iter_mut() {
        if !code.starts_with('2') {
            continue;
        }
        if let Some(schema) = response.pointer_mut("/content/application~1json/schema") {
            let data = schema.take();
            *schema = json!({
                "type": "object",
                "required": ["success", "data", "message"],
                "properties": {
                    "success": {"type": "boolean"},
                    "data": data,
                    "message": {"type": "string"},
                    "error": {},
                    "meta": {}
                }
            });
        }
    }
    let mut common: Vec<(&str, &str)> = Vec::new();
    if secured {
        common.extend([
            ("401", "Missing or invalid token"),
            ("403", "The token lacks the scope"),
        ]);
    }
    if has_body {
        common.extend([
            ("400", "Body is not JSON"),
            ("413", "Body too large"),
            ("415", "Content-Type is not application/json"),
            ("422", "Validation failed; `error.details` names each field"),
        ]);
    }
    for (code, description) in common {
        responses
            .entry(code)
            .or_insert_with(|| json!({ "description": description }));
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App};

    use super::*;

    #[derive(OpenApi)]
    #[openapi(info(title = "t"), modifiers(&BearerAuth))]
    struct Doc;

    #[actix_web::test]
    async fn the_document_is_served_with_the_bearer_scheme() {
        let app = test::init_service(App::new().configure(serve::<Doc>)).await;
        let doc: serde_json::Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get().uri("/api-docs/openapi.json").to_request(),
        )
        .await;
        assert_eq!(doc["info"]["title"], "t");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["bearerFormat"], "JWT");
    }

    #[derive(serde::Serialize, utoipa::ToSchema)]
    struct Thing {
        n: u32,
    }

    /// Creates a thing.
    #[utoipa::path(post, path = "/things", request_body = Thing,
        responses((status = 201, description = "Created", body = Thing)),
        security(("bearer" = [])))]
    #[allow(dead_code)]
    async fn create_thing() {}

    #[derive(OpenApi)]
    #[openapi(info(title = "t"), paths(create_thing), components(schemas(Thing)), modifiers(&BearerAuth))]
    struct ThingDoc;

    #[actix_web::test]
    async fn answers_are_documented_as_the_envelope_with_the_common_errors() {
        let doc = document::<ThingDoc>();
        let responses = &doc["paths"]["/things"]["post"]["responses"];
        let created = &responses["201"]["content"]["application/json"]["schema"];
        assert_eq!(created["required"], serde_json::json!(["success", "data", "message"]));
        assert_eq!(created["properties"]["data"]["$ref"], "#/components/schemas/Thing");
        for code in ["400", "401", "403", "413", "415", "422"] {
            assert!(responses[code]["description"].is_string(), "{code} documented");
        }
    }
}
