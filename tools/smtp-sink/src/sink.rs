//! The sink: accepts every message (or defers a chosen fraction of first attempts), logs
//! each as one JSON line on stdout, and serves its counters on `GET /stats`.
//!
//! Its HTTP port also plays FCM for `make run`: Google's token endpoint (`POST /token`
//! hands out a local access token to any assertion) and the HTTP v1 send call
//! (`POST /v1/projects/{project}/messages:send` with a bearer token answers
//! `{"name": "projects/{project}/messages/{n}"}` and logs the message as a JSON line). It
//! checks neither signature nor token: it stands in for delivery, not for Google's checks.

use std::{
    collections::HashSet,
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context;
use notify_kit::settings::{self, SettingsError};
use serde::Serialize;

use crate::{
    headers,
    server::{Envelope, MailHandler, Reply, SmtpServer},
};

/// The sink's settings, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `SMTP_SINK_ADDR`: where the SMTP server listens (default `127.0.0.1:2525`).
    pub smtp_addr: String,
    /// `SMTP_SINK_HTTP_ADDR`: where `GET /stats` is served (default `127.0.0.1:2526`).
    pub http_addr: String,
    /// `SMTP_SINK_FAIL_RATE`: the fraction (0.0–1.0, default 0) of messages whose *first*
    /// attempt is answered `451`, chosen by a hash of the Message-ID, so a retry of the
    /// same message is accepted. For benchmarks of the retry path.
    pub fail_rate: f64,
}

impl Settings {
    /// Reads the settings; a malformed value is an error naming its variable.
    pub fn from_env() -> Result<Self, SettingsError> {
        let fail_rate = settings::parse("SMTP_SINK_FAIL_RATE", 0.0_f64)?;
        if !(0.0..=1.0).contains(&fail_rate) {
            return Err(SettingsError::invalid(
                "SMTP_SINK_FAIL_RATE",
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(Self {
            smtp_addr: settings::string("SMTP_SINK_ADDR", "127.0.0.1:2525"),
            http_addr: settings::string("SMTP_SINK_HTTP_ADDR", "127.0.0.1:2526"),
            fail_rate,
        })
    }

    /// Free ports on 127.0.0.1 and no failures: for tests.
    pub fn for_tests() -> Self {
        Self {
            smtp_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            fail_rate: 0.0,
        }
    }
}

/// The counters served on `GET /stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Messages accepted (`250`).
    pub received: u64,
    /// Distinct Message-IDs among the accepted messages: `received - unique_message_ids`
    /// is the number of duplicate deliveries.
    pub unique_message_ids: u64,
    /// First attempts answered `451` because of `SMTP_SINK_FAIL_RATE`.
    pub deferred: u64,
    /// Push messages accepted by the FCM stand-in.
    pub push_received: u64,
}

/// The running sink: SMTP server and stats endpoint. Stops when dropped.
pub struct Application {
    smtp: SmtpServer,
    http: HttpStats,
    state: Arc<SinkState>,
}

impl Application {
    /// Binds both listeners and starts serving.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = Arc::new(SinkState {
            fail_rate: settings.fail_rate,
            counters: Mutex::default(),
            log_to_stdout: true,
        });
        let smtp = SmtpServer::start(
            settings.smtp_addr.as_str(),
            "smtp-sink",
            Arc::clone(&state) as Arc<dyn MailHandler>,
        )
        .with_context(|| format!("failed to listen for SMTP on {}", settings.smtp_addr))?;
        let http = HttpStats::start(&settings.http_addr, Arc::clone(&state))
            .with_context(|| format!("failed to listen for HTTP on {}", settings.http_addr))?;
        Ok(Self { smtp, http, state })
    }

    /// The SMTP server's address.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp.local_addr()
    }

    /// The stats endpoint's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.addr
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Stops both servers (also done on drop).
    pub fn stop(&self) {
        self.smtp.stop();
        self.http.stop();
    }
}

#[derive(Default)]
struct Counters {
    received: u64,
    push_received: u64,
    deferred: u64,
    accepted_ids: HashSet<String>,
    /// Ids whose first attempt has been seen (accepted or deferred); kept only when
    /// failures are injected.
    attempted_ids: HashSet<String>,
}

