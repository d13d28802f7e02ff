use anyhow::Context;
use gateway::{settings::Settings, startup::Application};
use notify_kit::http::HttpApplication;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = notify_kit::telemetry::init_telemetry("gateway");
    let settings = Settings::from_env().context("invalid configuration")?;
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "gateway listening");
    app.run_until_stopped().await
}
