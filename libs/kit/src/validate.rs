//! Field-by-field checks of JSON bodies, so that every problem is reported at once with the
//! field it concerns (a JSON path such as `content.fr.subject`), unknown and camelCase
//! fields included, instead of serde's first-error-wins. Handlers read the body as a
//! `serde_json::Value` and build their domain types with these helpers.

use serde_json::{Map, Value};

use crate::error::FieldError;

/// The path of `field` inside the object at `prefix` (`""` for the body itself).
pub fn path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// `userId` → `user_id` (and `-` → `_`), to suggest the snake_case name of a field.
pub fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

/// The value as an object, or an error at `at`.
pub fn object<'a>(value: &'a Value, at: &str, errors: &mut Vec<FieldError>) -> Option<&'a Map<String, Value>> {
    match value.as_object() {
        Some(map) => Some(map),
        None => {
            errors.push(FieldError::new(
                if at.is_empty() { "body" } else { at },
                "must be a JSON object",
            ));
            None
        }
    }
}

/// Reports every key of `obj` that is not in `allowed`, suggesting the snake_case name when
/// the key is a camelCase spelling of an allowed one.
pub fn reject_unknown(obj: &Map<String, Value>, allowed: &[&str], prefix: &str, errors: &mut Vec<FieldError>) {
    for key in obj.keys() {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        let snake = camel_to_snake(key);
        let reason = if allowed.contains(&snake.as_str()) {
            format!("unknown field; fields are snake_case: did you mean `{snake}`?")
        } else {
            format!("unknown field; expected one of: {}", allowed.join(", "))
        };
        errors.push(FieldError::new(path(prefix, key), reason));
    }
}

/// A required string field.
pub fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(path(prefix, field), "is required"));
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(FieldError::new(path(prefix, field), "must be a string"));
            None
        }
    }
}

/// An optional string field: `Ok(None)` when absent or `null`, `Err(())` (error recorded)
/// when present with another type.
#[allow(clippy::result_unit_err)]
pub fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<&'a str>, ()> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => {
            errors.push(FieldError::new(path(prefix, field), "must be a string"));
            Err(())
        }
    }
}

/// A required boolean field.
pub fn required_bool(
    obj: &Map<String, Value>,
    field: &str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<bool> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(path(prefix, field), "is required"));
            None
        }
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::new(path(prefix, field), "must be true or false"));
            None
        }
    }
}

/// A required object field.
pub fn required_object<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(path(prefix, field), "is required"));
            None
        }
        Some(v) => object(v, &path(prefix, field), errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_and_camel_case_fields_are_named_with_their_path() {
        let body = json!({"pushToken": "x", "colour": 1, "name": "a"});
        let mut errors = Vec::new();
        reject_unknown(body.as_object().unwrap(), &["name", "push_token"], "user", &mut errors);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "user.colour");
        assert!(errors[0].reason.contains("expected one of: name, push_token"));
        assert_eq!(errors[1].field, "user.pushToken");
        assert!(errors[1].reason.contains("did you mean `push_token`"));
    }

    #[test]
    fn typed_getters_report_missing_and_mistyped_fields() {
        let body = json!({"a": 1, "b": "x", "c": null, "d": true});
        let obj = body.as_object().unwrap();
        let mut errors = Vec::new();
        assert_eq!(required_str(obj, "a", "", &mut errors), None);
        assert_eq!(required_str(obj, "b", "", &mut errors), Some("x"));
        assert_eq!(required_str(obj, "c", "", &mut errors), None);
        assert_eq!(optional_str(obj, "c", "", &mut errors), Ok(None));
        assert_eq!(required_bool(obj, "d", "p", &mut errors), Some(true));
        assert_eq!(required_bool(obj, "b", "p", &mut errors), None);
        assert!(required_object(obj, "d", "", &mut errors).is_none());
        let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.reason.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a", "must be a string"),
                ("c", "is required"),
                ("p.b", "must be true or false"),
                ("d", "must be a JSON object"),
            ]
        );
    }
}
