//! The gateway's baseline: the least an HTTP service can do for the same request. An
//! actix-web handler (same framework, same worker count, same pool size as the gateway) that
//! takes the JSON body and writes one row of the notification's shape into its own table
//! with one `INSERT`: no authentication, no validation, no idempotency record, no history
//! entry, no outbox row, no `NOTIFY`.

use std::net::TcpListener;

use actix_web::{dev::ServerHandle, web, App, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The table the baseline writes (created like `notifications`, with its indexes).
pub const TABLE: &str = "baseline_notifications";

/// The running baseline server.
pub struct Baseline {
    pub port: u16,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Baseline {
    /// Creates the table and serves `POST /notifications` on a free port.
    pub async fn start(db_url: &str, workers: usize, pool_size: u32) -> anyhow::Result<Self> {
        let pool = notify_store::connect(db_url, pool_size).await?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (LIKE notifications INCLUDING ALL)"
        ))
        .execute(&pool)
        .await
        .context("failed to create the baseline table")?;
        let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind the baseline server")?;
        let port = listener
            .local_addr()
            .context("failed to read the baseline port")?
            .port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(pool.clone()))
                .route("/notifications", web::post().to(insert))
        })
        .workers(workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .context("failed to listen")?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("baseline server failed: {e}");
            }
        });
        Ok(Self { port, handle, task })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/notifications", self.port)
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body.get(field).and_then(Value::as_str).unwrap_or_default()
}

async fn insert(pool: web::Data<PgPool>, body: web::Json<Value>) -> HttpResponse {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let result = sqlx::query(&format!(
        "INSERT INTO {TABLE}
            (id, caller, request_id, user_id, channel, template_code, variables, priority,
             metadata, correlation_id, status, created_at, updated_at)
         VALUES ($1, 'bench', $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10)"
    ))
    .bind(id)
    .bind(text(&body, "request_id"))
    .bind(text(&body, "user_id").parse::<Uuid>().unwrap_or_else(|_| Uuid::nil()))
    .bind(text(&body, "notification_type"))
    .bind(text(&body, "template_code"))
    .bind(body.get("variables").cloned().unwrap_or_else(|| json!({})))
    .bind(
        body.get("priority")
            .and_then(Value::as_i64)
            .and_then(|p| i16::try_from(p).ok())
            .unwrap_or(5),
    )
    .bind(body.get("metadata").cloned().unwrap_or_else(|| json!({})))
    .bind(id.to_string())
    .bind(now)
    .execute(pool.get_ref())
    .await;
    match result {
        Ok(_) => HttpResponse::Accepted().json(json!({
            "success": true,
            "data": {"notification_id": id, "status": "pending", "created_at": now},
        })),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
