//! `/api/v1/unsubscribe?token=...`: the one-click unsubscribe link (RFC 8058).

use chrono::{Duration, Utc};
use notify_schemas::{ids::UserId, Channel};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use user_svc::unsubscribe::{UnsubscribeLinks, UnsubscribeSettings};

use crate::helpers::{assert_error_envelope, reader, spawn_app, writer, TestApp, PUBLIC_BASE_URL, UNSUBSCRIBE_SECRET};

const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

fn links(secret: &str) -> UnsubscribeLinks {
    UnsubscribeLinks::new(&UnsubscribeSettings {
        secret: secret.to_string().into(),
        ttl: std::time::Duration::from_secs(3600),
        public_base_url: PUBLIC_BASE_URL.into(),
    })
    .unwrap()
}

impl TestApp {
    /// A user with both channels on; its id and the unsubscribe link a worker's lookup gets,
    /// pointed at this app.
    async fn subscribed_user(&self, email: &str) -> (String, String) {
        let id = self.create_user(email).await;
        let (status, _) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/users/{id}/preferences"),
                Some(&writer()),
                Some(&json!({"email": true, "push": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, v) = self.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
        let link = v["data"]["delivery"]["email"]["unsubscribe_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no unsubscribe link in {v}"));
        let path = link
            .strip_prefix(PUBLIC_BASE_URL)
            .unwrap_or_else(|| panic!("{link} is not under {PUBLIC_BASE_URL}"));
        assert!(path.starts_with("/api/v1/unsubscribe?token="), "{link}");
        (id, format!("{}{path}", self.address))
    }

    async fn preferences(&self, id: &str) -> Value {
        let (_, v) = self.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
        v["data"]["preferences"].clone()
    }

    /// The one-click POST to `url` with `body`: status and JSON answer.
    async fn one_click(&self, url: &str, body: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn the_one_click_post_of_a_valid_link_turns_the_email_preference_off() {
    let app = spawn_app().await;
    let (id, link) = app.subscribed_user("erin@example.com").await;

    let (status, v) = app.one_click(&link, ONE_CLICK).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"], json!({"channel": "email", "unsubscribed": true}));
    assert_eq!(app.preferences(&id).await, json!({"email": false, "push": true}));
    // The preference is the whole effect: the address is not put on the suppression list.
    let (_, v) = app.get(&format!("/api/v1/users/{id}"), Some(&reader())).await;
    assert_eq!(v["data"]["delivery"]["email"]["suppressed"], Value::Null);

    // Clicking again is harmless.
    let (status, _) = app.one_click(&link, ONE_CLICK).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.preferences(&id).await, json!({"email": false, "push": true}));
}

#[tokio::test]
async fn opening_the_link_shows_a_form_that_posts_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, link) = app.subscribed_user("fay@example.com").await;
    let token = link.split_once("token=").unwrap().1;

    let resp = app.client.get(&link).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()[header::CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(
        page.contains(&format!(
            "action=\"{PUBLIC_BASE_URL}/api/v1/unsubscribe?token={token}\""
        )),
        "{page}"
    );
    assert!(page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""), "{page}");

    assert_eq!(app.preferences(&id).await, json!({"email": true, "push": true}));
}

#[tokio::test]
async fn expired_altered_and_foreign_links_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (id, link) = app.subscribed_user("gil@example.com").await;
    let user = UserId::parse(&id).unwrap();
    let base = format!("{}/api/v1/unsubscribe?token=", app.address);
    let ours = links(UNSUBSCRIBE_SECRET);

    let expired = ours.token_expiring(user, Channel::Email, Utc::now() - Duration::seconds(1));
    let foreign = links("someone-elses-key-someone-elses-key-0000").token_expiring(
        user,
        Channel::Email,
        Utc::now() + Duration::days(1),
    );
    let token = link.split_once("token=").unwrap().1;
    let for_push = token.replacen(".email.", ".push.", 1);
    // One character inside the signature (the last one also carries padding bits).
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let flipped = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);

    for (what, url, code) in [
        ("expired", format!("{base}{expired}"), "unauthorized"),
        ("signed with another key", format!("{base}{foreign}"), "unauthorized"),
        ("channel changed", format!("{base}{for_push}"), "unauthorized"),
        ("signature changed", format!("{base}{flipped}"), "unauthorized"),
        ("not a token", format!("{base}hello"), "bad_request"),
        ("too long", format!("{base}{}", "a".repeat(300)), "bad_request"),
        ("no token", format!("{}/api/v1/unsubscribe", app.address), "bad_request"),
    ] {
        for post in [false, true] {
            let (status, v) = if post {
                app.one_click(&url, ONE_CLICK).await
            } else {
                let resp = app.client.get(&url).send().await.unwrap();
                (resp.status(), resp.json().await.unwrap())
            };
            let expected = if code == "unauthorized" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(status, expected, "{what} (post: {post}): {v}");
            assert_error_envelope(&v, code);
        }
    }
    assert_eq!(app.preferences(&id).await, json!({"email": true, "push": true}));
}

#[tokio::test]
async fn a_post_without_the_one_click_body_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, link) = app.subscribed_user("hal@example.com").await;

    let (status, v) = app.one_click(&link, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_envelope(&v, "bad_request");
    let (status, _) = app.one_click(&link, "List-Unsubscribe=Maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, v) = app
        .one_click(&link, &format!("{ONE_CLICK}&pad={}", "x".repeat(2000)))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_envelope(&v, "payload_too_large");

    assert_eq!(app.preferences(&id).await, json!({"email": true, "push": true}));
}