struct SinkState {
    fail_rate: f64,
    counters: Mutex<Counters>,
    /// Whether to print the JSON lines (the unit tests keep stdout quiet).
    log_to_stdout: bool,
}

impl SinkState {
    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> Stats {
        let c = self.counters();
        Stats {
            received: c.received,
            unique_message_ids: c.accepted_ids.len() as u64,
            deferred: c.deferred,
            push_received: c.push_received,
        }
    }
}

#[derive(Serialize)]
struct LogLine<'a> {
    time: String,
    status: &'static str,
    message_id: Option<&'a str>,
    from: &'a str,
    to: &'a [String],
    subject: Option<&'a str>,
    size: usize,
}

impl MailHandler for SinkState {
    fn message(&self, envelope: &Envelope, data: &[u8]) -> Reply {
        let parsed = headers::Summary::parse(data);
        let message_id = parsed.message_id.as_deref();
        let deferred = {
            let mut c = self.counters();
            let deferred = self.fail_rate > 0.0 && {
                // Without a Message-ID the message itself is the key.
                let key = message_id.map_or_else(|| fnv1a(data).to_string(), str::to_string);
                let first_attempt = c.attempted_ids.insert(key.clone());
                first_attempt && fraction(&key) < self.fail_rate
            };
            if deferred {
                c.deferred += 1;
            } else {
                c.received += 1;
                if let Some(id) = message_id {
                    c.accepted_ids.insert(id.to_string());
                }
            }
            deferred
        };
        if self.log_to_stdout {
            let line = LogLine {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                status: if deferred { "deferred" } else { "accepted" },
                message_id,
                from: &envelope.from,
                to: &envelope.to,
                subject: parsed.subject.as_deref(),
                size: data.len(),
            };
            if let Ok(json) = serde_json::to_string(&line) {
                // A closed stdout must not stop the sink from answering.
                let _ = writeln!(io::stdout().lock(), "{json}");
            }
        }
        if deferred {
            Reply::new(451, "4.7.1 greylisted by smtp-sink, try again later")
        } else {
            Reply::ok(format!("2.0.0 queued as {}", message_id.unwrap_or("(no message-id)")))
        }
    }
}

/// FNV-1a, 64 bits: a stable hash (the same on every run and machine).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where `key` falls in [0, 1), uniformly.
fn fraction(key: &str) -> f64 {
    (fnv1a(key.as_bytes()) >> 11) as f64 / (1_u64 << 53) as f64
}

/// A small HTTP server on a thread: `GET /stats`, `GET /health` and the FCM stand-in.
struct HttpStats {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl HttpStats {
    fn start(addr: &str, state: Arc<SinkState>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name("smtp-sink-http".into()).spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        // One request per connection, answered inline: it is a counter.
                        Ok((stream, _)) => drop(answer(stream, &state)),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        })?;
        Ok(Self {
            addr,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpStats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Largest request body read (an FCM message is at most 4 KiB of payload).
const MAX_BODY: usize = 64 * 1024;

fn answer(stream: TcpStream, state: &SinkState) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    let mut authorized = false;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            } else if name == "authorization" {
                authorized = value.starts_with("Bearer ");
            }
        }
        header.clear();
    }
    let mut body = vec![0u8; content_length.min(MAX_BODY)];
    io::Read::read_exact(&mut reader, &mut body)?;
    let mut parts = request_line.split_whitespace();
    let (status, content_type, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/stats")) => (
            "200 OK",
            "application/json",
            serde_json::to_string(&state.stats()).unwrap_or_default(),
        ),
        (Some("GET"), Some("/health")) => ("200 OK", "text/plain", "ok".to_string()),
        (Some("POST"), Some("/token")) => (
            "200 OK",
            "application/json",
            serde_json::json!({"access_token": "smtp-sink-local", "expires_in": 3600, "token_type": "Bearer"})
                .to_string(),
        ),
        (Some("POST"), Some(path)) if fcm_project(path).is_some() => {
            if authorized {
                let project = fcm_project(path).unwrap_or_default();
                ("200 OK", "application/json", state.push(project, &body))
            } else {
                (
                    "401 Unauthorized",
                    "application/json",
                    fcm_error(401, "UNAUTHENTICATED"),
                )
            }
        }
        _ => ("404 Not Found", "text/plain", "not found".to_string()),
    };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// The project of an FCM HTTP v1 send path (`/v1/projects/{project}/messages:send`).
