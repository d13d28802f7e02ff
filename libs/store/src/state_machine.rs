//! The notification status state machine and its projection.
//!
//! ```text
//! pending ──► retrying(n) ──► sent ──► delivered ──► bounced
//!    │            │  ▲         │  └──────────────────► bounced | failed
//!    │            ▼  │         │
//!    ├──────► dead_lettered ───┘ (a replay from the dead-letter topic may still succeed)
//!    └──────► skipped (opted out, user deleted: final)
//! ```
//!
//! Every event is recorded in the history; the current status changes only along an allowed
//! transition, so a late `retrying` never overwrites `sent`, and a bounce after `delivered`
//! is recorded as `bounced`. Re-applying the same event (same status, attempt and time) is
//! a no-op, which makes the projection idempotent under at-least-once delivery.

use chrono::{DateTime, Utc};
use notify_schemas::ids::NotificationId;
use sqlx::{PgPool, Row};

/// A notification's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Retrying,
    Sent,
    Delivered,
    Bounced,
    DeadLettered,
    Skipped,
    Failed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Self::Pending,
        Self::Retrying,
        Self::Sent,
        Self::Delivered,
        Self::Bounced,
        Self::DeadLettered,
        Self::Skipped,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::DeadLettered => "dead_lettered",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "retrying" => Self::Retrying,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "bounced" => Self::Bounced,
            "dead_lettered" => Self::DeadLettered,
            "skipped" => Self::Skipped,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// Whether the current status may move from `from` (at attempt `from_attempt`) to `to`
/// (at attempt `to_attempt`).
pub fn can_transition(from: Status, from_attempt: i32, to: Status, to_attempt: i32) -> bool {
    use Status::*;
    match (from, to) {
        (Pending, Pending) => false,
        (Pending, _) => true,
        (Retrying, Retrying) => to_attempt > from_attempt,
        (Retrying, Pending) => false,
        (Retrying, _) => true,
        (Sent, Delivered | Bounced | Failed) => true,
        (Delivered, Bounced) => true,
        (DeadLettered | Failed, Sent | Delivered | Skipped) => true,
        (DeadLettered | Failed, Retrying) => to_attempt > from_attempt,
        _ => false,
    }
}

/// The current statuses from which an event `to` at `to_attempt` may move the notification,
/// as [`can_transition`] decides: `always` whatever the current attempt, `if_older` only while
/// the current attempt is below `to_attempt`. This lets [`apply`] decide inside its one SQL
/// statement while the rules stay here; a test checks the two agree on every pair.
fn allowed_from(to: Status, to_attempt: i32) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut always = Vec::new();
    let mut if_older = Vec::new();
    for from in Status::ALL {
        if can_transition(from, i32::MAX, to, to_attempt) {
            always.push(from.as_str());
        } else if can_transition(from, i32::MIN, to, to_attempt) {
            if_older.push(from.as_str());
        }
    }
    (always, if_older)
}

/// One status event to apply.
#[derive(Debug, Clone)]
pub struct StatusEvent<'a> {
    pub notification_id: NotificationId,
    pub status: Status,
    pub attempt: i32,
    pub occurred_at: DateTime<Utc>,
    pub error: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub template_version: Option<i32>,
    pub language: Option<&'a str>,
    /// Who reported it (`worker`, `provider-report`, …).
    pub source: &'a str,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The current status changed.
    Changed,
    /// Recorded in the history; the current status stays (not an allowed transition).
    RecordedOnly,
    /// Seen before: nothing changed.
    Duplicate,
    /// No such notification.
    UnknownNotification,
}

