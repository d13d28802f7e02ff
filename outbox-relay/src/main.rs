use anyhow::Context;
use outbox_relay::{settings::Settings, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("outbox-relay");
    let settings = Settings::from_env().context("invalid configuration")?;
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let app = Application::build(settings, None).await?;
    tracing::info!(port = app.port(), "outbox-relay started");
    app.run_until_stopped(stop).await
}
