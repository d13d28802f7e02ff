use anyhow::Context;
use smtp_sink::sink::{Application, Settings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("invalid configuration")?;
    let fail_rate = settings.fail_rate;
    let app = Application::build(settings)?;
    // stdout carries one JSON line per message; diagnostics go to stderr.
    eprintln!(
        "{}",
        serde_json::json!({
            "message": "smtp-sink listening",
            "smtp": app.smtp_addr().to_string(),
            "http": app.http_addr().to_string(),
            "fail_rate": fail_rate,
        })
    );
    wait_for_signal().await;
    app.stop();
    eprintln!(
        "{}",
        serde_json::json!({"message": "smtp-sink stopped", "stats": app.stats()})
    );
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
