//! actix-web configuration shared by every HTTP service: extractor errors and unknown routes
//! answer in the envelope like everything else.

use actix_web::{
    error::{JsonPayloadError, PathError, QueryPayloadError},
    web, HttpRequest,
};

use crate::error::ApiError;

/// JSON bodies up to `limit` bytes; every failure mapped to an enveloped error.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| json_error(err, limit).into())
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType("Content-Type must be application/json".into()),
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("request body is not valid JSON: {e}")),
        other => ApiError::BadRequest(format!("could not read the request body: {other}")),
    }
}

/// Path parameters that do not parse (e.g. a malformed id) answer 404: no such resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        ApiError::NotFound(format!("no such resource: {err}")).into()
    })
}

/// Query strings that do not parse answer 422 naming the problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err: QueryPayloadError, _req: &HttpRequest| ApiError::field("query", err.to_string()).into())
}

/// Default service: unknown routes answer 404 in the envelope.
pub async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// Registers the shared extractor configs on an app.
pub fn configure(cfg: &mut web::ServiceConfig, json_limit: usize) {
    cfg.app_data(json_config(json_limit))
        .app_data(path_config())
        .app_data(query_config());
}

/// The routes every background service's ops server adds to its own `GET /health`:
/// `GET /metrics` and the dependency-free liveness probe `GET /health/live`.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(crate::metrics::endpoint))
        .route("/health/live", web::get().to(crate::health::live));
}

/// The HTTP server of a background service (relay, workers, projector): what `configure`
/// registers (its `GET /health` and state) plus [`ops_routes`], on one worker thread, with
/// signals left to the service (it drains its own work first).
pub fn ops_server<F>(listener: std::net::TcpListener, configure: F) -> std::io::Result<actix_web::dev::Server>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    Ok(
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()).configure(ops_routes))
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run(),
    )
}

#[cfg(test)]
mod tests {
    use actix_web::{http::StatusCode, test, web, App, HttpResponse};

    #[actix_web::test]
    async fn the_ops_server_is_alive_while_its_readiness_fails() {
        // A service whose hard dependency is down: readiness answers 503.
        let app = test::init_service(
            App::new()
                .route(
                    "/health",
                    web::get().to(|| async { HttpResponse::ServiceUnavailable().finish() }),
                )
                .configure(super::ops_routes),
        )
        .await;

        let ready = test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
        let live = test::call_service(&app, test::TestRequest::get().uri("/health/live").to_request()).await;

        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(live.status(), StatusCode::OK);
        let body: serde_json::Value = test::read_body_json(live).await;
        assert_eq!(body["data"], "alive");
    }
}
