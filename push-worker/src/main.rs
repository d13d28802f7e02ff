//! `push-worker`: the worker runtime with the push provider chain. Configuration: the
//! worker's `APP_*` variables (see `notify_worker::settings`), `APP_PUSH_PROVIDERS` (default
//! `fcm`) and each listed provider's own (see `notify_providers`' README).

use std::sync::Arc;

use anyhow::Context;
use notify_providers::{build_push_chain, PushChainSettings};
use notify_schemas::Channel;
use notify_worker::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("push-worker");
    let settings = Settings::from_env("push-worker", Channel::Push, 8092).context("invalid configuration")?;
    let providers = PushChainSettings::from_env().context("invalid push provider configuration")?;
    let chain = build_push_chain(&providers).context("invalid push provider configuration")?;
    tracing::info!(providers = ?chain.providers(), "push provider chain");
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let app = Application::build(settings, Arc::new(chain)).await?;
    tracing::info!(port = app.port(), "push-worker started");
    app.run_until_stopped(stop).await
}
