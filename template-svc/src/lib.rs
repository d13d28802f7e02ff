//! template-svc: versioned, multi-language email and push templates.
//!
//! A template (`template_code`, channel, default language) has immutable versions; each
//! change publishes a new version, which becomes the active one. Each version holds
//! content per language; reads pick a language with fallback (`pt-BR` → `pt` → the
//! template's default). Rendering (preview here, delivery in the workers) is
//! `notify_templates::render`, so a preview shows exactly what is delivered.
//!
//! Request path: `routes/` (auth, parse) → `domain/` (validation) → `db/` (SQL). After every
//! committed change the template's lookup cache entries are invalidated.

pub mod db;
pub mod domain;
pub mod routes;
pub mod settings;
pub mod startup;

/// Scope to read templates (`templates:write` reads too).
pub const SCOPE_TEMPLATES_READ: &str = "templates:read";
/// Scope to create templates and publish versions.
pub const SCOPE_TEMPLATES_WRITE: &str = "templates:write";
