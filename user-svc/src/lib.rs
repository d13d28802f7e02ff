//! user-svc: users, their contacts (email, push tokens per device) and channel
//! preferences, and the login that issues end-user tokens.
//!
//! Request path: `routes/` (auth, ownership) → `domain/` (validation into types valid by
//! construction) → `db/` (SQL). After every committed change the user's lookup cache
//! entry is invalidated (`notify_lookup::Cache::invalidate_user`).
//!
//! Passwords are hashed with Argon2id ([`password`]), never stored, returned or logged.

pub mod db;
pub mod domain;
pub mod login_guard;
pub mod password;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod unsubscribe;

/// Scope for services that read any user (the workers, through `notify-lookup`).
pub const SCOPE_USERS_READ: &str = "users:read";
/// Scope for services that create, change and delete any user.
pub const SCOPE_USERS_WRITE: &str = "users:write";
/// Scope of end-user tokens issued by login: the user's own record only.
pub const SCOPE_USERS_SELF: &str = "users:self";
