//! `email-worker`: the worker runtime with the email provider chain. Configuration: the
//! worker's `APP_*` variables (see `notify_worker::settings`), `APP_EMAIL_PROVIDERS`
//! (default `smtp`) and each listed provider's own (see `notify_providers`' README).

use std::sync::Arc;

use anyhow::Context;
use notify_providers::{build_email_chain, EmailChainSettings};
use notify_schemas::Channel;
use notify_worker::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("email-worker");
    let settings = Settings::from_env("email-worker", Channel::Email, 8091).context("invalid configuration")?;
    let providers = EmailChainSettings::from_env().context("invalid email provider configuration")?;
    let chain = build_email_chain(&providers).context("invalid email provider configuration")?;
    tracing::info!(providers = ?chain.providers(), "email provider chain");
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let app = Application::build(settings, Arc::new(chain)).await?;
    tracing::info!(port = app.port(), "email-worker started");
    app.run_until_stopped(stop).await
}
