//! Domain types of template-svc, valid by construction: handlers convert request bodies
//! once; nothing below re-validates.

mod template;

pub use template::{
    Contents, CreateTemplateBody, EmailContentBody, NewTemplate, NewVersion, NewVersionBody, PushContentBody,
    RenderBody, RenderRequest,
};
