//! A real SMTP server in the test process: the `mailin` protocol engine (through
//! `smtp_sink::server`) on a free 127.0.0.1 port, recording every accepted message, with a
//! switch to refuse mail (`451` or `550`) or hang (no answer to `RCPT TO`), and an outage
//! (`stop`/`restart` on the same port).
//!
//! ```ignore
//! let smtp = TestSmtpServer::start();
//! // … point the provider at 127.0.0.1:{smtp.port()} and send …
//! let mails = smtp.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(mails[0].subject.as_deref(), Some("Welcome"));
//! ```

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use mail_parser::MessageParser;
use smtp_sink::{
    headers::unfold,
    server::{any_local_port, Envelope, MailHandler, Reply, SmtpServer},
};

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `250` to every recipient and message (the default).
    #[default]
    Accept,
    /// `451` to every recipient (`RCPT TO`) and message: a transient failure (greylisting,
    /// a full queue).
    TransientFailure,
    /// `550` to every recipient and message: a permanent failure (no such mailbox).
    PermanentFailure,
    /// No answer to `RCPT TO` while the mode lasts (a server that hangs); the session then
    /// goes on as the new mode says. Clients see their own timeout.
    Hang,
}

impl Mode {
    fn refusal(self) -> Option<Reply> {
        match self {
            Self::Accept | Self::Hang => None,
            Self::TransientFailure => Some(Reply::new(451, "4.3.0 try again later")),
            Self::PermanentFailure => Some(Reply::new(550, "5.1.1 mailbox unavailable")),
        }
    }
}

/// One accepted message: its envelope, its raw text and what the tests look at, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// `MAIL FROM`.
    pub from: String,
    /// The `RCPT TO`s.
    pub to: Vec<String>,
    /// The message as received (headers and body, dot-unstuffed).
    pub raw: Vec<u8>,
    /// Every header field in order, values unfolded onto one line (not decoded).
    pub headers: Vec<(String, String)>,
    /// The `Message-ID` header as written, angle brackets included.
    pub message_id: Option<String>,
    /// The decoded `Subject`.
    pub subject: Option<String>,
    /// The first `text/plain` part, decoded.
    pub text_body: Option<String>,
    /// The first `text/html` part, decoded.
    pub html_body: Option<String>,
}

impl ReceivedMail {
    fn parse(envelope: &Envelope, raw: &[u8]) -> Self {
        let mut mail = Self {
            from: envelope.from.clone(),
            to: envelope.to.clone(),
            raw: raw.to_vec(),
            headers: Vec::new(),
            message_id: None,
            subject: None,
            text_body: None,
            html_body: None,
        };
        if let Some(message) = MessageParser::default().parse(raw) {
            mail.headers = message
                .headers()
                .iter()
                .map(|h| {
                    let value = raw
                        .get(h.offset_start as usize..h.offset_end as usize)
                        .map(|v| unfold(&String::from_utf8_lossy(v)))
                        .unwrap_or_default();
                    (h.name().to_string(), value)
                })
                .collect();
            mail.message_id = mail.header("Message-ID").map(str::to_string);
            mail.subject = message.subject().map(str::to_string);
            // Only real parts: mail-parser would otherwise convert one kind into the other.
            if message.text_body_count() > 0 && has_part(&message, "plain") {
                mail.text_body = message.body_text(0).map(|b| b.into_owned());
            }
            if message.html_body_count() > 0 && has_part(&message, "html") {
                mail.html_body = message.body_html(0).map(|b| b.into_owned());
            }
        }
        mail
    }

    /// The first header field named `name` (case-insensitive), unfolded, not decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether the message has a part of type `text/{subtype}` (or is one).
fn has_part(message: &mail_parser::Message<'_>, subtype: &str) -> bool {
    use mail_parser::MimeHeaders;
    message.parts.iter().any(|part| {
        part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("text") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
        })
    })
}

#[derive(Default)]
struct Recorder {
    mode: Mutex<Mode>,
    messages: Mutex<Vec<ReceivedMail>>,
    refused: AtomicUsize,
    hung: AtomicUsize,
}

