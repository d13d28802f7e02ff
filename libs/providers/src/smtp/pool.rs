//! SMTP connections, pooled.
//!
//! Not lettre's `AsyncSmtpTransport` pool, for two reasons found in lettre 0.11's source:
//! with Tokio its timeout covers only the TCP connect (a server that stops answering
//! mid-dialogue would hang the send forever), and a send that is cancelled (by our own
//! deadline) hands its connection back to the pool in an unknown protocol state, where
//! the next message could read the previous one's reply. Here a connection goes back to the
//! pool only after a dialogue that ended cleanly; a cancelled send drops (closes) it.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use lettre::{
    address::Envelope,
    transport::smtp::{
        authentication::{Credentials, DEFAULT_MECHANISMS},
        client::{AsyncSmtpConnection, TlsParameters},
        extension::ClientId,
        response::Response,
        Error,
    },
};
use tokio::sync::Semaphore;

/// Idle connections older than this are closed rather than reused (servers drop idle
/// clients after a few minutes; RFC 5321 suggests at least 5).
const MAX_IDLE: Duration = Duration::from_secs(60);

/// How a new connection is secured.
pub(super) enum Security {
    Plain,
    StartTls(TlsParameters),
    Wrapper(TlsParameters),
}

/// Where and how to connect.
pub(super) struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    /// Limit of one send, from taking a connection to the reply to the message (waiting
    /// for a free session is not counted).
    pub timeout: Duration,
}

/// Why a send failed.
pub(super) enum Failure {
    /// The server refused, or the connection failed.
    Smtp(Error),
    /// The send took longer than [`Endpoint::timeout`].
    TimedOut,
}

/// At most `size` sessions at once; connections are reused while they stay healthy.
pub(super) struct ConnectionPool {
    endpoint: Endpoint,
    hello: ClientId,
    sessions: Semaphore,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl ConnectionPool {
    pub fn new(endpoint: Endpoint, size: usize) -> Self {
        Self {
            endpoint,
            hello: ClientId::default(),
            sessions: Semaphore::new(size),
            idle: Mutex::new(Vec::with_capacity(size)),
        }
    }

    /// Sends one message on a pooled (or new) connection, within the endpoint's timeout.
    /// Cancel-safe: dropping the future closes the connection it was using.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, Failure> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _session = self.sessions.acquire().await;
        tokio::time::timeout(self.endpoint.timeout, self.dialogue(envelope, email))
            .await
            .map_err(|_| Failure::TimedOut)?
            .map_err(Failure::Smtp)
    }

    async fn dialogue(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, Error> {
        let mut conn = self.checkout().await?;
        let result = conn.send(envelope, email).await;
        // After an error reply lettre has sent QUIT and marked the connection broken.
        if !conn.has_broken() {
            self.park(conn);
        }
        result
    }

    /// A healthy idle connection (checked with NOOP), or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, Error> {
        while let Some((mut conn, since)) = self.pop_idle() {
            if since.elapsed() < MAX_IDLE && conn.test_connected().await {
                return Ok(conn);
            }
            // Stale or closed by the server: dropping it closes the socket.
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let e = &self.endpoint;
        let wrapper = match &e.security {
            Security::Wrapper(tls) => Some(tls.clone()),
            Security::Plain | Security::StartTls(_) => None,
        };
        // Plain connections are opened here so that Nagle's algorithm can be switched off:
        // lettre writes a message's body and its final dot separately, and with Nagle on the
        // dot waits for the server's delayed ACK (~40 ms per message). If connecting fails,
        // lettre's own connect reports the error in its terms.
        let plain = match wrapper {
            Some(_) => None,
            None => {
                match tokio::time::timeout(e.timeout, tokio::net::TcpStream::connect((e.host.as_str(), e.port))).await {
                    Ok(Ok(stream)) => {
                        if let Err(err) = stream.set_nodelay(true) {
                            tracing::debug!(error = %err, "TCP_NODELAY not set on the SMTP connection");
                        }
                        Some(stream)
                    }
                    _ => None,
                }
            }
        };
        let mut conn = match plain {
            Some(stream) => AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await?,
            None => {
                AsyncSmtpConnection::connect_tokio1(
                    (e.host.as_str(), e.port),
                    Some(e.timeout),
                    &self.hello,
                    wrapper,
                    None,
                )
                .await?
            }
        };
        if let Security::StartTls(tls) = &e.security {
            conn.starttls(tls.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &e.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    fn pop_idle(&self) -> Option<(AsyncSmtpConnection, Instant)> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((conn, Instant::now()));
    }
}
