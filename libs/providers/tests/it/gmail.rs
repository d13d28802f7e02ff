//! `GmailProvider` and the service-account `TokenSource` against a wiremock server playing
//! both Google's token endpoint and the Gmail API.

use std::{sync::Arc, time::Duration};

use crate::common::{
    assert_alert, assert_transient, delivery, failure_of,
    google::{form, key, requests_to, token_endpoint, verified_claims, CLIENT_EMAIL},
    sender, welcome, TO, UNSUBSCRIBE,
};
use base64::Engine as _;
use notify_providers::{
    breaker::ManualClock,
    gmail::GMAIL_SEND_SCOPE,
    google_auth::{ServiceAccountKey, TokenSource, JWT_BEARER},
    GmailProvider, GmailSettings,
};
use notify_worker::provider::{message_id, FailureKind, Provider};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, ResponseTemplate,
};

const SEND: &str = "/gmail/v1/users/sender@notify.test/messages/send";

fn settings(server: &MockServer, timeout: Duration) -> GmailSettings {
    GmailSettings {
        key: key(server),
        user: "sender@notify.test".into(),
        base_url: server.uri(),
        timeout,
        sender: sender(),
    }
}

fn provider_with_clock(server: &MockServer, clock: ManualClock) -> GmailProvider {
    let settings = settings(server, Duration::from_secs(5));
    let tokens = TokenSource::with_clock(
        settings.key.clone(),
        GMAIL_SEND_SCOPE,
        Some(settings.user.clone()),
        settings.timeout,
        Arc::new(clock),
    )
    .unwrap();
    GmailProvider::with_tokens(&settings, Arc::new(tokens)).unwrap()
}

fn provider(server: &MockServer) -> GmailProvider {
    provider_with_clock(server, ManualClock::default())
}

async fn send_answering(server: &MockServer, template: ResponseTemplate, expected: u64) {
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(template)
        .expect(expected)
        .mount(server)
        .await;
}

/// The `Authorization` header of each send, in order.
async fn send_authorizations(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests_to(&requests, SEND)
        .iter()
        .map(|r| r.headers.get("authorization").unwrap().to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_email_is_sent_as_raw_mime_with_a_token_from_a_signed_assertion() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"id": "18c0f2", "threadId": "18c0f2", "labelIds": ["SENT"]})),
        1,
    )
    .await;
    let (id, content) = (Uuid::new_v4(), welcome());

    let receipt = provider(&server).deliver(&delivery(id, TO, &content)).await.unwrap();

    assert_eq!(receipt.provider_message_id.as_deref(), Some("18c0f2"));
    assert_eq!(receipt.provider, Some("gmail"));
    let requests = server.received_requests().await.unwrap();
    // The token exchange: a jwt-bearer grant with an assertion signed by the key.
    let token_request = requests_to(&requests, "/token")[0];
    let fields = form(token_request);
    assert_eq!(fields["grant_type"], JWT_BEARER);
    let token_uri = format!("{}/token", server.uri());
    let claims = verified_claims(&fields["assertion"], &token_uri);
    assert_eq!(claims.iss, CLIENT_EMAIL);
    assert_eq!(claims.sub.as_deref(), Some("sender@notify.test"));
    assert_eq!(claims.scope, GMAIL_SEND_SCOPE);
    assert_eq!(claims.aud, token_uri);
    assert_eq!(claims.exp, claims.iat + 3600);
    // The send: the token as bearer, the raw RFC 822 message in base64url.
    let send = requests_to(&requests, SEND)[0];
    assert_eq!(send.headers.get("authorization").unwrap(), "Bearer ya29.token-1");
    let body: serde_json::Value = serde_json::from_slice(&send.body).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(body["raw"].as_str().unwrap())
        .unwrap();
    let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(mail.subject(), Some("Welcome, Ada"));
    assert_eq!(mail.to().unwrap().first().unwrap().address(), Some(TO));
    assert_eq!(
        mail.from().unwrap().first().unwrap().address(),
        Some("no-reply@notify.test")
    );
    assert_eq!(
        format!("<{}>", mail.message_id().unwrap()),
        message_id(id, "notify.test")
    );
    assert_eq!(
        mail.body_text(0).unwrap().trim_end(),
        "Hello Ada, your account is ready."
    );
    assert_eq!(
        mail.body_html(0).unwrap().trim_end(),
        "<p>Hello <b>Ada</b>, your account is ready.</p>"
    );
    let text_header = |name: &str| {
        mail.header_raw(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} header"))
    };
    assert_eq!(text_header("X-Notification-Id"), id.to_string());
    assert_eq!(text_header("List-Unsubscribe"), format!("<{UNSUBSCRIBE}>"));
    assert_eq!(text_header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
}

#[tokio::test]
async fn the_token_is_reused_until_shortly_before_it_expires_then_refreshed() {
    let server = MockServer::start().await;
    token_endpoint(&server, 2).await;
    send_answering(&server, ResponseTemplate::new(200).set_body_json(json!({"id": "m"})), 3).await;
    let clock = ManualClock::default();
    let gmail = provider_with_clock(&server, clock.clone());
    let content = welcome();

    gmail.deliver(&delivery(Uuid::new_v4(), TO, &content)).await.unwrap();
    clock.advance(Duration::from_secs(3500));
    gmail.deliver(&delivery(Uuid::new_v4(), TO, &content)).await.unwrap();
    clock.advance(Duration::from_secs(40)); // 3540 s: within a minute of the 3599 s expiry.
    gmail.deliver(&delivery(Uuid::new_v4(), TO, &content)).await.unwrap();

    let bearer = send_authorizations(&server).await;
    assert_eq!(
        bearer,
        ["Bearer ya29.token-1", "Bearer ya29.token-1", "Bearer ya29.token-2"]
    );
}

