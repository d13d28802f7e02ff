//! Domain types of user-svc, valid by construction: handlers convert request bodies once
//! ([`NewUser::parse`], [`UserPatch::parse`], ...); nothing below re-validates.

mod suppression;
mod user;
mod values;

pub use suppression::{NewSuppression, Reason, SuppressionBody, SuppressionTarget, MAX_DETAIL_CHARS, MAX_SOURCE_CHARS};
pub use user::{
    CreateUserBody, Login, LoginBody, NewPushToken, NewUser, PatchUserBody, PreferencesBody, PreferencesInput,
    PushTokenBody, UserPatch,
};
pub use values::{EmailAddress, Password, PushToken, UserName};
