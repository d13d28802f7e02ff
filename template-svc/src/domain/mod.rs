//! Domain types of template-svc, valid by construction: handlers convert request bodies
//! once; nothing below re-validates.

mod template;

pub use template::{Contents, NewTemplate, NewVersion, RenderRequest};
