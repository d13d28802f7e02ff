//! `push-worker`: the worker runtime with the HTTP push provider. Configuration: the worker's
//! `APP_*` variables (see `notify_worker::settings`) and `APP_PUSH_*`.

use std::sync::Arc;

use anyhow::Context;
use notify_providers::push::{HttpPushProvider, PushSettings};
use notify_schemas::Channel;
use notify_worker::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("push-worker");
    let settings = Settings::from_env("push-worker", Channel::Push, 8092).context("invalid configuration")?;
    let push = PushSettings::from_env().context("invalid push provider configuration")?;
    let provider = Arc::new(HttpPushProvider::new(&push).context("invalid push provider configuration")?);
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let app = Application::build(settings, provider).await?;
    tracing::info!(port = app.port(), "push-worker started");
    app.run_until_stopped(stop).await
}
