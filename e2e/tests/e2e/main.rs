//! End-to-end tests: the real binaries of the pipeline (from this target directory) against
//! real PostgreSQL, Redis, broker, schema registry and SMTP server, started by
//! [`harness::Stack`], one module per behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_schemas;
mod chaos;
mod dlt_replay;
mod email_delivery;
mod harness;
mod ingest;
mod observability;
mod outages;
mod providers;
mod push_delivery;
mod secrets;
mod tracing;
mod webhooks;
