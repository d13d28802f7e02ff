//! `GET /api/v1/templates/`: the paginated list.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{detail_fields, reader, spawn_app, welcome};

#[tokio::test]
async fn the_list_is_paginated_with_the_spec_meta_and_filters_by_channel() {
    let app = spawn_app().await;
    for i in 0..3 {
        let mut body = welcome();
        body["code"] = json!(format!("tpl_{i}"));
        app.create(&body).await;
    }
    app.create(&json!({
        "code": "push_one", "channel": "push", "default_language": "en", "name": "P",
        "content": {"en": {"title": "t", "body": "b"}}
    }))
    .await;
    let (status, v) = app.get("/api/v1/templates/?page=2&limit=3", Some(&reader())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["meta"],
        json!({"total": 4, "limit": 3, "page": 2, "total_pages": 2, "has_next": false, "has_previous": true})
    );
    assert_eq!(v["data"][0]["code"], "push_one");
    assert_eq!(v["data"][0]["languages"], json!(["en"]));
    let (_, email) = app
        .get("/api/v1/templates/?channel=email&limit=2", Some(&reader()))
        .await;
    assert_eq!(email["meta"]["total"], 3);
    assert_eq!(email["meta"]["has_next"], true);
    assert_eq!(email["data"][0]["languages"], json!(["en", "pt"]));
    let (status, v) = app.get("/api/v1/templates/?limit=0&channel=sms", Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["channel", "limit"]);
}
