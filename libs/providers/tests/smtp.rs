//! `SmtpProvider` against a real SMTP server in the test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use notify_providers::{SmtpProvider, SmtpSettings};
use notify_templates::{EmailContent, PushContent, Rendered};
use notify_worker::provider::{message_id, OutgoingMessage, Provider, ProviderError};
use smtp_sink::{
    headers::Summary,
    server::{any_local_port, Envelope, MailHandler, Reply, SmtpServer},
};
use test_support::smtp::{Mode, TestSmtpServer};
use uuid::Uuid;

fn provider(server: &TestSmtpServer) -> SmtpProvider {
    SmtpProvider::new(&SmtpSettings {
        host: server.host(),
        port: server.port(),
        timeout: Duration::from_secs(3),
        ..SmtpSettings::default()
    })
    .unwrap()
}

fn welcome() -> Rendered {
    Rendered::Email(EmailContent {
        subject: "Welcome, Ada — café time".into(),
        text_body: "Hello Ada,\nyour account is ready.".into(),
        html_body: "<p>Hello <b>Ada</b>, your account is ready.</p>".into(),
    })
}

fn to<'a>(id: Uuid, target: &'a str, content: &'a Rendered) -> OutgoingMessage<'a> {
    OutgoingMessage {
        notification_id: id,
        correlation_id: "corr-123",
        traceparent: None,
        target,
        platform: None,
        recipient_name: Some("Ada Lovelace"),
        content,
    }
}

#[tokio::test]
async fn an_email_arrives_once_with_both_parts_and_the_deterministic_message_id() {
    let server = TestSmtpServer::start();
    let smtp = provider(&server);
    let (id, content) = (Uuid::new_v4(), welcome());

    let receipt = smtp.send(&to(id, "ada@example.test", &content)).await.unwrap();

    let mails = server.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["ada@example.test".to_string()]);
    assert_eq!(mail.from, "no-reply@notify.local");
    assert_eq!(mail.subject.as_deref(), Some("Welcome, Ada — café time"));
    // Email lines end in CRLF on the wire.
    assert_eq!(
        mail.text_body.as_deref().map(|t| t.trim_end().replace("\r\n", "\n")),
        Some("Hello Ada,\nyour account is ready.".to_string())
    );
    assert_eq!(
        mail.html_body.as_deref().map(str::trim_end),
        Some("<p>Hello <b>Ada</b>, your account is ready.</p>")
    );
    assert_eq!(
        mail.message_id.as_deref(),
        Some(message_id(id, "notify.local").as_str())
    );
    assert_eq!(mail.header("X-Notification-Id"), Some(id.to_string().as_str()));
    assert_eq!(mail.header("X-Correlation-Id"), Some("corr-123"));
    assert!(mail.header("To").is_some_and(|t| t.contains("Ada Lovelace")));
    assert!(receipt.provider_message_id.is_some_and(|r| r.contains("queued as")));
}

