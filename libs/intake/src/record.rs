//! The producer request (`io.notify.requests.NotificationRequest`, [`IngestRequest`]) and the
//! API's request body are one request in two encodings. A record is validated by mapping it to
//! the API body and parsing that with [`NotificationRequest::parse`], so a producer is held to
//! exactly the API's rules, reported with the same field names.

use notify_kit::{correlation::CorrelationId, FieldError};
use notify_schemas::IngestRequest;
use serde_json::{json, Value};

use crate::request::NotificationRequest;

/// Scope a producer token needs to publish notification requests.
pub const SCOPE_PRODUCE: &str = "notifications:produce";

/// Default audience of producer tokens: distinct from the API's (`notify-api`), so an API
/// token is not a producer token and the other way round.
pub const PRODUCER_AUDIENCE: &str = "notify-ingest";

/// A record's JSON-in-a-string field, parsed (a string that is not JSON stays a string, which
/// the validation then reports as "must be a JSON object").
fn json_field(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// The API body a record stands for.
pub fn body_of(record: &IngestRequest) -> Value {
    json!({
        "notification_type": record.notification_type.as_str(),
        "user_id": record.user_id,
        "template_code": record.template_code,
        "variables": json_field(&record.variables),
        "request_id": record.request_id,
        "priority": record.priority,
        "metadata": json_field(&record.metadata),
    })
}

/// A validated producer request: the request and its correlation id (when the record has one).
#[derive(Debug, Clone)]
pub struct ValidRecord {
    pub request: NotificationRequest,
    pub correlation_id: Option<CorrelationId>,
}

/// Validates a record with the API's rules, reporting every problem with its field.
pub fn parse_record(record: &IngestRequest) -> Result<ValidRecord, Vec<FieldError>> {
    let parsed = NotificationRequest::parse(&body_of(record));
    let correlation_id = match record.correlation_id.as_deref() {
        None => Ok(None),
        Some(raw) => CorrelationId::parse(raw)
            .map(Some)
            .ok_or_else(|| FieldError::new("correlation_id", "must be 1 to 128 of letters, digits and . _ : -")),
    };
    match (parsed, correlation_id) {
        (Ok(request), Ok(correlation_id)) => Ok(ValidRecord {
            request,
            correlation_id,
        }),
        (parsed, correlation_id) => {
            let mut errors = parsed.err().unwrap_or_default();
            errors.extend(correlation_id.err());
            Err(errors)
        }
    }
}

/// The record for a validated request (what the producer library publishes).
pub fn record_of(request: &NotificationRequest, correlation_id: Option<&CorrelationId>) -> IngestRequest {
    IngestRequest {
        request_id: request.request_id.as_str().to_string(),
        notification_type: request.channel,
        user_id: request.user_id.to_string(),
        template_code: request.template_code.as_str().to_string(),
        variables: Value::Object(request.variables.clone()).to_string(),
        priority: i32::from(request.priority.value()),
        metadata: Value::Object(request.metadata.clone()).to_string(),
        correlation_id: correlation_id.map(|c| c.as_str().to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use notify_schemas::Channel;

    fn record() -> IngestRequest {
        IngestRequest {
            request_id: "order-42".into(),
            notification_type: Channel::Email,
            user_id: "6c1b2a3d-0000-4000-8000-000000000001".into(),
            template_code: "welcome_email".into(),
            variables: r#"{"name":"Ada"}"#.into(),
            priority: 5,
            metadata: "{}".into(),
            correlation_id: Some("corr-1".into()),
        }
    }

    #[test]
    fn a_valid_record_is_the_request_the_api_would_accept() {
        let valid = parse_record(&record()).unwrap();
        assert_eq!(valid.request.request_id.as_str(), "order-42");
        assert_eq!(valid.request.variables["name"], "Ada");
        assert_eq!(valid.correlation_id.unwrap().as_str(), "corr-1");
        let api = NotificationRequest::parse(&body_of(&record())).unwrap();
        assert_eq!(api.fingerprint(), valid.request.fingerprint());
    }

    #[test]
    fn every_problem_is_named_by_its_field_as_the_api_names_it() {
        let mut bad = record();
        bad.user_id = "u-1".into();
        bad.variables = "not json".into();
        bad.priority = 11;
        bad.correlation_id = Some("has spaces".into());
        let mut fields: Vec<String> = parse_record(&bad).unwrap_err().into_iter().map(|e| e.field).collect();
        fields.sort();
        assert_eq!(fields, ["correlation_id", "priority", "user_id", "variables"]);
    }

    #[test]
    fn a_record_survives_the_round_trip_through_the_request() {
        let valid = parse_record(&record()).unwrap();
        assert_eq!(record_of(&valid.request, valid.correlation_id.as_ref()), record());
    }
}
