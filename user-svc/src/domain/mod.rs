//! Domain types of user-svc, valid by construction: handlers convert request bodies once
//! ([`NewUser::parse`], [`UserPatch::parse`], ...); nothing below re-validates.

mod device;
mod suppression;
mod user;
mod values;

pub use device::{check_pair, DeviceDefaults, DeviceToken, NewPushToken, PushTokenBody};
pub use suppression::{NewSuppression, Reason, SuppressionBody, SuppressionTarget, MAX_DETAIL_CHARS, MAX_SOURCE_CHARS};
pub use user::{
    CreateUserBody, Login, LoginBody, NewUser, PatchUserBody, PreferencesBody, PreferencesInput, UserPatch,
};
pub use values::{EmailAddress, Password, UserName};
