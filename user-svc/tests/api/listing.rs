//! `GET /api/v1/users/`: the paginated list.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{detail_fields, reader, spawn_app};

#[tokio::test]
async fn the_list_is_paginated_with_the_spec_meta() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_user(&format!("u{i}@example.com")).await;
    }
    let (status, v) = app.get("/api/v1/users/?page=2&limit=2", Some(&reader())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["meta"],
        json!({"total": 3, "limit": 2, "page": 2, "total_pages": 2, "has_next": false, "has_previous": true})
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["email"], "u2@example.com");
    let (_, first) = app.get("/api/v1/users/?limit=2", Some(&reader())).await;
    assert_eq!(first["meta"]["has_next"], true);
    assert_eq!(first["meta"]["has_previous"], false);

    let (status, v) = app.get("/api/v1/users/?page=0&limit=1000", Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["page", "limit"]);
    let (status, v) = app.get("/api/v1/users/?sort=name", Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["sort"]);
}
