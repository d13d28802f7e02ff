//! `email-worker`: the worker runtime with the SMTP provider. Configuration: the worker's
//! `APP_*` variables (see `notify_worker::settings`) and `APP_SMTP_*`.

use std::sync::Arc;

use anyhow::Context;
use notify_providers::smtp::{SmtpProvider, SmtpSettings};
use notify_schemas::Channel;
use notify_worker::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("email-worker");
    let settings = Settings::from_env("email-worker", Channel::Email, 8091).context("invalid configuration")?;
    let smtp = SmtpSettings::from_env().context("invalid SMTP configuration")?;
    let provider = Arc::new(SmtpProvider::new(&smtp).context("invalid SMTP configuration")?);
    let stop = tokio_util::sync::CancellationToken::new();
    notify_kit::shutdown::cancel_on_signal(stop.clone());
    let app = Application::build(settings, provider).await?;
    tracing::info!(port = app.port(), "email-worker started");
    app.run_until_stopped(stop).await
}