impl Recorder {
    fn mode(&self) -> MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn messages(&self) -> MutexGuard<'_, Vec<ReceivedMail>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse(&self) -> Option<Reply> {
        let refusal = self.mode().refusal();
        if refusal.is_some() {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        refusal
    }
}

impl MailHandler for Recorder {
    fn rcpt(&self, _to: &str) -> Reply {
        // One thread per session: hanging here holds only this session.
        let mut hung = false;
        while *self.mode() == Mode::Hang {
            if !hung {
                hung = true;
                self.hung.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.refuse().unwrap_or_else(|| Reply::ok("2.1.5 OK"))
    }

    fn message(&self, envelope: &Envelope, data: &[u8]) -> Reply {
        // The mode may have changed since RCPT.
        if let Some(refusal) = self.refuse() {
            return refusal;
        }
        let mail = ReceivedMail::parse(envelope, data);
        let mut messages = self.messages();
        messages.push(mail);
        Reply::ok(format!("2.0.0 OK: queued as test-{}", messages.len()))
    }
}

/// A real SMTP server for one test. Thread-safe (share it in an `Arc`); stops on drop.
pub struct TestSmtpServer {
    server: SmtpServer,
    recorder: Arc<Recorder>,
}

impl TestSmtpServer {
    /// Starts on a free port of 127.0.0.1, accepting everything.
    pub fn start() -> Self {
        let recorder = Arc::new(Recorder::default());
        let server = SmtpServer::start(
            any_local_port(),
            "test-smtp.local",
            Arc::clone(&recorder) as Arc<dyn MailHandler>,
        )
        .expect("test SMTP server starts");
        Self { server, recorder }
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> String {
        self.server.local_addr().ip().to_string()
    }

    /// The port (the same after a restart).
    pub fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    /// From now on, answer as `mode` says.
    pub fn set_mode(&self, mode: Mode) {
        *self.recorder.mode() = mode;
    }

    /// Every accepted message so far, in order of acceptance.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.recorder.messages().clone()
    }

    /// The `Message-ID`s of the accepted messages, in order (duplicates kept).
    pub fn message_ids(&self) -> Vec<String> {
        self.recorder
            .messages()
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect()
    }

    /// How many recipients and messages were refused because of the mode.
    pub fn refused(&self) -> usize {
        self.recorder.refused.load(Ordering::SeqCst)
    }

    /// How many recipients were held without an answer because of [`Mode::Hang`].
    pub fn hung(&self) -> usize {
        self.recorder.hung.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted and returns them all; panics after
    /// `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {n} message(s) on the test SMTP server \
                 (got {})",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An outage: the port refuses connections and open sessions are closed.
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Back after [`stop`](Self::stop), on the same port, keeping the messages received.
    pub fn restart(&self) {
        self.server.restart().expect("test SMTP server restarts on its port");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "From: a@x.test\r\nTo: b@y.test\r\nMessage-ID: <m1@notify.local>\r\n\
        Subject: Hello\r\nX-Notification-Id: 42\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
        --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n\
        --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--b--\r\n";

    #[test]
    fn a_multipart_message_is_parsed_into_headers_and_both_bodies() {
        let envelope = Envelope {
            from: "a@x.test".into(),
            to: vec!["b@y.test".into()],
        };

        let mail = ReceivedMail::parse(&envelope, RAW.as_bytes());

        assert_eq!(mail.message_id.as_deref(), Some("<m1@notify.local>"));
        assert_eq!(mail.subject.as_deref(), Some("Hello"));
        assert_eq!(mail.header("x-notification-id"), Some("42"));
        assert_eq!(mail.text_body.as_deref().map(str::trim), Some("plain text"));
        assert_eq!(mail.html_body.as_deref().map(str::trim), Some("<p>html</p>"));
    }

    #[test]
    fn a_plain_text_message_has_no_html_body() {
        let raw = "Subject: s\r\nContent-Type: text/plain\r\n\r\nonly text\r\n";

        let mail = ReceivedMail::parse(&Envelope::default(), raw.as_bytes());

        assert_eq!(mail.text_body.as_deref().map(str::trim), Some("only text"));
        assert_eq!(mail.html_body, None);
    }
}
