//! Domain types of the gateway, valid by construction: handlers convert the request body
//! once ([`NotificationRequest::parse`]); nothing below re-validates.

pub mod references;
mod request;

pub use request::{NotificationRequest, Priority, RequestId, TemplateCode, HIGH_PRIORITY_MIN};
