//! The relay's integration tests, one binary: `relay` (the relay in-process against the real
//! PostgreSQL, broker and registry) and `processes` (the real binary, SIGKILLed mid-batch),
//! with their shared helpers in `common`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod processes;
mod relay;
