//! Reading a template in a language: fallback to the parent, then the default.

use reqwest::StatusCode;

use crate::helpers::{detail_fields, reader, spawn_app, welcome};

#[tokio::test]
async fn a_language_falls_back_to_its_parent_then_to_the_default() {
    let app = spawn_app().await;
    app.create(&welcome()).await;
    let lang = |l: &str| format!("/api/v1/templates/welcome_email?lang={l}");
    let (_, v) = app.get(&lang("pt-BR"), Some(&reader())).await;
    assert_eq!(v["data"]["language"], "pt");
    assert_eq!(v["data"]["requested_language"], "pt-BR");
    assert_eq!(v["data"]["fallback"], true);
    let (_, v) = app.get(&lang("de"), Some(&reader())).await;
    assert_eq!(v["data"]["language"], "en");
    assert_eq!(v["data"]["fallback"], true);
    let (_, v) = app.get(&lang("PT"), Some(&reader())).await;
    assert_eq!(v["data"]["language"], "pt");
    assert_eq!(v["data"]["fallback"], false);
    let (status, v) = app.get(&lang("not_a_language"), Some(&reader())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["lang"]);
    let (status, v) = app
        .get(
            "/api/v1/templates/welcome_email?version=zero&language=en",
            Some(&reader()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail_fields(&v), ["language"]);
}
