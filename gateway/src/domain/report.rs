//! Parsing and validating delivery reports (`POST /api/v1/{channel}/status/`), the same way
//! as notification requests: deserialized into [`DeliveryReportBody`] (the documented type),
//! then checked field by field with every problem named.

use chrono::{DateTime, Utc};
use notify_kit::{validate, FieldError};
use notify_schemas::{ids::NotificationId, DeliveryStatus};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The longest `error` kept; longer texts are cut.
const MAX_ERROR_CHARS: usize = 2000;

/// Body of a delivery report (snake_case only; unknown fields are rejected). Each field is
/// kept as sent and checked by [`DeliveryReport::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReportBody {
    /// The notification the report is about.
    #[schema(value_type = uuid::Uuid)]
    pub notification_id: Option<Value>,
    /// `sent`, `delivered`, `bounced` or `failed`.
    #[schema(value_type = String, example = "delivered")]
    pub status: Option<Value>,
    /// When it happened (RFC 3339); defaults to now.
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub timestamp: Option<Value>,
    /// What went wrong, for `bounced`/`failed` (at most 2000 characters are kept).
    #[schema(value_type = Option<String>)]
    pub error: Option<Value>,
}

/// A validated delivery report.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryReport {
    pub notification_id: NotificationId,
    pub status: DeliveryStatus,
    pub timestamp: DateTime<Utc>,
    pub error: Option<String>,
}

impl DeliveryReport {
    /// Validates a report body, reporting every problem with its field; a missing
    /// `timestamp` is `now`.
    pub fn parse(body: &Value, now: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<DeliveryReportBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let notification_id =
            validate::string(body.notification_id.as_ref(), "notification_id", &mut errors).and_then(|s| {
                NotificationId::parse(s)
                    .map_err(|_| errors.push(FieldError::new("notification_id", "must be a UUID")))
                    .ok()
            });
        let status = validate::string(body.status.as_ref(), "status", &mut errors).and_then(|s| match s {
            "sent" => Some(DeliveryStatus::Sent),
            "delivered" => Some(DeliveryStatus::Delivered),
            "bounced" => Some(DeliveryStatus::Bounced),
            "failed" => Some(DeliveryStatus::Failed),
            _ => {
                errors.push(FieldError::new(
                    "status",
                    "must be one of sent, delivered, bounced, failed",
                ));
                None
            }
        });
        let timestamp = match validate::optional_string(body.timestamp.as_ref(), "timestamp", &mut errors) {
            Err(()) => None,
            Ok(None) => Some(now),
            Ok(Some(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "timestamp",
                        "must be an RFC 3339 date-time, e.g. 2025-11-12T10:00:00Z",
                    ))
                })
                .ok(),
        };
        let error = validate::optional_string(body.error.as_ref(), "error", &mut errors)
            .ok()
            .flatten()
            .map(|s| s.chars().take(MAX_ERROR_CHARS).collect());
        match (notification_id, status, timestamp) {
            (Some(notification_id), Some(status), Some(timestamp)) if errors.is_empty() => Ok(Self {
                notification_id,
                status,
                timestamp,
                error,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0190c5a1-0000-7000-8000-000000000001";

    fn fields(body: Value) -> Vec<String> {
        let mut f: Vec<String> = DeliveryReport::parse(&body, Utc::now())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        f.sort_unstable();
        f
    }

    #[test]
    fn a_minimal_report_takes_the_current_time() {
        let now = Utc::now();
        let r = DeliveryReport::parse(&json!({"notification_id": ID, "status": "delivered"}), now).unwrap();
        assert_eq!(r.notification_id.to_string(), ID);
        assert_eq!(r.status, DeliveryStatus::Delivered);
        assert_eq!(r.timestamp, now);
        assert_eq!(r.error, None);
    }

    #[test]
    fn a_full_report_keeps_its_time_and_a_cut_error() {
        let r = DeliveryReport::parse(
            &json!({"notification_id": ID, "status": "bounced", "timestamp": "2025-11-12T10:00:00+01:00",
                    "error": "x".repeat(3000)}),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(r.timestamp.to_rfc3339(), "2025-11-12T09:00:00+00:00");
        assert_eq!(r.error.map(|e| e.chars().count()), Some(MAX_ERROR_CHARS));
    }

    #[test]
    fn every_problem_is_named_at_once() {
        assert_eq!(
            fields(
                json!({"notification_id": "nope", "status": "read", "timestamp": "yesterday",
                          "error": 1, "notificationId": ID})
            ),
            ["error", "notificationId", "notification_id", "status", "timestamp"]
        );
        assert_eq!(fields(json!({})), ["notification_id", "status"]);
        assert_eq!(fields(json!([])), ["body"]);
    }
}
