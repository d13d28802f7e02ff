//! Domain types of the gateway, valid by construction: handlers convert the request body
//! once ([`NotificationRequest::parse`], [`DeliveryReport::parse`]); nothing below
//! re-validates.

pub mod references;
mod report;
mod request;
pub mod webhooks;

pub use report::{DeliveryReport, DeliveryReportBody};
pub use request::{NotificationRequest, Priority, RequestId, SendNotificationBody, TemplateCode, HIGH_PRIORITY_MIN};
