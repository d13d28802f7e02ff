use anyhow::Context;
use status_projector::{Projector, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("status-projector");
    let settings = Settings::from_env().context("invalid configuration")?;
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let projector = Projector::build(settings).await?;
    tracing::info!(port = projector.port(), "status-projector started");
    projector.run_until_stopped(stop).await
}
