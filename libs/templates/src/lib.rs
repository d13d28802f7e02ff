//! Template content and rendering, shared by template-svc (validation and preview) and the
//! workers (rendering at delivery time), so a preview renders exactly what is delivered.
//!
//! - [`content`]: what a template holds per channel ([`EmailContent`], [`PushContent`]).
//! - [`render()`](render::render): minijinja with strict undefined variables; HTML bodies
//!   escape variables, plain-text fields do not; [`render_blocking`] runs it on the blocking
//!   pool. [`limits`]: what bounds a render's memory and output beside the fuel.
//! - [`push`]: what a rendered push may carry (https images, safe links, counts).
//! - [`language`]: BCP-47-ish language tags and the fallback rule (`pt-BR` → `pt` → the
//!   template's default).
//! - [`code`]: template codes (`welcome_email`).

pub mod code;
pub mod content;
pub mod language;
pub mod limits;
pub mod push;
pub mod render;

pub use code::TemplateCode;
pub use content::{Channel, EmailContent, PushContent, TemplateContent};
pub use language::{resolve_language, Language};
pub use render::{check_syntax, render, render_blocking, required_variables, RenderError, Rendered};
