//! The providers' integration tests, one binary: each provider against a fake of its API
//! (wiremock) or a real SMTP server, the chain, and the rate limiter against the real Redis;
//! shared helpers in `common`, test-only keys in `../keys`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod common;
mod fcm;
mod gmail;
mod mailgun;
mod onesignal;
mod push;
mod push_chain;
mod rate_limit;
mod sendgrid;
mod smtp;
mod webpush;
