//! Request bodies: deserialized into the types the OpenAPI document shows ([`CreateUserBody`],
//! [`PatchUserBody`], [`PreferencesBody`], [`LoginBody`]; snake_case only,
//! every unknown field reported), then validated field by field into domain types, every
//! problem reported with its field.

use notify_kit::{validate, FieldError};
use notify_lookup::Preferences;
use notify_templates::Language;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    device::{DeviceDefaults, NewPushToken},
    values::{EmailAddress, Password, UserName},
};

/// Request body of `POST /api/v1/users/` (snake_case only; unknown fields are rejected).
/// Fields are kept as sent and checked by [`NewUser::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    /// 1 to 100 characters.
    #[schema(value_type = String, example = "John Doe")]
    pub name: Option<Value>,
    /// Unique (case-insensitive).
    #[schema(value_type = String, example = "john@example.com")]
    pub email: Option<Value>,
    /// An FCM token (platform `android`) or a device as `POST .../push-tokens` takes it:
    /// `{"token": …, "platform": "android|ios|web", "provider": "fcm|webpush|onesignal"}`.
    #[schema(value_type = Option<Object>)]
    pub push_token: Option<Value>,
    #[schema(value_type = PreferencesBody)]
    pub preferences: Option<Value>,
    /// 8 to 128 characters; stored as an Argon2id hash, never returned.
    #[schema(value_type = String, format = Password)]
    pub password: Option<Value>,
    /// Language tag (default `en`), e.g. `fr`, `pt-BR`.
    #[schema(value_type = Option<String>, example = "en")]
    pub language: Option<Value>,
}

/// Request body of `PATCH /api/v1/users/{id}`: any of these, at least one. Checked by
/// [`UserPatch::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    #[schema(value_type = Option<String>)]
    pub name: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub email: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub language: Option<Value>,
    #[schema(value_type = Option<PreferencesBody>)]
    pub preferences: Option<Value>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<Value>,
    /// Required when an end user changes their own password.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<Value>,
}

/// The fields a patch changes (`current_password` only authorises a change).
const PATCHABLE: [&str; 5] = ["name", "email", "language", "preferences", "password"];

/// Whether the user accepts each channel: the body of `PUT /api/v1/users/{id}/preferences`
/// and a user's `preferences`. Checked by [`PreferencesInput::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    #[schema(value_type = bool)]
    pub email: Option<Value>,
    #[schema(value_type = bool)]
    pub push: Option<Value>,
}

/// Request body of `POST /api/v1/auth/login`. Checked by [`Login::parse`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(value_type = String, example = "john@example.com")]
    pub email: Option<Value>,
    #[schema(value_type = String, format = Password)]
    pub password: Option<Value>,
}

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
    value: Option<&Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let raw = validate::optional_string(value, field, errors).ok().flatten();
    parse_with(raw, field, errors, parse)
}

fn required_parsed<T>(
    value: Option<&Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let raw = validate::string(value, field, errors);
    parse_with(raw, field, errors, parse)
}

/// `Ok` with the value when no error was recorded.
fn finish<T>(value: Option<T>, errors: Vec<FieldError>) -> Result<T, Vec<FieldError>> {
    match value {
        Some(v) if errors.is_empty() => Ok(v),
        _ => Err(errors),
    }
}

/// Channel preferences: `{email: bool, push: bool}`, both required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreferencesInput(pub Preferences);

impl PreferencesInput {
    /// Parses the object at `at` (`preferences` in a user body, the body itself for
    /// `PUT .../preferences`).
    pub fn parse_at(value: &Value, at: &str, errors: &mut Vec<FieldError>) -> Option<Self> {
        let body = validate::body::<PreferencesBody>(value, at, errors)?;
        let email = validate::boolean(body.email.as_ref(), &validate::path(at, "email"), errors);
        let push = validate::boolean(body.push.as_ref(), &validate::path(at, "push"), errors);
        Some(Self(Preferences {
            email: email?,
            push: push?,
        }))
    }

    /// A whole `PUT /api/v1/users/{id}/preferences` body.
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let preferences = Self::parse_at(body, "", &mut errors);
        finish(preferences, errors)
    }
}

