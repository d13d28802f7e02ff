//! Checks that an OpenAPI document describes the request bodies the handlers really parse.

use notify_kit::validate;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Asserts that the request body of `method path` in `doc` (the document as JSON) is the
/// schema of `T`, the type the handler deserializes the body into: its properties are
/// exactly `T`'s fields, every documented property is accepted by the parser, and a field
/// the document does not show is refused, named.
pub fn assert_request_body_is<T: DeserializeOwned>(doc: &Value, method: &str, path: &str) {
    let operation = &doc["paths"][path][method];
    let reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} documents no request body schema: {operation}"));
    let name = reference
        .strip_prefix("#/components/schemas/")
        .unwrap_or_else(|| panic!("{method} {path}: unexpected reference {reference}"));
    let properties = doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {name} has no properties"));

    let mut documented: Vec<&str> = properties.keys().map(String::as_str).collect();
    let mut accepted = validate::fields_of::<T>().to_vec();
    documented.sort_unstable();
    accepted.sort_unstable();
    assert_eq!(
        documented, accepted,
        "{method} {path}: the documented properties of {name} and the fields its parser accepts differ"
    );

    let every_property: Map<String, Value> = properties.keys().map(|k| (k.clone(), Value::Null)).collect();
    let mut errors = Vec::new();
    validate::body::<T>(&Value::Object(every_property), "", &mut errors);
    assert!(errors.is_empty(), "{name}: documented properties refused: {errors:?}");

    let unknown = "not_a_documented_field";
    let refused = serde_json::from_value::<T>(serde_json::json!({ unknown: 1 }))
        .err()
        .unwrap_or_else(|| panic!("{name} accepts a field the document does not show"));
    assert!(refused.to_string().contains(unknown), "{name}: {refused}");
    let mut errors = Vec::new();
    validate::body::<T>(&serde_json::json!({ unknown: 1 }), "", &mut errors);
    assert!(
        errors.iter().any(|e| e.field == unknown),
        "{name}: an unknown field is named in the validation errors: {errors:?}"
    );
}
