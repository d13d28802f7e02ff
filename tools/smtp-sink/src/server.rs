//! An embeddable SMTP server that can be stopped and started again on the same port.
//!
//! The protocol (command parsing, the session state machine, dot-unstuffing, replies) is the
//! [`mailin`] crate's; this module only supplies the I/O: an accept thread and one thread per
//! session, like `mailin-embedded`, whose `serve()` cannot be stopped (tests need outages)
//! and whose TLS backend would add a second `rustls` crypto provider to the workspace.
//!
//! What happens to a message is decided by a [`MailHandler`]: accept it, or answer with any
//! SMTP code (`451` to greylist, `550` to reject).

use std::{
    collections::HashMap,
    io::{self, BufRead, BufReader, BufWriter, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    thread::JoinHandle,
    time::Duration,
};

use mailin::{Action, Response, SessionBuilder};

/// How long a session may stay silent before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the accept loop looks at the stop flag when no client is connecting.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Messages larger than this are refused with `552` (and their bytes dropped as they come).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// An SMTP reply: a three-digit code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// `250` with `text`.
    pub fn ok(text: impl Into<String>) -> Self {
        Self::new(250, text)
    }

    /// Any code: `4xx` is a transient failure, `5xx` a permanent one (RFC 5321 §4.2.1).
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// Whether this reply refuses (code `4xx` or `5xx`).
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    fn to_response(&self) -> Response {
        // SMTP reply text is one line; a line break would end the reply early.
        let text = self.text.replace(['\r', '\n'], " ");
        Response::custom(self.code, text)
    }
}

/// The envelope of a message: `MAIL FROM` and the accepted `RCPT TO`s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
}

/// Decides on recipients and messages. Shared by every session, so it must be thread-safe.
pub trait MailHandler: Send + Sync + 'static {
    /// Answers `RCPT TO:<to>`. The default accepts every recipient.
    fn rcpt(&self, _to: &str) -> Reply {
        Reply::ok("OK")
    }

    /// Answers the end of `DATA` for one complete message (`data` is the message as sent,
    /// headers and body, dot-unstuffed). A `250` means the message was accepted.
    fn message(&self, envelope: &Envelope, data: &[u8]) -> Reply;
}

/// A running (or stopped) SMTP server. Stops when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    name: String,
    handler: Arc<dyn MailHandler>,
    sessions: Arc<Sessions>,
    run: Mutex<Option<Run>>,
}

struct Run {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The open sessions, so that `stop` can close them (an outage drops pooled connections too).
#[derive(Default)]
struct Sessions {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Sessions {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SmtpServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving. `name` is the host name
    /// the server greets with.
    pub fn start(addr: impl ToSocketAddrs, name: impl Into<String>, handler: Arc<dyn MailHandler>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let server = Self {
            addr: listener.local_addr()?,
            name: name.into(),
            handler,
            sessions: Arc::default(),
            run: Mutex::new(None),
        };
        server.serve(listener)?;
        Ok(server)
    }

    /// The address the server listens on (the same after a restart).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.run_slot().is_some()
    }

