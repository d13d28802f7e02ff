//! Publishes notification requests read from stdin, one JSON object a line, in the API's body
//! format (`notification_type`, `user_id`, `template_code`, `variables`, `request_id`,
//! `priority`, `metadata`; optionally `correlation_id`). Invalid lines are reported with their
//! fields and not sent.
//!
//! ```sh
//! export NOTIFY_PRODUCER_TOKEN=$(APP_JWT_AUDIENCE=notify-ingest notifyctl token \
//!     --subject billing --scope notifications:produce)
//! echo '{"notification_type":"email","user_id":"…","template_code":"welcome_email",
//!        "variables":{"name":"Ada"},"request_id":"signup-42"}' |
//!   cargo run -p notify-producer --example produce
//! ```
//!
//! Environment: `APP_KAFKA_BOOTSTRAP`, `APP_KAFKA_TOPIC_PREFIX`, `APP_SCHEMA_REGISTRY_URL`,
//! `NOTIFY_PRODUCER_TOKEN`.

use std::io::BufRead;

use anyhow::Context;
use notify_kit::correlation::CorrelationId;
use notify_producer::{ProducerSettings, RequestProducer};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = ProducerSettings::from_env().context("invalid configuration")?;
    let producer = RequestProducer::connect(&settings).await?;
    let (mut sent, mut invalid) = (0usize, 0usize);
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let mut body: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("line {}: not JSON: {e}", n + 1);
                invalid += 1;
                continue;
            }
        };
        let correlation = body
            .as_object_mut()
            .and_then(|o| o.remove("correlation_id"))
            .and_then(|v| v.as_str().and_then(CorrelationId::parse));
        match RequestProducer::validate(&body) {
            Ok(request) => {
                let at = producer.send(&request, correlation.as_ref()).await?;
                println!(
                    "{} → {} partition {} offset {}",
                    request.request_id.as_str(),
                    producer.topic(),
                    at.partition,
                    at.offset
                );
                sent += 1;
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("line {}: {}: {}", n + 1, e.field, e.reason);
                }
                invalid += 1;
            }
        }
    }
    eprintln!("{sent} sent, {invalid} invalid");
    Ok(())
}
