//! Device upkeep after push deliveries: tell user-svc which devices a delivery reached
//! (`last_used_at`) and remove the ones a provider called gone.
//!
//! Neither may slow or fail a notification: requests go through a bounded queue to one
//! background task. A removal that fails is tried again a few times (2 s, 4 s, 8 s, 16 s);
//! if it still fails, the device stays until the next delivery to it finds it gone again.
//! A full queue drops the request with a warning, for the same reason.

use std::time::Duration;

use notify_lookup::{DeviceRegistry, LookupError, MAX_USED_BATCH};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Requests waiting for the background task, at most.
const QUEUE: usize = 1024;
/// Attempts at removing one gone device.
const REMOVAL_ATTEMPTS: u32 = 5;

#[derive(Debug)]
enum Task {
    Gone {
        token: String,
        reason: String,
        attempt: u32,
    },
    Used(Vec<Uuid>),
}

/// The handle the pipeline reports through. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DeviceUpkeep {
    tx: Option<mpsc::Sender<Task>>,
}

impl DeviceUpkeep {
    /// Starts the background task that calls `registry` (needs a Tokio runtime).
    pub fn start(registry: DeviceRegistry) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(registry, rx, tx.clone()));
        Self { tx: Some(tx) }
    }

    /// Reports nothing (the email worker, tests).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Asks user-svc to remove the device with `token`, recording `reason`.
    pub fn gone(&self, token: &str, reason: &str) {
        self.enqueue(Task::Gone {
            token: token.to_string(),
            reason: reason.chars().take(500).collect(),
            attempt: 1,
        });
    }

    /// Tells user-svc that a delivery reached `device_ids` now.
    pub fn used(&self, device_ids: Vec<Uuid>) {
        let ids: Vec<Uuid> = device_ids.into_iter().filter(|id| !id.is_nil()).collect();
        for chunk in ids.chunks(MAX_USED_BATCH) {
            self.enqueue(Task::Used(chunk.to_vec()));
        }
    }

    fn enqueue(&self, task: Task) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(task) {
            tracing::warn!(error = %e, "device upkeep queue full or closed; request dropped");
        }
    }
}

async fn run(registry: DeviceRegistry, mut rx: mpsc::Receiver<Task>, tx: mpsc::Sender<Task>) {
    while let Some(task) = rx.recv().await {
        match task {
            Task::Used(ids) => {
                if let Err(e) = registry.mark_used(&ids).await {
                    tracing::warn!(error = %e, devices = ids.len(), "could not mark devices used");
                }
            }
            Task::Gone { token, reason, attempt } => match registry.remove_gone(&token, &reason).await {
                Ok(removed) => {
                    tracing::info!(%reason, removed, "gone device reported to user-svc");
                }
                Err(e) if retryable(&e) && attempt < REMOVAL_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "could not remove a gone device; will retry");
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                        let _ = tx.try_send(Task::Gone {
                            token,
                            reason,
                            attempt: attempt + 1,
                        });
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, attempt, "could not remove a gone device; the next delivery to it reports it again");
                }
            },
        }
    }
}

fn retryable(e: &LookupError) -> bool {
    e.is_retryable()
}
