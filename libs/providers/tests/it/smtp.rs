//! `SmtpProvider` against a real SMTP server in the test process.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use notify_providers::{DkimSettings, SmtpProvider, SmtpSettings};
use notify_templates::{EmailContent, PushContent, Rendered};
use notify_worker::provider::{message_id, Delivery, FailureKind, OutgoingMessage, Provider, ProviderError};
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
        ..PushContent::default()
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

const DKIM_PRIVATE_KEY: &str = include_str!("../keys/test-only-pkcs1.pem");
const DKIM_PUBLIC_KEY: &str = include_str!("../keys/test-only-public.pem");

/// One header field unfolded, for DKIM's relaxed canonicalization (RFC 6376 §3.4.2).
fn relaxed_header(name: &str, value: &str) -> String {
    let value = value.replace("\r\n", "");
    let value = value
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{}", name.trim().to_ascii_lowercase(), value.trim())
}

/// The body in DKIM's relaxed canonicalization (RFC 6376 §3.4.4): white-space runs become
/// one space, none at a line's end, no empty lines at the end.
fn relaxed_body(body: &str) -> String {
    let mut lines: Vec<String> = body
        .split("\r\n")
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            for c in line.chars() {
                let space = c == ' ' || c == '\t';
                if !(space && out.ends_with(' ')) {
                    out.push(if space { ' ' } else { c });
                }
            }
            out.trim_end_matches(' ').to_string()
        })
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

/// Header fields of a raw message, in order, with their raw (folded) values.
fn header_fields(head: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().unwrap();
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    fields
}

/// Verifies the message's DKIM-Signature (rsa-sha256, relaxed/relaxed) with `public_pem`,
/// as a receiver would after fetching the key from DNS; returns the signature's tags.
fn verify_dkim(raw: &[u8], public_pem: &str) -> std::collections::HashMap<String, String> {
    use base64::Engine as _;
    use sha2::Digest as _;

    let raw = std::str::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let fields = header_fields(head);
    let (sig_name, sig_value) = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        .expect("a DKIM-Signature header");
    let tags: std::collections::HashMap<String, String> = sig_value
        .replace("\r\n", "")
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.split_whitespace().collect::<String>()))
        .collect();
    assert_eq!(tags["a"], "rsa-sha256");
    assert_eq!(tags["c"], "relaxed/relaxed");

    // The body hash.
    let body_hash = sha2::Sha256::digest(relaxed_body(body).as_bytes());
    assert_eq!(
        tags["bh"],
        base64::engine::general_purpose::STANDARD.encode(body_hash),
        "body hash"
    );

    // The signed data: each header named in h= (the last instance), then the signature's own
    // header with b= emptied and no final CRLF.
    let mut data = String::new();
    for name in tags["h"].split(':') {
        if let Some((n, v)) = fields.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name.trim())) {
            data.push_str(&relaxed_header(n, v));
            data.push_str("\r\n");
        }
    }
    let unfolded = sig_value.replace("\r\n", "");
    let b_start = unfolded
        .split(';')
        .scan(0, |pos, tag| {
            let start = *pos;
            *pos += tag.len() + 1;
            Some((start, tag))
        })
        .find(|(_, tag)| tag.trim_start().starts_with("b="))
        .map(|(start, tag)| start + tag.find("b=").unwrap() + 2)
        .unwrap();
    let b_end = unfolded[b_start..].find(';').map_or(unfolded.len(), |i| b_start + i);
    let without_b = format!("{}{}", &unfolded[..b_start], &unfolded[b_end..]);
    data.push_str(&relaxed_header(sig_name, &without_b));

    let signature = base64::engine::general_purpose::STANDARD.decode(&tags["b"]).unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    assert!(
        jsonwebtoken::crypto::verify(&signature, data.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap(),
        "the DKIM signature does not verify over:\n{data}"
    );
    tags
}

fn dkim_provider(server: &TestSmtpServer) -> SmtpProvider {
    SmtpProvider::new(&SmtpSettings {
        host: server.host(),
        port: server.port(),
        timeout: Duration::from_secs(3),
        dkim: Some(DkimSettings {
            private_key: secrecy::SecretString::from(DKIM_PRIVATE_KEY),
            selector: "notify2026".into(),
            domain: "notify.local".into(),
        }),
        ..SmtpSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_signed_email_carries_a_dkim_signature_that_verifies_with_the_public_key() {
    let server = TestSmtpServer::start();
    let (id, content) = (Uuid::new_v4(), welcome());
    let delivery = Delivery {
        message: to(id, "ada@example.test", &content),
        unsubscribe_url: Some("https://users.notify.test/unsubscribe?t=abc"),
        provider: None,
    };

    dkim_provider(&server).deliver(&delivery).await.unwrap();

    let mails = server.wait_for(1, Duration::from_secs(5)).await;
    let tags = verify_dkim(&mails[0].raw, DKIM_PUBLIC_KEY);
    assert_eq!(tags["d"], "notify.local");
    assert_eq!(tags["s"], "notify2026");
    let signed: Vec<String> = tags["h"].split(':').map(str::to_ascii_lowercase).collect();
    for header in [
        "from",
        "to",
        "subject",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(
            signed.contains(&header.to_string()),
            "{header} is not signed: {signed:?}"
        );
    }
}

#[tokio::test]
async fn a_tampered_signed_email_does_not_verify() {
    let server = TestSmtpServer::start();
    let content = welcome();

    dkim_provider(&server)
        .deliver(&Delivery::from(to(Uuid::new_v4(), "ada@example.test", &content)))
        .await
        .unwrap();

    let mails = server.wait_for(1, Duration::from_secs(5)).await;
    let tampered = String::from_utf8(mails[0].raw.clone())
        .unwrap()
        .replace("Subject: Welcome", "Subject: Welcom3");
    let verified = std::panic::catch_unwind(|| verify_dkim(tampered.as_bytes(), DKIM_PUBLIC_KEY));
    assert!(verified.is_err(), "a changed subject still verified");
}

#[tokio::test]
async fn an_unsubscribe_link_becomes_the_rfc_8058_headers() {
    let server = TestSmtpServer::start();
    let content = welcome();
    let delivery = Delivery {
        message: to(Uuid::new_v4(), "ada@example.test", &content),
        unsubscribe_url: Some("https://users.notify.test/unsubscribe?t=abc"),
        provider: None,
    };

    provider(&server).deliver(&delivery).await.unwrap();

    let mails = server.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        mails[0].header("List-Unsubscribe"),
        Some("<https://users.notify.test/unsubscribe?t=abc>")
    );
    assert_eq!(
        mails[0].header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_for_that_recipient_only() {
    let server = TestSmtpServer::start();
    server.set_mode(Mode::PermanentFailure);
    let content = welcome();

    let failure = provider(&server)
        .deliver(&Delivery::from(to(Uuid::new_v4(), "nobody@example.test", &content)))
        .await
        .unwrap_err();

    assert_eq!(failure.kind, FailureKind::Recipient, "{failure:?}");
}