fn fcm_project(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/projects/")?
        .strip_suffix("/messages:send")
        .filter(|p| !p.is_empty() && !p.contains('/'))
}

fn fcm_error(code: u16, status: &str) -> String {
    serde_json::json!({"error": {"code": code, "status": status, "message": status}}).to_string()
}

#[derive(Serialize)]
struct PushLine<'a> {
    time: String,
    status: &'static str,
    channel: &'static str,
    project: &'a str,
    token: Option<&'a str>,
    title: Option<&'a str>,
    notification_id: Option<&'a str>,
}

impl SinkState {
    /// Accepts one FCM message: counts it, logs it, answers with its name.
    fn push(&self, project: &str, body: &[u8]) -> String {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let message = &json["message"];
        let n = {
            let mut c = self.counters();
            c.push_received += 1;
            c.push_received
        };
        if self.log_to_stdout {
            let line = PushLine {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                status: "accepted",
                channel: "push",
                project,
                token: message["token"].as_str(),
                title: message["notification"]["title"].as_str(),
                notification_id: message["data"]["notification_id"].as_str(),
            };
            if let Ok(json) = serde_json::to_string(&line) {
                let _ = writeln!(io::stdout().lock(), "{json}");
            }
        }
        serde_json::json!({"name": format!("projects/{project}/messages/{n}")}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(fail_rate: f64) -> SinkState {
        SinkState {
            fail_rate,
            counters: Mutex::default(),
            log_to_stdout: false,
        }
    }

    fn mail(id: &str) -> Vec<u8> {
        format!("Message-ID: <{id}@notify.local>\r\nSubject: hi\r\n\r\nbody\r\n").into_bytes()
    }

    fn envelope() -> Envelope {
        Envelope {
            from: "a@x.test".into(),
            to: vec!["b@y.test".into()],
        }
    }

    /// One raw HTTP/1.1 request to the sink's HTTP port; the whole answer.
    fn http(app: &Application, request: &str) -> String {
        let mut stream = TcpStream::connect(app.http_addr()).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        answer
    }

    fn post(path: &str, authorization: Option<&str>, body: &str) -> String {
        let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn the_fcm_stand_in_hands_out_a_token_and_accepts_an_authorised_send() {
        let app = Application::build(Settings::for_tests()).unwrap();

        let token = http(&app, &post("/token", None, "grant_type=x&assertion=y"));
        let sent = http(
            &app,
            &post(
                "/v1/projects/local/messages:send",
                Some("Bearer smtp-sink-local"),
                r#"{"message": {"token": "t"}}"#,
            ),
        );
        let anonymous = http(&app, &post("/v1/projects/local/messages:send", None, "{}"));

        assert!(
            token.starts_with("HTTP/1.1 200") && token.contains("\"access_token\""),
            "{token}"
        );
        assert!(
            sent.starts_with("HTTP/1.1 200") && sent.contains("projects/local/messages/1"),
            "{sent}"
        );
        assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
        assert_eq!(app.stats().push_received, 1);
        assert_eq!(fcm_project("/v1/projects/a/b/messages:send"), None);
    }

    #[test]
    fn duplicates_count_as_received_but_not_as_unique_ids() {
        let sink = state(0.0);

        for id in ["one", "two", "one"] {
            assert_eq!(sink.message(&envelope(), &mail(id)).code, 250);
        }

        assert_eq!(
            sink.stats(),
            Stats {
                received: 3,
                unique_message_ids: 2,
                deferred: 0,
                push_received: 0,
            }
        );
    }

    #[test]
    fn a_full_fail_rate_defers_each_first_attempt_and_accepts_the_retry() {
        let sink = state(1.0);

        assert_eq!(sink.message(&envelope(), &mail("one")).code, 451);
        assert_eq!(sink.message(&envelope(), &mail("one")).code, 250);

        assert_eq!(sink.stats().deferred, 1);
        assert_eq!(sink.stats().received, 1);
    }

    #[test]
    fn the_fail_rate_defers_about_that_fraction_of_messages() {
        let sink = state(0.3);

        let deferred = (0..2000)
            .filter(|i| sink.message(&envelope(), &mail(&format!("m{i}"))).code == 451)
            .count();

        assert!((500..700).contains(&deferred), "deferred {deferred} of 2000");
    }
}
