//! Request bodies, validated field by field (snake_case only; unknown fields rejected;
//! every problem reported with its field).

use notify_kit::{validate, FieldError};
use notify_lookup::{Platform, Preferences};
use notify_templates::Language;
use serde_json::{Map, Value};

use super::values::{EmailAddress, Password, PushToken, UserName};

/// Platform assumed for a `push_token` given as a bare string (the product spec's form):
/// the push provider is FCM, whose registration tokens are delivered the same way on
/// every platform.
pub const DEFAULT_PLATFORM: Platform = Platform::Android;

const NEW_USER_FIELDS: [&str; 6] = ["name", "email", "password", "push_token", "preferences", "language"];
const PATCH_FIELDS: [&str; 6] = [
    "name",
    "email",
    "language",
    "preferences",
    "password",
    "current_password",
];
const PREFERENCE_FIELDS: [&str; 2] = ["email", "push"];
const PUSH_TOKEN_FIELDS: [&str; 2] = ["token", "platform"];
const LOGIN_FIELDS: [&str; 2] = ["email", "password"];

fn parse_with<T>(
    raw: Option<&str>,
    field: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    raw.and_then(|s| {
        parse(s)
            .map_err(|reason| errors.push(FieldError::new(field, reason)))
            .ok()
    })
}

fn optional_parsed<T>(
    obj: &Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let raw = validate::optional_str(obj, field, "", errors).ok().flatten();
    parse_with(raw, field, errors, parse)
}

fn body_object(body: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    let mut errors = Vec::new();
    validate::object(body, "", &mut errors).ok_or(errors)
}

/// Channel preferences: `{email: bool, push: bool}`, both required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreferencesInput(pub Preferences);

impl PreferencesInput {
    /// Parses the object at `at` (`preferences` in a user body, the body itself for
    /// `PUT .../preferences`).
    pub fn parse_at(value: &Value, at: &str, errors: &mut Vec<FieldError>) -> Option<Self> {
        let obj = validate::object(value, at, errors)?;
        validate::reject_unknown(obj, &PREFERENCE_FIELDS, at, errors);
        let email = validate::required_bool(obj, "email", at, errors);
        let push = validate::required_bool(obj, "push", at, errors);
        Some(Self(Preferences {
            email: email?,
            push: push?,
        }))
    }

    /// A whole `PUT /api/v1/users/{id}/preferences` body.
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        match Self::parse_at(body, "", &mut errors) {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(errors),
        }
    }
}

/// A push token with its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPushToken {
    pub token: PushToken,
    pub platform: Platform,
}

impl NewPushToken {
    fn parse_object(obj: &Map<String, Value>, at: &str, errors: &mut Vec<FieldError>) -> Option<Self> {
        validate::reject_unknown(obj, &PUSH_TOKEN_FIELDS, at, errors);
        let token = validate::required_str(obj, "token", at, errors);
        let token = parse_with(token, &validate::path(at, "token"), errors, PushToken::parse);
        let platform = validate::required_str(obj, "platform", at, errors);
        let platform = parse_with(platform, &validate::path(at, "platform"), errors, |s| {
            s.parse::<Platform>()
        });
        Some(Self {
            token: token?,
            platform: platform?,
        })
    }

    /// A `POST /api/v1/users/{id}/push-tokens` body: `{token, platform}`.
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        match Self::parse_object(obj, "", &mut errors) {
            Some(t) if errors.is_empty() => Ok(t),
            _ => Err(errors),
        }
    }

    /// `push_token` in a new-user body: a bare token (platform [`DEFAULT_PLATFORM`]) or
    /// `{token, platform}`.
    fn parse_field(value: &Value, errors: &mut Vec<FieldError>) -> Option<Self> {
        match value {
            Value::String(s) => parse_with(Some(s), "push_token", errors, PushToken::parse).map(|token| Self {
                token,
                platform: DEFAULT_PLATFORM,
            }),
            Value::Object(obj) => Self::parse_object(obj, "push_token", errors),
            _ => {
                errors.push(FieldError::new(
                    "push_token",
                    "must be a token string or {\"token\", \"platform\"}",
                ));
                None
            }
        }
    }
}

/// A validated `POST /api/v1/users/` body.
#[derive(Debug)]
pub struct NewUser {
    pub name: UserName,
    pub email: EmailAddress,
    pub password: Password,
    pub push_token: Option<NewPushToken>,
    pub preferences: Preferences,
    pub language: Language,
}

