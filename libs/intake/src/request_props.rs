//! Property tests of the request parser and its validators: generated valid bodies are
//! accepted as sent; a valid body with one or more fields broken is refused, naming exactly
//! the broken fields; any JSON at all is answered without a panic.

use notify_kit::FieldError;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::request::{NotificationRequest, Priority, RequestId, TemplateCode};

/// `PROPTEST_CASES` when set (the long run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels.
pub(crate) fn any_json() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,10}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn variable_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,63}"
}

fn object_of(keys: impl Strategy<Value = String>, max: usize) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(keys, json_scalar(), 0..=max).prop_map(|m| m.into_iter().collect())
}

/// A valid body; optional fields absent, `null` or set.
fn valid_body() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["email", "push"]),
        any::<u128>(),
        "[a-z0-9][a-z0-9_.-]{0,63}",
        "[A-Za-z0-9._:-]{1,128}",
        prop::option::of(prop_oneof![Just(Value::Null), (1..=10i64).prop_map(Value::from)]),
        prop::option::of(prop_oneof![
            Just(Value::Null),
            object_of(variable_name(), 8).prop_map(Value::Object)
        ]),
        prop::option::of(prop_oneof![
            Just(Value::Null),
            object_of("\\PC{0,12}", 8).prop_map(Value::Object)
        ]),
    )
        .prop_map(|(channel, id, code, request_id, priority, variables, metadata)| {
            let mut body = json!({
                "notification_type": channel,
                "user_id": uuid::Uuid::from_u128(id).to_string(),
                "template_code": code,
                "request_id": request_id,
            });
            for (field, value) in [("priority", priority), ("variables", variables), ("metadata", metadata)] {
                if let Some(v) = value {
                    body[field] = v;
                }
            }
            body
        })
}

/// One way to break a valid body, and the field the error must name.
#[derive(Debug, Clone)]
enum Breakage {
    /// Sets `field` to `value`; the error names `field`.
    Set(&'static str, Value),
    /// Removes a required field: "is required".
    Remove(&'static str),
    /// Adds a field the body does not have.
    Unknown(String),
    /// A variable name that is not one.
    BadVariable(String),
}

impl Breakage {
    fn field(&self) -> String {
        match self {
            Self::Set(field, _) | Self::Remove(field) => (*field).to_string(),
            Self::Unknown(name) => name.clone(),
            Self::BadVariable(name) => format!("variables.{name}"),
        }
    }

    fn apply(&self, body: &mut Value) {
        let obj = body.as_object_mut().unwrap();
        match self {
            Self::Set(field, value) => {
                obj.insert((*field).to_string(), value.clone());
            }
            Self::Remove(field) => {
                obj.remove(*field);
            }
            Self::Unknown(name) => {
                obj.insert(name.clone(), json!(1));
            }
            Self::BadVariable(name) => {
                let vars = obj.entry("variables").or_insert_with(|| json!({}));
                if !vars.is_object() {
                    *vars = json!({});
                }
                vars.as_object_mut().unwrap().insert(name.clone(), json!("x"));
            }
        }
    }
}

fn non_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

fn many_keys(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect())
}

/// The part of a body a breakage concerns; two breakages of one kind would overlap.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    NotificationType,
    UserId,
    TemplateCode,
    RequestId,
    Priority,
    Variables,
    Metadata,
    Unknown,
    BadVariable,
}

const KINDS: [Kind; 9] = [
    Kind::NotificationType,
    Kind::UserId,
    Kind::TemplateCode,
    Kind::RequestId,
    Kind::Priority,
    Kind::Variables,
    Kind::Metadata,
    Kind::Unknown,
    Kind::BadVariable,
];