/// Applies one event in one statement (one round trip, its own transaction): lock the
/// notification, record the event in the history unless it was recorded before, and move the
/// current status if the transition is allowed.
pub async fn apply(pool: &PgPool, ev: &StatusEvent<'_>) -> Result<Applied, sqlx::Error> {
    let (always, if_older) = allowed_from(ev.status, ev.attempt);
    let row = sqlx::query(
        r#"
WITH cur AS (
    SELECT status, attempts FROM notifications WHERE id = $1 FOR UPDATE
), decision AS (
    SELECT (status = ANY($8::text[]) OR (status = ANY($9::text[]) AND attempts < $3)) AS allowed
      FROM cur
), recorded AS (
    INSERT INTO notification_status_history
        (notification_id, status, attempt, error, provider, occurred_at, applied, source)
    SELECT $1, $2, $3, $4, $5, $6, decision.allowed, $7 FROM decision
    ON CONFLICT (notification_id, status, attempt, occurred_at) DO NOTHING
    RETURNING applied
), changed AS (
    UPDATE notifications
       SET status = $2,
           attempts = GREATEST(attempts, $3),
           last_error = CASE WHEN $4::text IS NOT NULL THEN $4 ELSE last_error END,
           template_version = COALESCE($10, template_version),
           language = COALESCE($11, language),
           updated_at = GREATEST(updated_at, $6)
     WHERE id = $1 AND EXISTS (SELECT 1 FROM recorded WHERE applied)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM cur) AS found,
       EXISTS (SELECT 1 FROM recorded) AS recorded,
       EXISTS (SELECT 1 FROM changed) AS changed
"#,
    )
    .bind(ev.notification_id.as_uuid())
    .bind(ev.status.as_str())
    .bind(ev.attempt)
    .bind(ev.error)
    .bind(ev.provider)
    .bind(ev.occurred_at)
    .bind(ev.source)
    .bind(&always)
    .bind(&if_older)
    .bind(ev.template_version)
    .bind(ev.language)
    .fetch_one(pool)
    .await?;
    Ok(
        match (
            row.try_get::<bool, _>("found")?,
            row.try_get::<bool, _>("recorded")?,
            row.try_get::<bool, _>("changed")?,
        ) {
            (false, _, _) => Applied::UnknownNotification,
            (true, false, _) => Applied::Duplicate,
            (true, true, false) => Applied::RecordedOnly,
            (true, true, true) => Applied::Changed,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn a_late_retry_never_overwrites_sent() {
        assert!(!can_transition(Sent, 1, Retrying, 2));
        assert!(!can_transition(Delivered, 1, Sent, 1));
        assert!(!can_transition(Sent, 0, Pending, 0));
    }

    #[test]
    fn retries_only_move_forward() {
        assert!(can_transition(Pending, 0, Retrying, 1));
        assert!(can_transition(Retrying, 1, Retrying, 2));
        assert!(!can_transition(Retrying, 2, Retrying, 1));
        assert!(can_transition(Retrying, 2, DeadLettered, 3));
    }

    #[test]
    fn a_bounce_after_delivery_is_recorded_as_bounced() {
        assert!(can_transition(Sent, 0, Delivered, 0));
        assert!(can_transition(Delivered, 0, Bounced, 0));
        assert!(!can_transition(Bounced, 0, Delivered, 0));
    }

    #[test]
    fn skipped_and_bounced_are_final() {
        for to in [Pending, Retrying, Sent, Delivered, DeadLettered, Failed] {
            assert!(!can_transition(Skipped, 0, to, 9));
        }
        for to in [Pending, Retrying, Sent, Delivered, DeadLettered, Skipped] {
            assert!(!can_transition(Bounced, 0, to, 9));
        }
    }

    #[test]
    fn a_replay_from_the_dead_letter_topic_can_still_succeed() {
        assert!(can_transition(DeadLettered, 3, Sent, 4));
        assert!(can_transition(DeadLettered, 3, Retrying, 4));
        assert!(!can_transition(DeadLettered, 3, Retrying, 2));
    }

    /// What `apply`'s SQL decides from `allowed_from`, written out.
    fn sql_decision(from: Status, from_attempt: i32, to: Status, to_attempt: i32) -> bool {
        let (always, if_older) = allowed_from(to, to_attempt);
        always.contains(&from.as_str()) || (if_older.contains(&from.as_str()) && from_attempt < to_attempt)
    }

    #[test]
    fn the_statement_decides_every_transition_as_can_transition_does() {
        for from in Status::ALL {
            for to in Status::ALL {
                for from_attempt in -1..6 {
                    for to_attempt in -1..6 {
                        assert_eq!(
                            sql_decision(from, from_attempt, to, to_attempt),
                            can_transition(from, from_attempt, to, to_attempt),
                            "{from:?}({from_attempt}) -> {to:?}({to_attempt})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in [
            Pending,
            Retrying,
            Sent,
            Delivered,
            Bounced,
            DeadLettered,
            Skipped,
            Failed,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("published"), None);
    }
}
