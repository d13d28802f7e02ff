//! The worker's counters, described and registered at 0 at start with every label set this
//! worker can emit, so dashboards and alerts see them before the first failure: an
//! `increase()` over a series that appears at 1 reads 0, and the first dead letter would not
//! raise `NotificationsDeadLettered`.

use notify_schemas::Channel;

use crate::settings::Tier;

/// The `outcome` label values of `worker_deliveries_total` (see `consumer.rs`).
const OUTCOMES: [&str; 4] = ["sent", "retried", "dead_lettered", "skipped"];
/// The `reason` label values of `worker_dead_lettered_total`: the failure classes that go
/// to the DLT at once, and `exhausted` retries.
const DLT_REASONS: [&str; 3] = ["permanent", "poison", "exhausted"];

/// Describes the worker's metrics and registers its counters at 0.
pub fn register(channel: Channel, provider: &'static str, tiers: &[Tier]) {
    metrics::describe_counter!(
        "worker_deliveries_total",
        "Delivery attempts by channel, provider and outcome (sent, retried, dead_lettered, skipped)."
    );
    metrics::describe_counter!(
        "worker_retried_total",
        "Records moved to a retry tier, by channel and tier."
    );
    metrics::describe_counter!(
        "worker_dead_lettered_total",
        "Records moved to the dead-letter topic, by channel and reason."
    );
    metrics::describe_histogram!(
        "worker_delivery_duration_seconds",
        "Provider call duration, by channel and provider."
    );
    metrics::describe_histogram!(
        "notification_end_to_end_seconds",
        "From acceptance at the gateway to the provider's acceptance, by channel."
    );
    metrics::describe_gauge!(
        "worker_consumption_paused",
        "1 while a consume loop holds its records because a dependency every record needs is down, by channel and group."
    );
    metrics::describe_gauge!(
        "kafka_consumer_lag",
        "Records behind the partition's high watermark, by consumer group, topic and partition."
    );
    metrics::describe_gauge!(
        "kafka_consumer_committed_lag",
        "Records between the group's committed offset and the partition's high watermark (read or not, not settled yet), by consumer group, topic and partition."
    );
    let channel = channel.as_str();
    for outcome in OUTCOMES {
        metrics::counter!("worker_deliveries_total", "channel" => channel, "provider" => provider, "outcome" => outcome)
            .increment(0);
    }
    for tier in tiers {
        metrics::counter!("worker_retried_total", "channel" => channel, "tier" => tier.name).increment(0);
    }
    for reason in DLT_REASONS {
        metrics::counter!("worker_dead_lettered_total", "channel" => channel, "reason" => reason).increment(0);
    }
}
