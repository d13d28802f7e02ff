//! Lookups the workers and the gateway make at delivery time, with a Redis cache in front:
//!
//! - [`RecipientLookup::get`]: a recipient (email, push tokens, preferences, language, whether
//!   the email address is suppressed, the one-click unsubscribe link) from user-svc; `None`
//!   when the user does not exist (or was deleted).
//! - [`TemplateLookup::get`]: a template's active version in a language (with
//!   template-svc's fallback) from template-svc; `None` when there is no such template.
//!
//! - [`DeviceRegistry`]: what delivery tells user-svc about devices: which were used
//!   (`last_used_at`), which a provider says are gone (removed, with the reason).
//! - [`SuppressionClient::suppress`]: adds an address to user-svc's suppression list (the
//!   gateway's provider webhooks).
//!
//! All authenticate with a service token from a [`TokenSource`]. Errors say whether a
//! retry can help ([`LookupError::Unavailable`]) or not.
//!
//! ## Cache keys
//!
//! Every key starts with the deployment's prefix (`APP_CACHE_PREFIX`, empty by default).
//! Entries are versioned by a generation counter, so that invalidating a template drops
//! all its languages at once (one `INCR`, no `SCAN`), and a lookup that raced with a change
//! cannot store the stale answer where later lookups read:
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}dir:user:{user_id}:gen` | generation of the user's entry (missing = 0) |
//! | `{prefix}dir:user:{user_id}:g{gen}` | the [`Recipient`] as JSON, TTL `APP_DIRECTORY_CACHE_TTL_SECS` |
//! | `{prefix}dir:tpl:{code}:gen` | generation of the template's entries |
//! | `{prefix}dir:tpl:{code}:g{gen}:{lang}` | the [`ResolvedTemplate`] for a requested language |
//!
//! [`Cache::invalidate_user`] and [`Cache::invalidate_template`] bump the generation; the
//! services call them after every committed change. A Redis outage never fails a lookup:
//! it falls through to the service.

mod cache;
mod client;
mod devices;
mod error;
mod settings;
mod suppressions;
mod templates;
mod token;
mod users;

pub use cache::{keys, Cache, CacheError};
pub use devices::{DeviceRegistry, MAX_USED_BATCH};
pub use error::LookupError;
pub use settings::{CacheSettings, LookupSettings};
pub use suppressions::{Suppression, SuppressionClient, SuppressionReason};
pub use templates::{ResolvedTemplate, TemplateLookup};
pub use token::TokenSource;
pub use users::{Platform, Preferences, PushProvider, PushTarget, Recipient, RecipientLookup, Suppressed};

/// Scope a service token needs to read users.
pub const SCOPE_USERS_READ: &str = "users:read";
/// Scope a service token needs to report device use and remove gone devices.
pub const SCOPE_USERS_DEVICES_WRITE: &str = notify_kit::auth::SCOPE_USERS_DEVICES_WRITE;
/// Scope a service token needs to read templates.
pub const SCOPE_TEMPLATES_READ: &str = "templates:read";
