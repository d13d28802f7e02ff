//! `/api/v1/suppressions/...`: the suppression list's operator API.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::{service_token, user_token};

use crate::helpers::{assert_error_envelope, detail_fields, reader, spawn_app, TestApp};

const READ: &str = "suppressions:read";
const WRITE: &str = "suppressions:write";

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
}

fn operator() -> String {
    service_token("alice", &[READ, WRITE])
}

fn auditor() -> String {
    service_token("auditor", &[READ])
}

impl TestApp {
    async fn put_suppression(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/api/v1/suppressions/{path}"),
            Some(&operator()),
            Some(&body),
        )
        .await
    }

    /// `DELETE /api/v1/suppressions/{path}`: the status and the body's text (204 has none).
    async fn lift(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = self
            .client
            .delete(format!("{}/api/v1/suppressions/{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }
}

#[tokio::test]
async fn every_endpoint_needs_a_token_with_its_scope() {
    let app = spawn_app().await;
    let one = "/api/v1/suppressions/email/a@example.com";
    let body = json!({"reason": "manual"});
    for (method, path, body) in [
        (Method::GET, "/api/v1/suppressions/", None),
        (Method::GET, one, None),
        (Method::PUT, one, Some(&body)),
    ] {
        let (status, v) = app.call(method.clone(), path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_error_envelope(&v, "unauthorized");
        // A service allowed to change users is not allowed here.
        let (status, v) = app
            .call(method.clone(), path, Some(&crate::helpers::writer()), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_error_envelope(&v, "forbidden");
        // Nor is a user, about anything.
        let (status, _) = app.call(method.clone(), path, Some(&user_token("someone")), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // Reading does not allow writing.
    let (status, v) = app.call(Method::PUT, one, Some(&auditor()), Some(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().contains(WRITE), "{v}");
    let (status, _) = app.lift("email/a@example.com", Some(&auditor())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.lift("email/a@example.com", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (_, list) = app.get("/api/v1/suppressions/", Some(&auditor())).await;
    assert_eq!(list["meta"]["total"], 0, "nothing was stored: {list}");
}

#[tokio::test]
async fn putting_an_address_again_keeps_its_first_time_and_its_strongest_reason() {
    let app = spawn_app().await;
    let (status, first) = app
        .put_suppression(
            "email/Ann.Smith@Example.COM",
            json!({"reason": "hard_bounce", "source": "sendgrid", "detail": "550 5.1.1 no such user"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let entry = &first["data"];
    assert_eq!(entry["channel"], "email");
    assert_eq!(entry["address"], "ann.smith@example.com");
    assert_eq!(entry["reason"], "hard_bounce");
    assert_eq!(entry["source"], "sendgrid");
    assert_eq!(entry["detail"], "550 5.1.1 no such user");

    // Any spelling of the address finds it.
    let (status, got) = app
        .get("/api/v1/suppressions/email/ANN.SMITH@example.com", Some(&auditor()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["data"], *entry);

    // A weaker reason changes nothing but updated_at; the answer is 200.
    let (status, again) = app
        .put_suppression("email/ann.smith@example.com", json!({"reason": "manual"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["reason"], "hard_bounce");
    assert_eq!(again["data"]["source"], "sendgrid");
    assert_eq!(again["data"]["created_at"], entry["created_at"]);
    assert!(time(&again["data"]["updated_at"]) >= time(&entry["updated_at"]));

    // A stronger one replaces reason, source and detail (the operator is the default source).
    let (status, stronger) = app
        .put_suppression("email/ann.smith@example.com", json!({"reason": "complaint"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stronger["data"]["reason"], "complaint");
    assert_eq!(stronger["data"]["source"], "operator:alice");
    assert_eq!(stronger["data"]["detail"], Value::Null);
    assert_eq!(stronger["data"]["created_at"], entry["created_at"]);

    let (_, list) = app.get("/api/v1/suppressions/", Some(&auditor())).await;
    assert_eq!(list["meta"]["total"], 1);
}

#[tokio::test]
async fn a_bad_channel_address_or_body_is_named_and_stores_nothing() {
    let app = spawn_app().await;
    let (status, v) = app
        .put_suppression("sms/a@example.com", json!({"reason": "manual"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_envelope(&v, "validation_failed");
    assert_eq!(detail_fields(&v), ["channel"]);

    let (status, v) = app
        .put_suppression(
            "email/not-an-address",
            json!({"reason": "bounced", "source": "", "detail": "x".repeat(1001), "notificationId": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        detail_fields(&v),
        ["address", "notificationId", "reason", "source", "detail"]
    );

    let (status, v) = app.put_suppression("push/a%20b", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["address", "reason"]);

    let (status, v) = app.get("/api/v1/suppressions/email/nobody", Some(&auditor())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["address"]);

    let (status, v) = app.lift("fax/a@example.com", Some(&operator())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&serde_json::from_str(&v).unwrap()), ["channel"]);

    let (_, list) = app.get("/api/v1/suppressions/", Some(&auditor())).await;
    assert_eq!(list["meta"]["total"], 0);
}

#[tokio::test]
async fn the_list_is_paginated_and_filtered_by_channel() {
    let app = spawn_app().await;
    for i in 0..3 {
        let (status, _) = app
            .put_suppression(&format!("email/u{i}@example.com"), json!({"reason": "hard_bounce"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = app
        .put_suppression("push/fcm-token-1", json!({"reason": "manual"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, v) = app
        .get("/api/v1/suppressions?channel=email&page=2&limit=2", Some(&auditor()))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["meta"],
        json!({"total": 3, "limit": 2, "page": 2, "total_pages": 2, "has_next": false, "has_previous": true})
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["address"], "u2@example.com");

    let (_, all) = app.get("/api/v1/suppressions/", Some(&auditor())).await;
    assert_eq!(all["meta"]["total"], 4);
    let (_, push) = app.get("/api/v1/suppressions/?channel=push", Some(&auditor())).await;
    assert_eq!(push["data"][0]["address"], "fcm-token-1");

    let (status, v) = app
        .get("/api/v1/suppressions/?channel=sms&limit=0&cursor=x", Some(&auditor()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["cursor", "channel", "limit"]);
}

#[tokio::test]
async fn a_lifted_suppression_is_gone_and_lifting_it_again_is_404() {
    let app = spawn_app().await;
    let (status, _) = app
        .put_suppression(
            "email/bob@example.com",
            json!({"reason": "complaint", "source": "mailgun"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = app.lift("email/BOB@example.com", Some(&operator())).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    let (status, v) = app
        .get("/api/v1/suppressions/email/bob@example.com", Some(&auditor()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&v, "not_found");
    let (status, body) = app.lift("email/bob@example.com", Some(&operator())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&serde_json::from_str(&body).unwrap(), "not_found");
}

#[tokio::test]
async fn a_service_reading_a_user_learns_whether_its_email_is_suppressed() {
    let app = spawn_app().await;
    let id = app.create_user("Dana@example.com").await;
    let (_, v) = app.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
    assert_eq!(v["data"]["delivery"]["email"]["suppressed"], Value::Null, "{v}");

    let (status, _) = app
        .put_suppression(
            "email/dana@EXAMPLE.com",
            json!({"reason": "hard_bounce", "source": "sendgrid"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, v) = app.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
    let suppressed = &v["data"]["delivery"]["email"]["suppressed"];
    assert_eq!(suppressed["reason"], "hard_bounce");
    assert_eq!(suppressed["source"], "sendgrid");
    assert!(suppressed["created_at"].is_string());

    // The user's own view has no delivery facts.
    let (_, login) = app.login("Dana@example.com", "correct horse battery staple").await;
    let token = login["data"]["access_token"].as_str().unwrap().to_string();
    let (status, mine) = app.get(&format!("/api/v1/users/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(mine["data"].get("delivery").is_none(), "{mine}");
}