impl NewUser {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        validate::reject_unknown(obj, &NEW_USER_FIELDS, "", &mut errors);
        let name = validate::required_str(obj, "name", "", &mut errors);
        let name = parse_with(name, "name", &mut errors, UserName::parse);
        let email = validate::required_str(obj, "email", "", &mut errors);
        let email = parse_with(email, "email", &mut errors, EmailAddress::parse);
        let password = validate::required_str(obj, "password", "", &mut errors);
        let password = parse_with(password, "password", &mut errors, Password::parse);
        let push_token = match obj.get("push_token") {
            None | Some(Value::Null) => Some(None),
            Some(v) => NewPushToken::parse_field(v, &mut errors).map(Some),
        };
        let preferences = match obj.get("preferences") {
            None | Some(Value::Null) => {
                errors.push(FieldError::new("preferences", "is required"));
                None
            }
            Some(v) => PreferencesInput::parse_at(v, "preferences", &mut errors),
        };
        let language = match validate::optional_str(obj, "language", "", &mut errors) {
            Ok(None) => Language::parse("en").ok(),
            Ok(raw) => parse_with(raw, "language", &mut errors, Language::parse),
            Err(()) => None,
        };
        match (name, email, password, push_token, preferences, language) {
            (Some(name), Some(email), Some(password), Some(push_token), Some(preferences), Some(language))
                if errors.is_empty() =>
            {
                Ok(Self {
                    name,
                    email,
                    password,
                    push_token,
                    preferences: preferences.0,
                    language,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A validated `PATCH /api/v1/users/{id}` body: only the fields to change.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub name: Option<UserName>,
    pub email: Option<EmailAddress>,
    pub language: Option<Language>,
    pub preferences: Option<Preferences>,
    pub password: Option<Password>,
    /// Required (and checked) when an end user changes their own password.
    pub current_password: Option<Password>,
}

impl UserPatch {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        validate::reject_unknown(obj, &PATCH_FIELDS, "", &mut errors);
        let patch = Self {
            name: optional_parsed(obj, "name", &mut errors, UserName::parse),
            email: optional_parsed(obj, "email", &mut errors, EmailAddress::parse),
            language: optional_parsed(obj, "language", &mut errors, Language::parse),
            preferences: match obj.get("preferences") {
                None | Some(Value::Null) => None,
                Some(v) => PreferencesInput::parse_at(v, "preferences", &mut errors).map(|p| p.0),
            },
            password: optional_parsed(obj, "password", &mut errors, Password::parse),
            // Not held to the length rule: an old password may predate it.
            current_password: optional_parsed(obj, "current_password", &mut errors, |s| Ok(Password::unchecked(s))),
        };
        if errors.is_empty() && patch.is_empty() {
            errors.push(FieldError::new(
                "body",
                format!(
                    "names no field to change; expected some of: {}",
                    PATCH_FIELDS[..5].join(", ")
                ),
            ));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }

    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.email.is_none()
            && self.language.is_none()
            && self.preferences.is_none()
            && self.password.is_none()
    }
}

/// A validated `POST /api/v1/auth/login` body.
#[derive(Debug)]
pub struct Login {
    /// As typed (compared case-insensitively); not validated beyond being a string, so a
    /// malformed address is just "invalid email or password".
    pub email: String,
    pub password: Password,
}

impl Login {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        validate::reject_unknown(obj, &LOGIN_FIELDS, "", &mut errors);
        let email = validate::required_str(obj, "email", "", &mut errors);
        let password = validate::required_str(obj, "password", "", &mut errors);
        match (email, password) {
            (Some(email), Some(password)) if errors.is_empty() => Ok(Self {
                email: email.trim().to_string(),
                password: Password::unchecked(password),
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "name": "John Doe",
            "email": "john@example.com",
            "push_token": "fcm-token-1",
            "preferences": {"email": true, "push": false},
            "password": "correct horse battery"
        })
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        let mut f: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        f.sort_unstable();
        f
    }

    #[test]
    fn the_spec_body_is_valid_with_defaults() {
        let u = NewUser::parse(&valid()).unwrap();
        assert_eq!(u.language.as_str(), "en");
        assert_eq!(
            u.push_token,
            Some(NewPushToken {
                token: PushToken::parse("fcm-token-1").unwrap(),
                platform: DEFAULT_PLATFORM
            })
        );
        assert!(u.preferences.email && !u.preferences.push);
    }

    #[test]
    fn a_push_token_may_name_its_platform() {
        let mut body = valid();
        body["push_token"] = json!({"token": "apns-1", "platform": "ios"});
        let u = NewUser::parse(&body).unwrap();
        assert_eq!(u.push_token.unwrap().platform, Platform::Ios);
        body["push_token"] = json!({"token": "apns-1", "platform": "symbian"});
        assert_eq!(fields(&NewUser::parse(&body).unwrap_err()), ["push_token.platform"]);
    }

    #[test]
    fn every_problem_is_named() {
        let errs = NewUser::parse(&json!({
            "name": "",
            "email": "nope",
            "password": "short",
            "push_token": 5,
            "preferences": {"email": "yes"},
            "language": "english",
            "pushToken": "x"
        }))
        .unwrap_err();
        assert_eq!(
            fields(&errs),
            [
                "email",
                "language",
                "name",
                "password",
                "preferences.email",
                "preferences.push",
                "pushToken",
                "push_token"
            ]
        );
        assert!(
            errs.iter().all(|e| !e.reason.contains("short")),
            "values are never echoed"
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let errs = NewUser::parse(&json!({})).unwrap_err();
        assert_eq!(fields(&errs), ["email", "name", "password", "preferences"]);
    }

    #[test]
    fn a_patch_needs_at_least_one_field() {
        assert_eq!(fields(&UserPatch::parse(&json!({})).unwrap_err()), ["body"]);
        let p = UserPatch::parse(&json!({"name": "Ann", "language": "pt-br"})).unwrap();
        assert_eq!(p.language.unwrap().as_str(), "pt-BR");
        assert_eq!(
            fields(&UserPatch::parse(&json!({"id": "x", "email": 3})).unwrap_err()),
            ["email", "id"]
        );
    }

    #[test]
    fn preferences_need_both_channels() {
        assert_eq!(
            fields(&PreferencesInput::parse(&json!({"email": true})).unwrap_err()),
            ["push"]
        );
        assert_eq!(
            PreferencesInput::parse(&json!({"email": false, "push": true}))
                .unwrap()
                .0,
            Preferences {
                email: false,
                push: true
            }
        );
    }
}
