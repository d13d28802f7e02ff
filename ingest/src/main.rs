use anyhow::Context;
use ingest::{Ingest, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("ingest");
    let settings = Settings::from_env().context("invalid configuration")?;
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let ingest = Ingest::build(settings).await?;
    tracing::info!(port = ingest.port(), "ingest started");
    ingest.run_until_stopped(stop).await
}
