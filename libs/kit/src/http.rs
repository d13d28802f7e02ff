//! actix-web configuration shared by every HTTP service: extractor errors and unknown routes
//! answer in the envelope like everything else, trailing slashes are forgiven in one place,
//! and [`HttpApplication`] is the shape every service's `startup::Application` has.

use std::future::Future;

use actix_web::{
    body::MessageBody,
    dev::{ServerHandle, ServiceRequest, ServiceResponse},
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{uri::PathAndQuery, Uri},
    middleware::Next,
    web, Error, HttpRequest,
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

/// What every HTTP service's `startup::Application` is: built from its `settings::Settings`
/// (binding its listener, port 0 in tests), then run until SIGTERM. `main` and the tests'
/// `spawn_app` start every service through this one shape.
pub trait HttpApplication: Sized {
    /// The service's typed configuration.
    type Settings;

    /// Connects to the service's dependencies, runs migrations if asked and binds the listener.
    fn build(settings: Self::Settings) -> impl Future<Output = anyhow::Result<Self>>;

    /// The bound port (the one picked by the system when the settings said 0).
    fn port(&self) -> u16;

    /// A handle to stop the server (tests use it to take a service down).
    fn handle(&self) -> ServerHandle;

    /// Serves until SIGTERM/SIGINT (actix handles the signals and drains in-flight requests).
    fn run_until_stopped(self) -> impl Future<Output = anyhow::Result<()>> + Send + 'static;
}

/// Middleware (use with `actix_web::middleware::from_fn`, wrapped last so it runs first):
/// a path that matches no route but would with its trailing slash added or removed is
/// rewritten to the registered form. Routes are written once, in their canonical form
/// (collections end in `/`: `POST /api/v1/notifications/`), and clients may call either;
/// the route label of the metrics and spans is the registered pattern whichever was called.
pub async fn trailing_slash(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(uri) = slash_variant(&req) {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
    next.call(req).await
}

/// The request's URI with the other trailing-slash form of its path, when only that form
/// names a route.
fn slash_variant(req: &ServiceRequest) -> Option<Uri> {
    let path = req.path();
    let routes = req.resource_map();
    if path.len() <= 1 || routes.has_resource(path) {
        return None;
    }
    let other = match path.strip_suffix('/') {
        Some(trimmed) => trimmed.to_string(),
        None => format!("{path}/"),
    };
    if !routes.has_resource(&other) {
        return None;
    }
    let path_and_query = match req.query_string() {
        "" => other,
        query => format!("{other}?{query}"),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
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
    use actix_web::{middleware, test, web, App, HttpRequest, HttpResponse};

    use super::*;

    /// Answers the matched pattern, the path and the query it saw.
    async fn echo(req: HttpRequest) -> HttpResponse {
        HttpResponse::Ok().body(format!(
            "{} {} {}",
            req.match_pattern().unwrap_or_default(),
            req.path(),
            req.query_string()
        ))
    }

    async fn call(path: &str) -> (u16, String) {
        let app = test::init_service(
            App::new()
                .wrap(middleware::from_fn(trailing_slash))
                .route("/items/", web::get().to(echo))
                .route("/items/{id}", web::get().to(echo)),
        )
        .await;
        let resp = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        let status = resp.status().as_u16();
        (
            status,
            String::from_utf8_lossy(&test::read_body(resp).await).into_owned(),
        )
    }

    #[actix_web::test]
    async fn a_path_reaches_its_route_with_or_without_the_trailing_slash() {
        assert_eq!(call("/items").await, (200, "/items/ /items/ ".into()));
        assert_eq!(call("/items?x=1").await, (200, "/items/ /items/ x=1".into()));
        assert_eq!(call("/items/7").await, (200, "/items/{id} /items/7 ".into()));
        assert_eq!(call("/items/7/").await, (200, "/items/{id} /items/7 ".into()));
    }

    #[actix_web::test]
    async fn a_path_that_matches_no_route_in_either_form_is_left_alone() {
        assert_eq!(call("/nothing").await.0, 404);
        assert_eq!(call("/nothing/").await.0, 404);
        assert_eq!(call("/").await.0, 404);
    }
}

#[cfg(test)]
mod ops_tests {
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
