//! Parsing and validating notification requests: `POST /api/v1/notifications/` bodies, and
//! producer requests from `notifications.requests` (the ingest service maps each record to the
//! same body first, so both are held to exactly these rules).
//!
//! The body is deserialized into [`SendNotificationBody`] (the type the OpenAPI document
//! shows; unknown and camelCase fields are reported, all of them) and then checked field by
//! field, so that every problem is reported at once with the field it concerns, instead of
//! serde's first-error-wins.

use notify_kit::{validate, FieldError};
use notify_schemas::{ids::UserId, Channel};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Priorities at or above this travel on the channel's priority topic.
pub const HIGH_PRIORITY_MIN: i16 = 8;
const DEFAULT_PRIORITY: i16 = 5;
const MAX_VARIABLES: usize = 100;
const MAX_METADATA_KEYS: usize = 50;

/// Request body of `POST /api/v1/notifications/` (snake_case only; unknown fields are
/// rejected). Each field is kept as sent and checked by [`NotificationRequest::parse`], which
/// names every field's problem.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendNotificationBody {
    /// `email` or `push`.
    #[schema(value_type = String, example = "email")]
    pub notification_type: Option<Value>,
    /// Recipient user id.
    #[schema(value_type = uuid::Uuid)]
    pub user_id: Option<Value>,
    /// Template code: lowercase letters, digits, `_ . -`.
    #[schema(value_type = String, example = "welcome_email")]
    pub template_code: Option<Value>,
    /// Template variables (names: letters, digits, `_`).
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// Idempotency key, unique per caller: 1..128 of `[A-Za-z0-9._:-]`.
    #[schema(value_type = String)]
    pub request_id: Option<Value>,
    /// 1 (lowest) to 10 (highest), default 5; 8 and above are delivered first.
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 10)]
    pub priority: Option<Value>,
    /// Caller metadata, stored and passed along.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// The caller's idempotency key: 1 to 128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 128 {
            return Err("must be 1 to 128 characters".into());
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err("may contain only letters, digits and . _ : -".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A template code: 1 to 64 characters, lowercase letters, digits, `_`, `.`, `-`, starting
/// with a letter or digit (e.g. `welcome_email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCode(String);

impl TemplateCode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid_start = raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if raw.len() > 64 || !valid_start {
            return Err("must be 1 to 64 characters and start with a lowercase letter or digit".into());
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err("may contain only lowercase letters, digits and _ . -".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 (lowest) to 10 (highest); default 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(i16);

impl Priority {
    pub fn parse(v: &Value) -> Result<Self, String> {
        let n = v
            .as_i64()
            .ok_or_else(|| "must be an integer from 1 to 10".to_string())?;
        if !(1..=10).contains(&n) {
            return Err("must be an integer from 1 to 10".into());
        }
        // 1..=10 fits in i16.
        Ok(Self(i16::try_from(n).unwrap_or(DEFAULT_PRIORITY)))
    }

    pub fn value(self) -> i16 {
        self.0
    }

    /// Whether it travels on the priority topic.
    pub fn is_high(self) -> bool {
        self.0 >= HIGH_PRIORITY_MIN
    }
}

/// A validated notification request.
#[derive(Debug, Clone)]
pub struct NotificationRequest {
    pub channel: Channel,
    pub user_id: UserId,
    pub template_code: TemplateCode,
    pub variables: Map<String, Value>,
    pub request_id: RequestId,
    pub priority: Priority,
    pub metadata: Map<String, Value>,
}

fn is_variable_name(k: &str) -> bool {
    let mut bytes = k.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && k.len() <= 64 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn optional_object(
    value: Option<&Value>,
    field: &str,
    max_keys: usize,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    match value {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) if m.len() > max_keys => {
            errors.push(FieldError::new(field, format!("may hold at most {max_keys} keys")));
            Map::new()
        }
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            errors.push(FieldError::new(field, "must be a JSON object"));
            Map::new()
        }
    }
}

impl NotificationRequest {
    /// Validates a request body, reporting every problem with its field.
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<SendNotificationBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let channel =
            validate::string(body.notification_type.as_ref(), "notification_type", &mut errors).and_then(|s| {
                s.parse::<Channel>()
                    .map_err(|_| errors.push(FieldError::new("notification_type", "must be `email` or `push`")))
                    .ok()
            });
        let user_id = validate::string(body.user_id.as_ref(), "user_id", &mut errors).and_then(|s| {
            UserId::parse(s)
                .map_err(|_| errors.push(FieldError::new("user_id", "must be a UUID")))
                .ok()
        });
        let template_code = validate::string(body.template_code.as_ref(), "template_code", &mut errors).and_then(|s| {
            TemplateCode::parse(s)
                .map_err(|r| errors.push(FieldError::new("template_code", r)))
                .ok()
        });
        let request_id = validate::string(body.request_id.as_ref(), "request_id", &mut errors).and_then(|s| {
            RequestId::parse(s)
                .map_err(|r| errors.push(FieldError::new("request_id", r)))
                .ok()
        });
        let priority = match &body.priority {
            None | Some(Value::Null) => Some(Priority(DEFAULT_PRIORITY)),
            Some(v) => Priority::parse(v)
                .map_err(|r| errors.push(FieldError::new("priority", r)))
                .ok(),
        };
        let variables = optional_object(body.variables.as_ref(), "variables", MAX_VARIABLES, &mut errors);
        for key in variables.keys() {
            if !is_variable_name(key) {
                errors.push(FieldError::new(
                    format!("variables.{key}"),
                    "variable names are letters, digits and _ (not starting with a digit), at most 64",
                ));
            }
        }
        let metadata = optional_object(body.metadata.as_ref(), "metadata", MAX_METADATA_KEYS, &mut errors);

        match (channel, user_id, template_code, request_id, priority) {
            (Some(channel), Some(user_id), Some(template_code), Some(request_id), Some(priority))
                if errors.is_empty() =>
            {
                Ok(Self {
                    channel,
                    user_id,
                    template_code,
                    variables,
                    request_id,
                    priority,
                    metadata,
                })
            }
            _ => Err(errors),
        }
    }

    /// The canonical form (defaults applied, keys sorted), used for the idempotency hash.
    pub fn canonical(&self) -> Value {
        serde_json::json!({
            "notification_type": self.channel.as_str(),
            "user_id": self.user_id,
            "template_code": self.template_code.as_str(),
            "variables": self.variables,
            "request_id": self.request_id.as_str(),
            "priority": self.priority.value(),
            "metadata": self.metadata,
        })
    }

    /// SHA-256 of the canonical form: equal for requests that mean the same.
    pub fn fingerprint(&self) -> [u8; 32] {
        // serde_json's Map is ordered by key, so serialisation is canonical.
        Sha256::digest(self.canonical().to_string().as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "notification_type": "email",
            "user_id": "6c1b2a3d-0000-4000-8000-000000000001",
            "template_code": "welcome_email",
            "variables": {"name": "John Doe", "link": "https://example.com"},
            "request_id": "unique-idempotency-key",
            "priority": 1,
            "metadata": {}
        })
    }

    fn errors_for(body: Value) -> Vec<FieldError> {
        NotificationRequest::parse(&body).unwrap_err()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn the_spec_example_is_valid() {
        let r = NotificationRequest::parse(&valid()).unwrap();
        assert_eq!(r.channel, Channel::Email);
        assert_eq!(r.priority.value(), 1);
        assert!(!r.priority.is_high());
    }

    #[test]
    fn camel_case_fields_are_rejected_with_a_hint() {
        let mut body = valid();
        let obj = body.as_object_mut().unwrap();
        let v = obj.remove("user_id").unwrap();
        obj.insert("userId".into(), v);
        let errs = errors_for(body);
        assert!(fields(&errs).contains(&"userId"));
        assert!(errs.iter().any(|e| e.reason.contains("did you mean `user_id`")));
        assert!(fields(&errs).contains(&"user_id"), "user_id is then missing");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = errors_for(json!({
            "notification_type": "sms",
            "user_id": "not-a-uuid",
            "template_code": "Welcome Email",
            "variables": [],
            "request_id": "",
            "priority": 11,
            "metadata": "x",
            "extra": true
        }));
        let mut f = fields(&errs);
        f.sort_unstable();
        assert_eq!(
            f,
            vec![
                "extra",
                "metadata",
                "notification_type",
                "priority",
                "request_id",
                "template_code",
                "user_id",
                "variables"
            ]
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let errs = errors_for(json!({}));
        let mut f = fields(&errs);
        f.sort_unstable();
        assert_eq!(f, vec!["notification_type", "request_id", "template_code", "user_id"]);
        assert!(errs.iter().all(|e| e.reason == "is required"));
    }

    #[test]
    fn priority_must_be_a_whole_number_in_range() {
        for bad in [json!(0), json!(11), json!(2.5), json!("5"), json!(true)] {
            let mut body = valid();
            body["priority"] = bad.clone();
            assert_eq!(fields(&errors_for(body)), vec!["priority"], "{bad}");
        }
        let mut body = valid();
        body.as_object_mut().unwrap().remove("priority");
        assert_eq!(NotificationRequest::parse(&body).unwrap().priority.value(), 5);
        body["priority"] = json!(8);
        assert!(NotificationRequest::parse(&body).unwrap().priority.is_high());
    }

    #[test]
    fn variable_names_are_checked() {
        let mut body = valid();
        body["variables"] = json!({"1st": "x", "ok_name": 1});
        assert_eq!(fields(&errors_for(body)), vec!["variables.1st"]);
    }

    #[test]
    fn request_ids_reject_spaces_and_overlong_values() {
        assert!(RequestId::parse("abc DEF").is_err());
        assert!(RequestId::parse(&"a".repeat(129)).is_err());
        assert!(RequestId::parse("order-42:retry.1_x").is_ok());
    }

    #[test]
    fn a_body_that_is_not_an_object_is_rejected() {
        assert_eq!(fields(&errors_for(json!([1, 2]))), vec!["body"]);
    }

    #[test]
    fn equivalent_requests_share_a_fingerprint() {
        let a = NotificationRequest::parse(&valid()).unwrap();
        let mut reordered = valid();
        reordered["metadata"] = json!({});
        let b = NotificationRequest::parse(&reordered).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut changed = valid();
        changed["variables"]["name"] = json!("Jane");
        let c = NotificationRequest::parse(&changed).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
