//! API tests of user-svc: the real service on a random port against a fresh PostgreSQL
//! database and Redis (keys under a prefix of each test's own), one module per resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod changing;
mod creating;
mod devices;
mod health;
mod helpers;
mod listing;
mod login;
mod login_limits;
mod ownership;
mod suppressions;
mod unsubscribe;
