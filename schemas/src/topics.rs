//! Topic names (part of the contract). Every name goes through the configured prefix so tests (and tenants) can
//! share a broker without seeing each other's records.

use crate::Channel;

/// Delay tiers of the retry path, in order.
pub const RETRY_TIERS: [&str; 2] = ["retry-30s", "retry-5m"];

/// Topic names under one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// Applies the prefix to a logical name (as stored in the outbox).
    pub fn physical(&self, logical: &str) -> String {
        format!("{}{}", self.prefix, logical)
    }

    /// Logical name of the request topic of a channel (`notifications.email`, or
    /// `notifications.email.priority` for high-priority notifications).
    pub fn logical_requests(channel: Channel, high_priority: bool) -> String {
        if high_priority {
            format!("notifications.{channel}.priority")
        } else {
            format!("notifications.{channel}")
        }
    }

    pub fn requests(&self, channel: Channel, high_priority: bool) -> String {
        self.physical(&Self::logical_requests(channel, high_priority))
    }

    pub fn retry(&self, channel: Channel, tier: &str) -> String {
        self.physical(&format!("notifications.{channel}.{tier}"))
    }

    pub fn dlt(&self, channel: Channel) -> String {
        self.physical(&format!("notifications.{channel}.dlt"))
    }

    pub fn status(&self) -> String {
        self.physical("notifications.status")
    }

    /// Logical name of the topic internal producers publish requests to (key = user id),
    /// read by the ingest service.
    pub const PRODUCER_REQUESTS: &'static str = "notifications.requests";

    /// Where the ingest service dead-letters producer requests it cannot accept.
    pub const PRODUCER_REQUESTS_DLT: &'static str = "notifications.requests.dlt";

    /// `notifications.requests` under the prefix.
    pub fn producer_requests(&self) -> String {
        self.physical(Self::PRODUCER_REQUESTS)
    }

    /// `notifications.requests.dlt` under the prefix.
    pub fn producer_requests_dlt(&self) -> String {
        self.physical(Self::PRODUCER_REQUESTS_DLT)
    }

    /// Every topic of the platform.
    pub fn all(&self) -> Vec<String> {
        let mut all = Vec::new();
        for channel in [Channel::Email, Channel::Push] {
            all.push(self.requests(channel, false));
            all.push(self.requests(channel, true));
            for tier in RETRY_TIERS {
                all.push(self.retry(channel, tier));
            }
            all.push(self.dlt(channel));
        }
        all.push(self.status());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_the_channel() {
        let t = Topics::new("t1.");
        assert_eq!(t.requests(Channel::Email, false), "t1.notifications.email");
        assert_eq!(t.requests(Channel::Push, true), "t1.notifications.push.priority");
        assert_eq!(t.retry(Channel::Email, "retry-5m"), "t1.notifications.email.retry-5m");
        assert_eq!(t.dlt(Channel::Push), "t1.notifications.push.dlt");
        assert_eq!(t.all().len(), 11);
        assert_eq!(t.producer_requests(), "t1.notifications.requests");
        assert_eq!(t.producer_requests_dlt(), "t1.notifications.requests.dlt");
    }
}
