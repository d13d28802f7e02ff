//! API tests of the gateway: the real service on a random port against a fresh PostgreSQL
//! database per test (`helpers::spawn_app`), one module per resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod delivery_reports;
mod health;
mod helpers;
mod idempotency;
mod notifications;
mod rate_limits;
mod validation;
mod webhooks;