fn breakage_of(kind: Kind) -> BoxedStrategy<Breakage> {
    use Breakage::*;
    let required = |field: &'static str, bad: BoxedStrategy<String>| -> BoxedStrategy<Breakage> {
        prop_oneof![
            bad.prop_map(move |s| Set(field, json!(s))),
            non_string().prop_map(move |v| Set(field, v)),
            Just(Remove(field)),
        ]
        .boxed()
    };
    match kind {
        Kind::NotificationType => required(
            "notification_type",
            prop_oneof![
                "[a-z]{1,8}".prop_filter("not a channel", |s| s != "email" && s != "push"),
                Just("EMAIL".to_string()),
                Just(String::new()),
            ]
            .boxed(),
        ),
        Kind::UserId => required(
            "user_id",
            prop_oneof!["[g-z]{1,40}", Just(String::new()), "[0-9a-f]{8}-[0-9a-f]{4}"].boxed(),
        ),
        Kind::TemplateCode => required(
            "template_code",
            prop_oneof![
                "[a-z0-9]{0,5}[A-Z ][a-z0-9]{0,5}",
                "[_.-][a-z0-9]{0,5}",
                Just(String::new()),
                "[a-z]{65,80}",
                "[a-z]{1,4}[é/@][a-z]{0,4}",
            ]
            .boxed(),
        ),
        Kind::RequestId => required(
            "request_id",
            prop_oneof![Just(String::new()), "[a-z]{129,140}", "[a-z]{0,5}[ /?#é][a-z]{0,5}"].boxed(),
        ),
        Kind::Priority => prop_oneof![
            (i64::MIN..=0).prop_map(Value::from),
            (11..=i64::MAX).prop_map(Value::from),
            (1.01f64..9.99)
                .prop_filter("not whole", |f| f.fract() != 0.0)
                .prop_map(Value::from),
            "[0-9]{1,2}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(json!({})),
        ]
        .prop_map(|v| Set("priority", v))
        .boxed(),
        Kind::Variables => prop_oneof![Just(json!([])), Just(json!("x")), Just(json!(1)), Just(many_keys(101))]
            .prop_map(|v| Set("variables", v))
            .boxed(),
        Kind::Metadata => prop_oneof![
            Just(json!([])),
            Just(json!("x")),
            Just(json!(true)),
            Just(many_keys(51))
        ]
        .prop_map(|v| Set("metadata", v))
        .boxed(),
        Kind::Unknown => prop_oneof!["[a-z]{1,10}", "[a-z]{1,5}[A-Z][a-z]{1,5}"]
            .prop_filter("not a field", |s| {
                ![
                    "notification_type",
                    "user_id",
                    "template_code",
                    "variables",
                    "request_id",
                    "priority",
                    "metadata",
                ]
                .contains(&s.as_str())
            })
            .prop_map(Unknown)
            .boxed(),
        Kind::BadVariable => prop_oneof![
            "[0-9][a-z0-9_]{0,10}",
            "[a-z]{1,5}[-. é][a-z]{0,5}",
            "[a-z_]{65,70}",
            Just(String::new())
        ]
        .prop_map(BadVariable)
        .boxed(),
    }
}

fn breakage() -> impl Strategy<Value = Breakage> {
    prop::sample::select(KINDS.to_vec()).prop_flat_map(breakage_of)
}

/// Breakages of distinct kinds (the variables replaced and a bad variable name exclude each
/// other: a replaced `variables` has no names to check).
fn breakages() -> impl Strategy<Value = Vec<Breakage>> {
    prop::sample::subsequence(KINDS.to_vec(), 1..=KINDS.len())
        .prop_filter("variables replaced or named badly, not both", |kinds| {
            !(kinds.contains(&Kind::Variables) && kinds.contains(&Kind::BadVariable))
        })
        .prop_flat_map(|kinds| kinds.into_iter().map(breakage_of).collect::<Vec<_>>())
}

