//! Health, the OpenAPI document, routing and metrics.

use notify_kit::auth::SCOPE_READ;
use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::service_token;

use crate::helpers::{assert_error_envelope, body, sender, spawn_app};

#[tokio::test]
async fn health_reports_postgres_and_fails_readiness_without_it_while_liveness_holds() {
    let app = spawn_app().await;
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"]["ready"], true);
    assert_eq!(v["data"]["dependencies"][0]["name"], "postgres");

    // Take the database away under the running gateway.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&test_support::admin_database_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", app.db.name))
        .execute(&mut admin)
        .await
        .unwrap();
    let (status, v) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["data"]["ready"], false);
    assert_eq!(v["data"]["dependencies"][0]["healthy"], false);
    // Liveness never depends on a dependency: the orchestrator must not restart it for that.
    let (status, v) = app.get("/health/live", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"], "alive");
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoints() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["paths"]["/api/v1/notifications/"]["post"].is_object(), "{v}");
    assert!(v["paths"]["/api/v1/notifications/{id}"]["get"].is_object());
    assert!(v["components"]["schemas"]["SendNotificationBody"]["properties"]["request_id"].is_object());
    assert!(v["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn unknown_routes_answer_in_the_envelope() {
    let app = spawn_app().await;
    let (status, v) = app.get("/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.post(None, &body("r1")).await;
    let text = app.metrics().await;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total")
                && l.contains("route=\"/api/v1/notifications/\"")
                && l.contains("status=\"401\"")
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    assert!(line.contains("method=\"POST\""), "{line}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency is a histogram"
    );
}

#[tokio::test]
async fn every_route_answers_with_and_without_a_trailing_slash_under_one_route_label() {
    let app = spawn_app().await;
    let send = |path: &'static str, request_id: &'static str| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(format!("{}{path}", app.address))
                .bearer_auth(sender())
                .json(&body(request_id))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (with_slash, v) = send("/api/v1/notifications/", "slash-1").await;
    assert_eq!(with_slash, StatusCode::ACCEPTED, "{v}");
    let (without, v) = send("/api/v1/notifications", "slash-2").await;
    assert_eq!(without, StatusCode::ACCEPTED, "{v}");
    let id = v["data"]["notification_id"].as_str().unwrap().to_string();
    assert_eq!(app.count("notifications").await, 2);

    let reader = service_token("billing", &[SCOPE_READ]);
    for path in [
        format!("/api/v1/notifications/{id}"),
        format!("/api/v1/notifications/{id}/"),
    ] {
        let (status, v) = app.get(&path, Some(&reader)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["data"]["notification_id"], id.as_str());
    }

    let reporter = service_token("mail-provider", &[notify_kit::auth::SCOPE_STATUS_WRITE]);
    for path in ["/api/v1/email/status/", "/api/v1/email/status"] {
        let (status, v) = (*app)
            .post(path, Some(&reporter), &json!({"notification_id": id, "status": "sent"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {v}");
    }

    let metrics = app.metrics().await;
    let accepted = metrics
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total")
                && l.contains("route=\"/api/v1/notifications/\"")
                && l.contains("status=\"202\"")
        })
        .count();
    assert!(accepted >= 1, "both forms count under the registered route:\n{metrics}");
    assert!(
        !metrics.contains("route=\"/api/v1/notifications\""),
        "no second label for the form without the slash"
    );
}
