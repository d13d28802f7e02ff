//! The `smtp-sink` binary, started as a process, receiving mail from lettre.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use lettre::{
    message::{header::ContentType, Mailbox},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

/// The sink process, killed when dropped.
struct Sink {
    child: Child,
    stdout: BufReader<ChildStdout>,
    smtp_port: u16,
    http_port: u16,
}

impl Sink {
    fn spawn(fail_rate: &str) -> Self {
        let (smtp_port, http_port) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_smtp-sink"))
            .env("SMTP_SINK_ADDR", format!("127.0.0.1:{smtp_port}"))
            .env("SMTP_SINK_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("SMTP_SINK_FAIL_RATE", fail_rate)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("smtp-sink starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let sink = Self {
            child,
            stdout,
            smtp_port,
            http_port,
        };
        wait_until_listening(smtp_port);
        wait_until_listening(http_port);
        sink
    }

    fn next_log_line(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("a log line");
        serde_json::from_str(&line).expect("the log line is JSON")
    }

    fn stats(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).unwrap();
        stream.write_all(b"GET /stats HTTP/1.1\r\nHost: sink\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str(body).unwrap()
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(self.smtp_port)
            .timeout(Some(Duration::from_secs(5)))
            .build()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "smtp-sink did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn email(message_id: &str) -> Message {
    Message::builder()
        .message_id(Some(message_id.to_string()))
        .from("Notifications <no-reply@notify.local>".parse::<Mailbox>().unwrap())
        .to("ada@example.test".parse::<Mailbox>().unwrap())
        .subject("Your order shipped")
        .header(ContentType::TEXT_PLAIN)
        .body("It is on its way.".to_string())
        .unwrap()
}

#[tokio::test]
async fn a_received_mail_is_logged_as_json_and_counted() {
    let mut sink = Sink::spawn("0");
    let id = format!("<{}@notify.local>", uuid::Uuid::new_v4());

    let response = sink.transport().send(email(&id)).await.unwrap();

    assert_eq!(response.code().to_string(), "250");
    let line = sink.next_log_line();
    assert_eq!(line["status"], "accepted");
    assert_eq!(line["message_id"], id.as_str());
    assert_eq!(line["to"], serde_json::json!(["ada@example.test"]));
    assert_eq!(line["subject"], "Your order shipped");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        sink.stats(),
        serde_json::json!({"received": 1, "unique_message_ids": 1, "deferred": 0, "push_received": 0})
    );
}

#[tokio::test]
async fn with_a_full_fail_rate_the_first_attempt_is_deferred_and_the_retry_accepted() {
    let mut sink = Sink::spawn("1.0");
    let id = format!("<{}@notify.local>", uuid::Uuid::new_v4());
    let transport = sink.transport();

    let first = transport.send(email(&id)).await.unwrap_err();
    let retry = transport.send(email(&id)).await;

    assert_eq!(first.status().map(|c| c.to_string()).as_deref(), Some("451"));
    assert!(retry.is_ok(), "{retry:?}");
    assert_eq!(sink.next_log_line()["status"], "deferred");
    assert_eq!(sink.next_log_line()["status"], "accepted");
    assert_eq!(
        sink.stats(),
        serde_json::json!({"received": 1, "unique_message_ids": 1, "deferred": 1, "push_received": 0})
    );
}