fn fields_of(errors: &[FieldError]) -> Vec<String> {
    let mut fields: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn valid_bodies_are_accepted_as_sent(body in valid_body()) {
        let r = NotificationRequest::parse(&body).map_err(|e| fields_of(&e));
        prop_assert!(r.is_ok(), "{} refused: {:?}", body, r.as_ref().err());
        let r = r.unwrap();
        prop_assert_eq!(r.channel.as_str(), body["notification_type"].as_str().unwrap());
        prop_assert_eq!(r.user_id.to_string(), body["user_id"].as_str().unwrap());
        prop_assert_eq!(r.template_code.as_str(), body["template_code"].as_str().unwrap());
        prop_assert_eq!(r.request_id.as_str(), body["request_id"].as_str().unwrap());
        let priority = body.get("priority").and_then(Value::as_i64).unwrap_or(5);
        prop_assert_eq!(i64::from(r.priority.value()), priority);
        prop_assert_eq!(r.priority.is_high(), priority >= 8);
        let empty = Value::Object(Map::new());
        let given = |f: &str| body.get(f).filter(|v| !v.is_null()).unwrap_or(&empty).clone();
        prop_assert_eq!(Value::Object(r.variables.clone()), given("variables"));
        prop_assert_eq!(Value::Object(r.metadata.clone()), given("metadata"));
        prop_assert_eq!(r.canonical()["priority"].as_i64(), Some(priority));
    }

    #[test]
    fn a_broken_field_is_refused_and_named(body in valid_body(), broken in breakage()) {
        let mut body = body;
        broken.apply(&mut body);
        let errors = NotificationRequest::parse(&body);
        prop_assert!(errors.is_err(), "{} accepted after {:?}", body, broken);
        let errors = errors.unwrap_err();
        prop_assert_eq!(fields_of(&errors), vec![broken.field()], "{}", body);
        prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
        if let Breakage::Remove(_) = broken {
            prop_assert_eq!(errors[0].reason.as_str(), "is required");
        }
    }

    #[test]
    fn every_broken_field_is_named_at_once(body in valid_body(), broken in breakages()) {
        let mut body = body;
        for b in &broken {
            b.apply(&mut body);
        }
        let mut expected: Vec<String> = broken.iter().map(Breakage::field).collect();
        expected.sort_unstable();
        let errors = NotificationRequest::parse(&body);
        prop_assert!(errors.is_err(), "{} accepted", body);
        prop_assert_eq!(fields_of(&errors.unwrap_err()), expected, "{}", body);
    }

    #[test]
    fn equal_requests_share_a_fingerprint_whatever_the_defaults(body in valid_body()) {
        let a = NotificationRequest::parse(&body).unwrap();
        let mut spelled_out = body.clone();
        for (field, default) in [("priority", json!(5)), ("variables", json!({})), ("metadata", json!({}))] {
            if body.get(field).is_none_or(Value::is_null) {
                spelled_out[field] = default;
            }
        }
        let b = NotificationRequest::parse(&spelled_out).unwrap();
        prop_assert_eq!(a.fingerprint(), b.fingerprint());
        let mut other = body.clone();
        let rid = body["request_id"].as_str().unwrap();
        other["request_id"] = json!(if rid.len() < 128 { format!("{rid}x") } else { rid[..127].to_string() });
        prop_assert_ne!(a.fingerprint(), NotificationRequest::parse(&other).unwrap().fingerprint());
    }

    #[test]
    fn the_validators_accept_exactly_their_alphabets(raw in "\\PC{0,140}") {
        let request_id_ok = (1..=128).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b));
        prop_assert_eq!(RequestId::parse(&raw).is_ok(), request_id_ok);
        let code_ok = (1..=64).contains(&raw.len())
            && raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        prop_assert_eq!(TemplateCode::parse(&raw).is_ok(), code_ok);
        let v: Value = raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(raw.clone()));
        let priority_ok = v.as_i64().is_some_and(|n| (1..=10).contains(&n));
        prop_assert_eq!(Priority::parse(&v).is_ok(), priority_ok);
    }
}

/// Fuzz harness of the request parser: any JSON (and valid bodies with one field replaced by
/// any JSON) is either a request or refused with a 422 validation envelope naming each field
/// and why; never a panic, never another status.
mod fuzz {
    use actix_web::{body::to_bytes, ResponseError};
    use notify_kit::ApiError;

    use super::*;

    const FIELDS: [&str; 8] = [
        "notification_type",
        "user_id",
        "template_code",
        "variables",
        "request_id",
        "priority",
        "metadata",
        "userId",
    ];

    fn body() -> impl Strategy<Value = Value> {
        prop_oneof![
            any_json(),
            (valid_body(), prop::sample::select(FIELDS.to_vec()), any_json()).prop_map(|(mut body, field, v)| {
                body[field] = v;
                body
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(512)))]

        #[test]
        fn any_json_is_a_request_or_a_422_envelope(body in body()) {
            let Err(errors) = NotificationRequest::parse(&body) else { return Ok(()) };
            prop_assert!(!errors.is_empty(), "refused without a reason: {}", body);
            let response = ApiError::Validation(errors.clone()).error_response();
            prop_assert_eq!(response.status().as_u16(), 422);
            let bytes = futures::executor::block_on(to_bytes(response.into_body())).unwrap();
            let envelope: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&envelope["success"], &json!(false));
            prop_assert_eq!(&envelope["data"], &Value::Null);
            prop_assert_eq!(&envelope["error"]["code"], &json!("validation_failed"));
            let details = envelope["error"]["details"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(details.len(), errors.len());
            for (d, e) in details.iter().zip(&errors) {
                prop_assert_eq!(d["field"].as_str(), Some(e.field.as_str()));
                prop_assert!(!e.reason.is_empty(), "{:?}", e);
                // A field is named; only an empty key sent by the client is reported as `""`.
                prop_assert!(!e.field.is_empty() || body.get("").is_some(), "{:?}", e);
            }
        }
    }
}