#[tokio::test]
async fn a_redelivery_carries_the_same_message_id() {
    let server = TestSmtpServer::start();
    let smtp = provider(&server);
    let (id, content) = (Uuid::new_v4(), welcome());

    smtp.send(&to(id, "ada@example.test", &content)).await.unwrap();
    smtp.send(&to(id, "ada@example.test", &content)).await.unwrap();

    let ids = server.message_ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn a_451_is_transient() {
    let server = TestSmtpServer::start();
    server.set_mode(Mode::TransientFailure);
    let content = welcome();

    let err = provider(&server)
        .send(&to(Uuid::new_v4(), "ada@example.test", &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
    assert!(err.message().contains("451"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_550_is_permanent() {
    let server = TestSmtpServer::start();
    server.set_mode(Mode::PermanentFailure);
    let content = welcome();

    let err = provider(&server)
        .send(&to(Uuid::new_v4(), "nobody@example.test", &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Permanent(_)), "{err}");
    assert!(err.message().contains("550"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_is_down_is_transient() {
    let server = TestSmtpServer::start();
    let smtp = provider(&server);
    server.stop();
    let content = welcome();

    let err = smtp
        .send(&to(Uuid::new_v4(), "ada@example.test", &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_transient() {
    // The kernel completes the TCP handshake; no greeting ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp = SmtpProvider::new(&SmtpSettings {
        port: silent.local_addr().unwrap().port(),
        timeout: Duration::from_millis(300),
        ..SmtpSettings::default()
    })
    .unwrap();
    let content = welcome();

    let err = smtp
        .send(&to(Uuid::new_v4(), "ada@example.test", &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
}

/// Answers the first message only after a second; the others at once, naming their id.
struct SlowFirstAnswer(AtomicUsize);

impl MailHandler for SlowFirstAnswer {
    fn message(&self, _envelope: &Envelope, data: &[u8]) -> Reply {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let id = Summary::parse(data).message_id.unwrap_or_default();
        Reply::ok(format!("queued as {id}"))
    }
}

#[tokio::test]
async fn after_a_timed_out_send_the_next_message_gets_its_own_answer() {
    let server = SmtpServer::start(any_local_port(), "slow", Arc::new(SlowFirstAnswer(AtomicUsize::new(0)))).unwrap();
    let smtp = SmtpProvider::new(&SmtpSettings {
        port: server.local_addr().port(),
        timeout: Duration::from_millis(300),
        ..SmtpSettings::default()
    })
    .unwrap();
    let content = welcome();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());

    let timed_out = smtp.send(&to(first, "ada@example.test", &content)).await;
    let next = smtp.send(&to(second, "ada@example.test", &content)).await.unwrap();

    assert!(matches!(timed_out, Err(ProviderError::Transient(_))), "{timed_out:?}");
    // Reusing the first connection would have read the first message's late "250" here.
    assert_eq!(
        next.provider_message_id,
        Some(format!("queued as {}", message_id(second, "notify.local")))
    );
}

#[tokio::test]
async fn sending_works_again_once_the_server_is_back() {
    let server = TestSmtpServer::start();
    let smtp = provider(&server);
    let content = welcome();
    smtp.send(&to(Uuid::new_v4(), "ada@example.test", &content))
        .await
        .unwrap();

    server.stop();
    let during = smtp.send(&to(Uuid::new_v4(), "ada@example.test", &content)).await;
    server.restart();
    let after = smtp.send(&to(Uuid::new_v4(), "ada@example.test", &content)).await;

    assert!(matches!(during, Err(ProviderError::Transient(_))), "{during:?}");
    assert!(after.is_ok(), "{after:?}");
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn an_invalid_address_is_permanent_and_nothing_is_sent() {
    let server = TestSmtpServer::start();
    let content = welcome();

    let err = provider(&server)
        .send(&to(Uuid::new_v4(), "not an address", &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Permanent(_)), "{err}");
    assert!(err.message().contains("invalid recipient address"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn push_content_is_permanent_and_nothing_is_sent() {
    let server = TestSmtpServer::start();
    let content = Rendered::Push(PushContent {
        title: "t".into(),
        body: "b".into(),
        image_url: None,
        link_url: None,
    });

    let err = provider(&server)
        .send(&to(Uuid::new_v4(), "ada@example.test", &content))
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::Permanent(_)), "{err}");
    assert!(err.message().contains("wrong content"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_email_without_html_is_sent_as_plain_text() {
    let server = TestSmtpServer::start();
    let content = Rendered::Email(EmailContent {
        subject: "Plain".into(),
        text_body: "Just text.".into(),
        html_body: "  ".into(),
    });

    provider(&server)
        .send(&to(Uuid::new_v4(), "ada@example.test", &content))
        .await
        .unwrap();

    let mail = &server.wait_for(1, Duration::from_secs(5)).await[0];
    assert_eq!(mail.text_body.as_deref().map(str::trim_end), Some("Just text."));
    assert_eq!(mail.html_body, None);
}
