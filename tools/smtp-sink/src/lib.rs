//! `smtp-sink`: the SMTP server of `make run` and the benchmarks, and the embeddable SMTP
//! server the tests use.
//!
//! - [`server`]: an SMTP server (the `mailin` protocol engine on threads) that can be stopped
//!   and restarted on the same port, with a [`MailHandler`](server::MailHandler) deciding
//!   on each recipient and message.
//! - [`sink`]: the binary's application: accepts and counts messages, logs one JSON line per
//!   message on stdout, serves `GET /stats`, optionally defers a fraction of first attempts.
//! - [`headers`]: the Message-ID and Subject of a raw message.

pub mod headers;
pub mod server;
pub mod sink;
