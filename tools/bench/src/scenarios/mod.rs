//! The benchmark scenarios, each starting what it measures.

pub mod e2e;
pub mod gateway;
pub mod ingest;
pub mod relay;
pub mod soak;
