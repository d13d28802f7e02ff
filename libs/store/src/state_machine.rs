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

    /// The projection as `apply` runs it (the SQL decides as `can_transition` does, tested
    /// above): the status moves along allowed transitions, the attempt count follows the
    /// events that moved it, and an event seen before (same status and attempt) is dropped.
    fn project(events: &[(Status, i32)]) -> (Status, i32) {
        let mut seen = std::collections::HashSet::new();
        let (mut status, mut attempts) = (Pending, 0);
        for &(to, attempt) in events {
            if seen.insert((to, attempt)) && can_transition(status, attempts, to, attempt) {
                status = to;
                attempts = attempts.max(attempt);
            }
        }
        (status, attempts)
    }

    /// The events of one notification's delivery: `retrying` for attempts 1..k, then one
    /// outcome at attempt k+1 (`sent`, `dead_lettered` or `skipped`), then, after a `sent`,
    /// the provider's reports (`delivered`, then possibly `bounced`). In their causal order.
    fn lifecycle() -> impl Strategy<Value = Vec<(Status, i32)>> {
        (
            0..6i32,
            prop::sample::select(vec![Sent, DeadLettered, Skipped]),
            0..3usize,
        )
            .prop_map(|(retries, outcome, reports)| {
                let mut events: Vec<(Status, i32)> = (1..=retries).map(|a| (Retrying, a)).collect();
                let last = retries + 1;
                events.push((outcome, last));
                if outcome == Sent {
                    events.extend([(Delivered, last), (Bounced, last)].into_iter().take(reports));
                }
                events
            })
    }

    fn any_events() -> impl Strategy<Value = Vec<(Status, i32)>> {
        prop::collection::vec((prop::sample::select(Status::ALL.to_vec()), 0..6i32), 0..12)
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        /// Status events may arrive out of order (delay topics, provider reports through the
        /// gateway): any order of one delivery's events ends where the causal order ends.
        #[test]
        fn any_order_of_one_deliverys_events_converges(
            (events, shuffled) in lifecycle().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle())),
            duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let in_order = project(&events);
            prop_assert_eq!(in_order.0, events.last().unwrap().0, "the causal order ends on its last event");
            let mut delivered = shuffled.clone();
            // At-least-once: some events arrive twice.
            for d in duplicates {
                delivered.insert(d.index(delivered.len() + 1), *d.get(&shuffled));
            }
            prop_assert_eq!(project(&delivered), in_order, "{:?} (causal order {:?})", delivered, events);
        }

        /// What the design promises for any events at all, in any order.
        #[test]
        fn the_promised_moves_hold_for_any_events(events in any_events()) {
            let (mut status, mut attempts) = (Pending, 0);
            for (i, &(to, attempt)) in events.iter().enumerate() {
                let (next, next_attempts) = project(&events[..=i]);
                prop_assert!(next_attempts >= attempts, "the attempt count never goes back");
                if next != status {
                    prop_assert_eq!(next, to, "only the arriving event sets the status");
                    prop_assert!(!matches!(status, Skipped | Bounced), "{:?} is final", status);
                    prop_assert!(next != Pending, "nothing moves back to pending");
                    prop_assert!(
                        !(to == Retrying && matches!(status, Sent | Delivered | Bounced | Skipped)),
                        "a late retrying never overwrites {:?}", status
                    );
                    prop_assert!(!(status == Delivered && to == Sent), "sent never overwrites delivered");
                    if to == Retrying && status == Retrying {
                        prop_assert!(attempt > attempts, "retries only move forward");
                    }
                }
                // Applying the same event again changes nothing.
                let mut again = events[..=i].to_vec();
                again.push((to, attempt));
                prop_assert_eq!(project(&again), (next, next_attempts));
                (status, attempts) = (next, next_attempts);
            }
        }
    }
}
