//! The outbox relay: publishes rows of the transactional outbox to Kafka.
//!
//! - `shards`: which outbox shards this instance owns (PostgreSQL advisory locks, balanced
//!   over the live relays). One owner per shard means one publisher per key at a time.
//! - `relay`: the loop: claim a batch (`FOR UPDATE SKIP LOCKED`) → encode (Avro, Confluent
//!   wire format) → produce in order with the idempotent producer → wait for every ack →
//!   mark published (or record the failure) → commit. Wakes on `LISTEN/NOTIFY`, polls as a
//!   fallback.
//! - `publisher`: the Kafka side, behind a trait so tests can delay acknowledgements.
//! - `encoder`: JSON outbox payloads → Avro with schemas looked up in the registry.

pub mod encoder;
pub mod publisher;
pub mod relay;
pub mod settings;
pub mod shards;
pub mod startup;
