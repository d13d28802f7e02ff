//! Domain types of the gateway, valid by construction: handlers convert the request body
//! once ([`NotificationRequest::parse`], [`DeliveryReport::parse`]); nothing below
//! re-validates.
//!
//! A notification request's validation and reference checks live in `notify_intake`, shared
//! with the ingest service (Kafka producers); they are re-exported here at their old paths.

mod report;
pub mod webhooks;

pub use notify_intake::references;
pub use notify_intake::request::{
    NotificationRequest, Priority, RequestId, SendNotificationBody, TemplateCode, HIGH_PRIORITY_MIN,
};
pub use report::{DeliveryReport, DeliveryReportBody};
