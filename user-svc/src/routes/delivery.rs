//! What a delivery worker needs beyond the user record, added to `GET /api/v1/users/{id}`
//! for service callers (the recipient lookup): whether the user's current email address is
//! suppressed, and the one-click unsubscribe link to put in the email's headers. Minted here,
//! so the signing key never leaves user-svc.

use anyhow::Context;
use chrono::{DateTime, Utc};
use notify_schemas::Channel;
use serde::Serialize;
use utoipa::ToSchema;

use super::{users::UserView, AppState};
use crate::db::{suppressions, users::User};

/// Why the address is suppressed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressedView {
    /// `hard_bounce`, `complaint`, `unsubscribe` or `manual`.
    pub reason: String,
    /// Who said so (`sendgrid`, `operator:<subject>`, ...).
    pub source: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// Email delivery facts of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailDeliveryView {
    /// Set when the user's current address is on the suppression list: do not send.
    pub suppressed: Option<SuppressedView>,
    /// The RFC 8058 one-click link (`List-Unsubscribe`), valid for `APP_UNSUBSCRIBE_TTL_DAYS`.
    pub unsubscribe_url: String,
}

/// Delivery facts per channel (email only for now: push has no suppression check yet).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub email: EmailDeliveryView,
}

/// A user as a service sees it: the record and its `delivery` facts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientView {
    #[serde(flatten)]
    pub user: UserView,
    pub delivery: DeliveryView,
}

/// The delivery facts of `user`, now.
pub async fn of(state: &AppState, user: &User) -> anyhow::Result<DeliveryView> {
    let suppressed = suppressions::of_email(&state.pool, &user.email)
        .await
        .context("failed to read the suppression of the user's email")?
        .map(|s| SuppressedView {
            reason: s.reason,
            source: s.source,
            created_at: s.created_at,
        });
    Ok(DeliveryView {
        email: EmailDeliveryView {
            suppressed,
            unsubscribe_url: state.links.url(user.id, Channel::Email, Utc::now()),
        },
    })
}