    /// Stops accepting connections and closes every open session. When this returns, the
    /// port refuses connections. Does nothing if already stopped.
    pub fn stop(&self) {
        let run = self.run_slot().take();
        if let Some(run) = run {
            run.stop.store(true, Ordering::SeqCst);
            // The accept thread owns the listener: once it has returned, the port is closed.
            let _ = run.thread.join();
        }
        for (_, stream) in self.sessions.open().drain() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Starts again on the same address after [`stop`](Self::stop). Does nothing if running.
    pub fn restart(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        // std sets SO_REUSEADDR on Unix, so the port is free again at once.
        let listener = TcpListener::bind(self.addr)?;
        self.serve(listener)
    }

    fn run_slot(&self) -> MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&self, listener: TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = SessionContext {
            name: self.name.clone(),
            handler: Arc::clone(&self.handler),
            sessions: Arc::clone(&self.sessions),
        };
        let thread = std::thread::Builder::new()
            .name(format!("smtp-accept-{}", self.addr.port()))
            .spawn({
                let stop = Arc::clone(&stop);
                move || accept_loop(&listener, &stop, &ctx)
            })?;
        *self.run_slot() = Some(Run { stop, thread });
        Ok(())
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone)]
struct SessionContext {
    name: String,
    handler: Arc<dyn MailHandler>,
    sessions: Arc<Sessions>,
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, ctx: &SessionContext) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("smtp-session".into())
                    // A client going away mid-session is not the server's problem.
                    .spawn(move || drop(run_session(stream, peer.ip(), &ctx)));
                if spawned.is_err() {
                    // Out of threads: the stream was dropped, so the client sees a reset.
                    std::thread::sleep(ACCEPT_POLL);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            // EMFILE, ECONNABORTED…: try again shortly rather than spin.
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

fn run_session(stream: TcpStream, peer: IpAddr, ctx: &SessionContext) -> io::Result<()> {
    // Accepted sockets do not inherit O_NONBLOCK on Linux, but other platforms differ.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let id = ctx.sessions.next_id.fetch_add(1, Ordering::Relaxed);
    ctx.sessions.open().insert(id, stream.try_clone()?);
    let result = converse(&stream, peer, ctx);
    ctx.sessions.open().remove(&id);
    result
}

fn converse(stream: &TcpStream, peer: IpAddr, ctx: &SessionContext) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut writer = BufWriter::new(stream);
    let failed_data = Arc::new(AtomicBool::new(false));
    let handler = SessionHandler {
        handler: Arc::clone(&ctx.handler),
        envelope: Envelope::default(),
        data: Vec::new(),
        too_large: false,
        failed_data: Arc::clone(&failed_data),
    };
    let mut session = SessionBuilder::new(ctx.name.clone()).build(peer, handler);
    session.greeting().write_to(&mut writer)?;
    writer.flush()?;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => continue,
            Action::Reply => {
                response.write_to(&mut writer)?;
                writer.flush()?;
            }
            // STARTTLS is never offered, so an upgrade request ends the session too.
            Action::Close | Action::UpgradeTls => {
                response.write_to(&mut writer)?;
                writer.flush()?;
                return Ok(());
            }
        }
        // mailin stays in the DATA state after a refused message, reading the next
        // commands as message text; close the session instead (clients reconnect).
        if failed_data.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// The per-session `mailin` handler: collects the envelope and data, asks the shared
/// [`MailHandler`].
struct SessionHandler {
    handler: Arc<dyn MailHandler>,
    envelope: Envelope,
    data: Vec<u8>,
    too_large: bool,
    failed_data: Arc<AtomicBool>,
}

impl mailin::Handler for SessionHandler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.envelope = Envelope {
            from: from.to_string(),
            to: Vec::new(),
        };
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let reply = self.handler.rcpt(to);
        if !reply.is_error() {
            self.envelope.to.push(to.to_string());
        }
        reply.to_response()
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.envelope.to = to.to_vec();
        self.data.clear();
        self.too_large = false;
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.data.len() + buf.len() > MAX_MESSAGE_BYTES {
            self.too_large = true;
        } else if !self.too_large {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let reply = if self.too_large {
            Reply::new(552, "message exceeds the size limit")
        } else {
            self.handler.message(&self.envelope, &self.data)
        };
        self.data = Vec::new();
        if reply.is_error() {
            self.failed_data.store(true, Ordering::SeqCst);
        }
        reply.to_response()
    }
}

/// `127.0.0.1:0`: a free port on the loopback interface.
pub fn any_local_port() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct AcceptAll;

    impl MailHandler for AcceptAll {
        fn message(&self, _envelope: &Envelope, data: &[u8]) -> Reply {
            Reply::ok(format!("queued {} bytes", data.len()))
        }
    }

    fn smtp_exchange(addr: SocketAddr, commands: &[&str]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for c in commands {
            stream.write_all(c.as_bytes()).unwrap();
        }
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out
    }

    #[test]
    fn a_plain_smtp_dialogue_is_answered_in_order() {
        let server = SmtpServer::start(any_local_port(), "test", Arc::new(AcceptAll)).unwrap();

        let out = smtp_exchange(
            server.local_addr(),
            &[
                "EHLO client\r\n",
                "MAIL FROM:<a@x.test>\r\n",
                "RCPT TO:<b@y.test>\r\n",
                "DATA\r\n",
                "Subject: hi\r\n\r\n..dot\r\n.\r\n",
                "QUIT\r\n",
            ],
        );

        let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(codes.first(), Some(&"220"));
        assert!(out.contains("250 queued 21 bytes"), "{out}");
        assert_eq!(codes.last(), Some(&"221"));
    }

    #[test]
    fn a_stopped_server_refuses_connections_until_restarted() {
        let server = SmtpServer::start(any_local_port(), "test", Arc::new(AcceptAll)).unwrap();
        let addr = server.local_addr();

        server.stop();
        assert!(TcpStream::connect(addr).is_err());

        server.restart().unwrap();
        assert_eq!(server.local_addr(), addr);
        assert!(smtp_exchange(addr, &["QUIT\r\n"]).starts_with("220"));
    }
}
