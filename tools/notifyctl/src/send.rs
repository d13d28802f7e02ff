//! `notifyctl send`: publishes one notification request to `notifications.requests` through
//! the producer library, as an internal producer would. Prints where it landed; the ingest
//! service then accepts it (or dead-letters it to `notifications.requests.dlt` with the reason).

use std::time::Duration;

use anyhow::Context;
use notify_kafka::KafkaSettings;
use notify_kit::{
    auth::{AuthSettings, JwtIssuer, TokenUse},
    correlation::CorrelationId,
    settings,
};
use notify_producer::{ProducerSettings, RequestProducer};

use crate::cli::SendArgs;

/// The producer's token: `NOTIFY_PRODUCER_TOKEN`, or one made for `producer` with the
/// platform's signing key (`APP_JWT_*`), audience `APP_INGEST_TOKEN_AUDIENCE`.
fn token(producer: &str) -> anyhow::Result<secrecy::SecretString> {
    if let Some(t) = settings::secret("NOTIFY_PRODUCER_TOKEN") {
        return Ok(t);
    }
    let mut auth = AuthSettings::from_env().context("JWT settings (or set NOTIFY_PRODUCER_TOKEN)")?;
    auth.audience = settings::string("APP_INGEST_TOKEN_AUDIENCE", notify_intake::PRODUCER_AUDIENCE);
    let token = JwtIssuer::new(&auth)?.issue(
        producer,
        TokenUse::Service,
        &[notify_intake::SCOPE_PRODUCE],
        Duration::from_secs(300),
    )?;
    Ok(token.into())
}

pub fn run(args: &SendArgs) -> anyhow::Result<()> {
    let request = RequestProducer::validate(&args.body).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect();
        anyhow::anyhow!("invalid request: {}", list.join("; "))
    })?;
    let correlation = match &args.correlation_id {
        None => None,
        Some(raw) => Some(CorrelationId::parse(raw).ok_or_else(|| {
            anyhow::anyhow!("invalid request: correlation_id: must be 1 to 128 of letters, digits and . _ : -")
        })?),
    };
    let settings = ProducerSettings {
        kafka: KafkaSettings::from_env()?,
        schema_registry_url: settings::string("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
        token: token(&args.producer)?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let producer = RequestProducer::connect(&settings).await?;
        let at = producer.send(&request, correlation.as_ref()).await?;
        crate::stdout::line(&format!(
            "request {} published to {} (partition {}, offset {})",
            request.request_id.as_str(),
            producer.topic(),
            at.partition,
            at.offset
        ))
    })
}
