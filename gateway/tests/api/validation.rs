//! Request bodies of `POST /api/v1/notifications/`: every problem named with its field.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error_envelope, body, sender, spawn_app};

#[tokio::test]
async fn camel_case_and_unknown_fields_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let mut b = body("r1");
    let obj = b.as_object_mut().unwrap();
    let v = obj.remove("template_code").unwrap();
    obj.insert("templateCode".into(), v);
    obj.insert("colour".into(), json!("blue"));
    let (status, _, v) = app.post(Some(&sender()), &b).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_envelope(&v, "validation_failed");
    let details = v["error"]["details"].as_array().unwrap();
    let field = |f: &str| {
        details
            .iter()
            .find(|d| d["field"] == f)
            .unwrap_or_else(|| panic!("no {f} in {v}"))
    };
    assert!(field("templateCode")["reason"]
        .as_str()
        .unwrap()
        .contains("template_code"));
    assert!(field("colour")["reason"].as_str().unwrap().contains("unknown field"));
    assert_eq!(field("template_code")["reason"], "is required");
    assert_eq!(app.count("notifications").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn each_invalid_field_is_reported() {
    let app = spawn_app().await;
    let cases = [
        ("notification_type", json!("sms")),
        ("user_id", json!("42")),
        ("template_code", json!("Has Spaces")),
        ("variables", json!(["not", "an", "object"])),
        ("request_id", json!("")),
        ("priority", json!(0)),
        ("metadata", json!(7)),
    ];
    for (field, bad) in cases {
        let mut b = body("r1");
        b[field] = bad.clone();
        let (status, _, v) = app.post(Some(&sender()), &b).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={bad}");
        assert_eq!(v["error"]["details"][0]["field"], field, "{v}");
    }
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = spawn_app().await;
    let (status, _, v) = app
        .post_raw(Some(&sender()), "{\"notification_type\": ".into(), "application/json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_envelope(&v, "bad_request");
}

#[tokio::test]
async fn a_non_json_content_type_is_refused() {
    let app = spawn_app().await;
    let (status, _, v) = app
        .post_raw(Some(&sender()), body("r1").to_string().into(), "text/plain")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_envelope(&v, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let app = spawn_app().await;
    let mut b = body("r1");
    b["metadata"] = json!({"blob": "x".repeat(20 * 1024)});
    let (status, _, v) = app.post(Some(&sender()), &b).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_envelope(&v, "payload_too_large");
    assert_eq!(app.count("notifications").await, 0);
}
