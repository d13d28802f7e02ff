use anyhow::Context;
use notify_kit::http::HttpApplication;
use user_svc::{settings::Settings, startup::Application};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("user-svc");
    let settings = Settings::from_env().context("invalid configuration")?;
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "user-svc listening");
    app.run_until_stopped().await
}
