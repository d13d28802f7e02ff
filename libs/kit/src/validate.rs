//! Field-by-field checks of JSON bodies, so that every problem is reported at once with the
//! field it concerns (a JSON path such as `content.fr.subject`), unknown and camelCase
//! fields included, instead of serde's first-error-wins. Handlers read the body as a
//! `serde_json::Value`, deserialize it into the request type the OpenAPI document describes
//! with [`body`] (whose fields are the only ones accepted), then build their domain types
//! from its fields with these helpers.

use serde::de::{self, DeserializeOwned, Visitor};
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

/// The field names `T` deserializes from (its serde names, renames applied), read from its
/// `Deserialize` implementation. For structs only: anything else answers `&[]`.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The introspector always answers an error once it has the names.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that records the field names a struct asks for, and nothing else.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Introspected;

impl std::fmt::Display for Introspected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names read")
    }
}

impl std::error::Error for Introspected {}

impl de::Error for Introspected {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Self
    }
}

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = Introspected;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Introspected> {
        Err(Introspected)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Introspected> {
        *self.0 = fields;
        Err(Introspected)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Deserializes the object at `at` (`""` for the body itself) into the request type `T`.
/// Every key that is not one of `T`'s fields is reported (with the snake_case spelling when
/// it is a camelCase one) and left out, so the caller goes on checking the known fields and
/// reports every problem at once. `None` (error recorded) when the value is not an object
/// or does not fit `T`; request types keep their fields as loose as JSON (`Option<Value>`)
/// so that the domain checks name each field's problem.
pub fn body<T: DeserializeOwned>(value: &Value, at: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    let obj = object(value, at, errors)?;
    let fields = fields_of::<T>();
    reject_unknown(obj, fields, at, errors);
    let known: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(known))
        .map_err(|e| errors.push(FieldError::new(if at.is_empty() { "body" } else { at }, e.to_string())))
        .ok()
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
    string(obj.get(field), &path(prefix, field), errors)
}

/// A required string value at `at` (a request type's field): `None` (error recorded) when
/// absent, `null` or not a string.
pub fn string<'a>(value: Option<&'a Value>, at: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match value {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(at, "is required"));
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(FieldError::new(at, "must be a string"));
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
    optional_string(obj.get(field), &path(prefix, field), errors)
}

/// An optional string value at `at`: `Ok(None)` when absent or `null`, `Err(())` (error
/// recorded) when present with another type.
#[allow(clippy::result_unit_err)]
pub fn optional_string<'a>(
    value: Option<&'a Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<&'a str>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => {
            errors.push(FieldError::new(at, "must be a string"));
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
    boolean(obj.get(field), &path(prefix, field), errors)
}

/// A required boolean value at `at`.
pub fn boolean(value: Option<&Value>, at: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match value {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(at, "is required"));
            None
        }
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::new(at, "must be true or false"));
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: Option<Value>,
        #[serde(rename = "pushToken")]
        push_token: Option<Value>,
    }

    #[test]
    fn the_fields_of_a_request_type_are_its_serde_names() {
        assert_eq!(fields_of::<Sample>(), ["name", "pushToken"]);
        assert!(fields_of::<String>().is_empty());
    }

    #[test]
    fn a_body_keeps_its_known_fields_and_names_every_unknown_one() {
        let mut errors = Vec::new();
        let sample: Sample = body(
            &json!({"name": "a", "colour": 1, "size": 2, "pushToken": null}),
            "",
            &mut errors,
        )
        .unwrap();
        assert_eq!(sample.name, Some(json!("a")));
        assert_eq!(sample.push_token, None);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "size"]);
        assert!(errors[0].reason.contains("expected one of: name, pushToken"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_named_by_its_path() {
        let mut errors = Vec::new();
        assert!(body::<Sample>(&json!([1]), "", &mut errors).is_none());
        assert!(body::<Sample>(&json!("x"), "user.prefs", &mut errors).is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["body", "user.prefs"]);
    }

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
