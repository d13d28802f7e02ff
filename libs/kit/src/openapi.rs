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

/// Registers `GET /api-docs/openapi.json`, serving `D`'s document.
pub fn serve<D: OpenApi + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api-docs/openapi.json",
        web::get().to(|| async { HttpResponse::Ok().json(D::openapi()) }),
    );
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
}