#[tokio::test]
async fn concurrent_sends_share_one_token_request() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(&server, ResponseTemplate::new(200).set_body_json(json!({"id": "m"})), 8).await;
    let gmail = provider(&server);
    let content = welcome();
    let ids: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();

    let results = futures::future::join_all(ids.iter().map(|id| {
        let (gmail, d) = (&gmail, delivery(*id, TO, &content));
        async move { gmail.deliver(&d).await }
    }))
    .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[tokio::test]
async fn an_invalid_recipient_is_permanent_for_that_recipient() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400, "message": "Invalid To header",
            "errors": [{"message": "Invalid To header", "domain": "global", "reason": "invalidArgument"}],
            "status": "INVALID_ARGUMENT"}})),
        1,
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_eq!(failure.kind, FailureKind::Recipient, "{failure:?}");
}

#[tokio::test]
async fn a_401_gets_one_new_token_and_one_retry_then_is_an_alert() {
    let server = MockServer::start().await;
    token_endpoint(&server, 2).await;
    send_answering(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": {"code": 401,
            "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})),
        2,
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_alert(&failure);
    let bearer = send_authorizations(&server).await;
    assert_eq!(bearer, ["Bearer ya29.token-1", "Bearer ya29.token-2"]);
}

#[tokio::test]
async fn a_401_that_a_new_token_cures_is_delivered() {
    let server = MockServer::start().await;
    token_endpoint(&server, 2).await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(header("authorization", "Bearer ya29.token-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(header("authorization", "Bearer ya29.token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "after-refresh"})))
        .expect(1)
        .mount(&server)
        .await;
    let content = welcome();

    let receipt = provider(&server)
        .deliver(&delivery(Uuid::new_v4(), TO, &content))
        .await
        .unwrap();

    assert_eq!(receipt.provider_message_id.as_deref(), Some("after-refresh"));
}

#[tokio::test]
async fn a_refused_delegation_at_the_token_endpoint_is_an_alert_and_nothing_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "unauthorized_client",
            "error_description": "Client is unauthorized to retrieve access tokens using this method.",
        })))
        .expect(1)
        .mount(&server)
        .await;
    send_answering(&server, ResponseTemplate::new(200), 0).await;
    let failure = failure_of(&provider(&server)).await;

    assert_alert(&failure);
    assert!(failure.message.contains("unauthorized_client"), "{failure:?}");
}

#[tokio::test]
async fn a_403_for_access_is_an_alert() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(
        &server,
        ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [{"reason": "insufficientPermissions"}], "status": "PERMISSION_DENIED"}})),
        1,
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_alert(&failure);
}

#[tokio::test]
async fn a_user_rate_limit_is_transient_with_its_retry_after() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(
        &server,
        ResponseTemplate::new(403).insert_header("retry-after", "12").set_body_json(json!({"error": {
            "code": 403, "message": "User-rate limit exceeded.",
            "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User-rate limit exceeded."}]}})),
        1,
    )
    .await;
    let failure = failure_of(&provider(&server)).await;

    assert_transient(&failure, Some(Duration::from_secs(12)));
}

#[tokio::test]
async fn throttling_and_server_errors_are_transient() {
    for (status, retry_after) in [(429, Some(Duration::from_secs(3))), (500, None), (503, None)] {
        let server = MockServer::start().await;
        token_endpoint(&server, 1).await;
        let mut template = ResponseTemplate::new(status)
            .set_body_json(json!({"error": {"code": status, "message": "Backend Error", "status": "UNAVAILABLE"}}));
        if let Some(wait) = retry_after {
            template = template.insert_header("retry-after", wait.as_secs().to_string());
        }
        send_answering(&server, template, 1).await;
        let failure = failure_of(&provider(&server)).await;

        assert_transient(&failure, retry_after);
    }
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_transient() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    send_answering(&server, ResponseTemplate::new(200).set_delay(Duration::from_secs(3)), 1).await;
    let settings = settings(&server, Duration::from_millis(500));
    let failure = failure_of(&GmailProvider::new(&settings).unwrap()).await;

    assert_transient(&failure, None);
}

#[tokio::test]
async fn a_token_for_fcm_has_no_subject() {
    let server = MockServer::start().await;
    token_endpoint(&server, 1).await;
    let scope = "https://www.googleapis.com/auth/firebase.messaging";
    let tokens = TokenSource::new(key(&server), scope, None, Duration::from_secs(5)).unwrap();

    let token = tokens.access_token().await.unwrap();

    assert_eq!(token.expose_secret(), "ya29.token-1");
    let requests = server.received_requests().await.unwrap();
    let claims = verified_claims(&form(&requests[0])["assertion"], &format!("{}/token", server.uri()));
    assert_eq!(claims.sub, None);
    assert_eq!(claims.scope, scope);
}

#[test]
fn a_key_that_is_not_a_service_account_key_names_its_variable_and_hides_its_content() {
    let err = ServiceAccountKey::parse(
        r#"{"client_email": "a@b", "private_key": "secret-material"}"#,
        "APP_GMAIL_SERVICE_ACCOUNT_JSON",
    )
    .unwrap_err()
    .to_string();

    assert!(err.contains("APP_GMAIL_SERVICE_ACCOUNT_JSON"), "{err}");
    assert!(!err.contains("secret-material"), "{err}");
}
