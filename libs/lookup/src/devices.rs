//! What delivery tells user-svc about devices (scope `users:devices:write`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{client::ServiceClient, error::LookupError, token::TokenSource};

const SERVICE: &str = "user-svc";

/// Most device ids one [`DeviceRegistry::mark_used`] call carries (user-svc's limit).
pub const MAX_USED_BATCH: usize = 100;

/// user-svc's answer to `DELETE /api/v1/devices`.
#[derive(Deserialize)]
struct Removed {
    removed: bool,
}

/// user-svc's answer to `POST /api/v1/devices/used`.
#[derive(Deserialize)]
struct Used {
    updated: u64,
}

/// The device endpoints of user-svc, for the workers.
pub struct DeviceRegistry {
    client: ServiceClient,
}

impl DeviceRegistry {
    /// A client for user-svc at `base_url`; the token needs the scope `users:devices:write`.
    pub fn new(base_url: &str, tokens: TokenSource, timeout: Duration) -> Result<Self, LookupError> {
        Ok(Self {
            client: ServiceClient::new(SERVICE, base_url, tokens, timeout)?,
        })
    }

    /// Removes the device whose token a provider called gone, recording `reason` (e.g.
    /// `fcm: UNREGISTERED`). `Ok(false)` when no device has that token any more (removed
    /// before, by its owner or an earlier attempt).
    #[tracing::instrument(skip_all)]
    pub async fn remove_gone(&self, token: &str, reason: &str) -> Result<bool, LookupError> {
        let body = json!({"token": token, "reason": reason});
        let answer: Option<Removed> = self
            .client
            .request(reqwest::Method::DELETE, "/api/v1/devices", Some(&body))
            .await?;
        Ok(answer.is_some_and(|r| r.removed))
    }

    /// Sets `last_used_at` of `device_ids` (at most [`MAX_USED_BATCH`]) to now; answers how
    /// many exist.
    #[tracing::instrument(skip_all, fields(devices = device_ids.len()))]
    pub async fn mark_used(&self, device_ids: &[Uuid]) -> Result<u64, LookupError> {
        let body = json!({"device_ids": device_ids});
        let answer: Option<Used> = self
            .client
            .request(reqwest::Method::POST, "/api/v1/devices/used", Some(&body))
            .await?;
        Ok(answer.map_or(0, |u| u.updated))
    }
}
