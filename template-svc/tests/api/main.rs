//! API tests of template-svc: the real service on a random port against a fresh PostgreSQL
//! database per test, one module per resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod creating;
mod health;
mod helpers;
mod languages;
mod listing;
mod preview;
mod versions;
