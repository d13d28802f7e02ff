//! Deploy step: sets the registry's compatibility level and registers every contract in a
//! fixed order, so schema ids are the same after a restart of an in-memory registry.
//!
//! `SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8081`), `SCHEMA_COMPATIBILITY`
//! (default `BACKWARD`).

use anyhow::Context;
use notify_schemas::{registry::SchemaRegistry, CONTRACTS};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let level = std::env::var("SCHEMA_COMPATIBILITY").unwrap_or_else(|_| "BACKWARD".into());
    let registry = SchemaRegistry::new(&url).context("failed to build the registry client")?;
    let ids = registry
        .register_all(CONTRACTS, &level)
        .await
        .with_context(|| format!("failed to register schemas at {url}"))?;
    for (subject, id) in ids {
        println!("registered {subject} as id {id}");
    }
    Ok(())
}
