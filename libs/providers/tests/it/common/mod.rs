//! Helpers shared by the provider tests: one email, its delivery, the documented answers.

pub mod google;

use std::time::Duration;

use notify_providers::email::SenderSettings;
use notify_templates::{EmailContent, Rendered};
use notify_worker::provider::{Delivery, OutgoingMessage, Provider, ProviderFailure};
use uuid::Uuid;

pub const UNSUBSCRIBE: &str = "https://users.notify.test/api/v1/unsubscribe?token=signed.abc";
pub const TO: &str = "ada@example.test";

pub fn sender() -> SenderSettings {
    SenderSettings::parse("Notifications <no-reply@notify.test>", "notify.test").unwrap()
}

pub fn welcome() -> Rendered {
    Rendered::Email(EmailContent {
        subject: "Welcome, Ada".into(),
        text_body: "Hello Ada, your account is ready.".into(),
        html_body: "<p>Hello <b>Ada</b>, your account is ready.</p>".into(),
    })
}

/// A delivery of `content` to `target` with an unsubscribe link.
pub fn delivery<'a>(id: Uuid, target: &'a str, content: &'a Rendered) -> Delivery<'a> {
    Delivery {
        message: OutgoingMessage {
            notification_id: id,
            correlation_id: "corr-9",
            traceparent: None,
            target,
            platform: None,
            recipient_name: Some("Ada Lovelace"),
            content,
        },
        unsubscribe_url: Some(UNSUBSCRIBE),
        provider: None,
    }
}

/// A fake API answering one `POST {route}` with `template`, expected once.
pub async fn answering(route: &str, template: wiremock::ResponseTemplate) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(route))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// The failure of sending one welcome email to [`TO`] through `provider`.
pub async fn failure_of(provider: &impl Provider) -> ProviderFailure {
    let content = welcome();
    provider
        .deliver(&delivery(Uuid::new_v4(), TO, &content))
        .await
        .expect_err("the send should fail")
}

/// A transient failure that is an alert.
pub fn assert_alert(failure: &ProviderFailure) {
    assert!(failure.is_transient() && failure.alert, "{failure:?}");
}

/// A transient failure that is not an alert, with this retry-after.
pub fn assert_transient(failure: &ProviderFailure, retry_after: Option<Duration>) {
    assert!(failure.is_transient() && !failure.alert, "{failure:?}");
    assert_eq!(failure.retry_after, retry_after, "{failure:?}");
}

/// A port nothing listens on (not a dropped MockServer: wiremock hands its port to another test).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