/// A new user's `push_token`: a bare token (an FCM token of platform `android`) or
/// `{token, platform, provider}`.
fn push_token_field(value: &Value, defaults: &DeviceDefaults, errors: &mut Vec<FieldError>) -> Option<NewPushToken> {
    match value {
        Value::String(s) => NewPushToken::bare(s, "push_token", defaults, errors),
        Value::Object(_) => NewPushToken::parse_at(value, "push_token", defaults, errors),
        _ => {
            errors.push(FieldError::new(
                "push_token",
                "must be a token string or {\"token\", \"platform\", \"provider\"}",
            ));
            None
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
    /// Parses with the default providers of [`DeviceDefaults::default`].
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        Self::parse_with(body, &DeviceDefaults::default())
    }

    /// Parses a `POST /api/v1/users/` body; a push token without a provider gets its
    /// platform's from `defaults`.
    pub fn parse_with(body: &Value, defaults: &DeviceDefaults) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = validate::body::<CreateUserBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let name = required_parsed(body.name.as_ref(), "name", &mut errors, UserName::parse);
        let email = required_parsed(body.email.as_ref(), "email", &mut errors, EmailAddress::parse);
        let password = required_parsed(body.password.as_ref(), "password", &mut errors, Password::parse);
        let push_token = match &body.push_token {
            None | Some(Value::Null) => Some(None),
            Some(v) => push_token_field(v, defaults, &mut errors).map(Some),
        };
        let preferences = match &body.preferences {
            None | Some(Value::Null) => {
                errors.push(FieldError::new("preferences", "is required"));
                None
            }
            Some(v) => PreferencesInput::parse_at(v, "preferences", &mut errors),
        };
        let language = match validate::optional_string(body.language.as_ref(), "language", &mut errors) {
            Ok(None) => Language::parse("en").ok(),
            Ok(raw) => parse_with(raw, "language", &mut errors, Language::parse),
            Err(()) => None,
        };
        let user = match (name, email, password, push_token, preferences, language) {
            (Some(name), Some(email), Some(password), Some(push_token), Some(preferences), Some(language)) => {
                Some(Self {
                    name,
                    email,
                    password,
                    push_token,
                    preferences: preferences.0,
                    language,
                })
            }
            _ => None,
        };
        finish(user, errors)
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
        let mut errors = Vec::new();
        let Some(body) = validate::body::<PatchUserBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let patch = Self {
            name: optional_parsed(body.name.as_ref(), "name", &mut errors, UserName::parse),
            email: optional_parsed(body.email.as_ref(), "email", &mut errors, EmailAddress::parse),
            language: optional_parsed(body.language.as_ref(), "language", &mut errors, Language::parse),
            preferences: match &body.preferences {
                None | Some(Value::Null) => None,
                Some(v) => PreferencesInput::parse_at(v, "preferences", &mut errors).map(|p| p.0),
            },
            password: optional_parsed(body.password.as_ref(), "password", &mut errors, Password::parse),
            // Not held to the length rule: an old password may predate it.
            current_password: optional_parsed(body.current_password.as_ref(), "current_password", &mut errors, |s| {
                Ok(Password::unchecked(s))
            }),
        };
        if errors.is_empty() && patch.is_empty() {
            errors.push(FieldError::new(
                "body",
                format!("names no field to change; expected some of: {}", PATCHABLE.join(", ")),
            ));
        }
        finish(Some(patch), errors)
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
        let mut errors = Vec::new();
        let Some(body) = validate::body::<LoginBody>(body, "", &mut errors) else {
            return Err(errors);
        };
        let email = validate::string(body.email.as_ref(), "email", &mut errors);
        let password = validate::string(body.password.as_ref(), "password", &mut errors);
        let login = match (email, password) {
            (Some(email), Some(password)) => Some(Self {
                email: email.trim().to_string(),
                password: Password::unchecked(password),
            }),
            _ => None,
        };
        finish(login, errors)
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
        let token = u.push_token.unwrap();
        assert_eq!(token.token.as_str(), "fcm-token-1");
        assert_eq!(token.platform, notify_lookup::Platform::Android);
        assert_eq!(token.provider, notify_lookup::PushProvider::Fcm);
        assert!(u.preferences.email && !u.preferences.push);
    }

    #[test]
    fn a_push_token_may_name_its_platform() {
        let mut body = valid();
        body["push_token"] = json!({"token": "apns-token-1", "platform": "ios"});
        let u = NewUser::parse(&body).unwrap();
        assert_eq!(u.push_token.unwrap().platform, notify_lookup::Platform::Ios);
        body["push_token"] = json!({"token": "apns-token-1", "platform": "symbian"});
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
