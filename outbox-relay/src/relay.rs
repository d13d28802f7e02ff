//! The relay loop.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::Context;
use notify_kafka::{headers, Topics};
use notify_kit::tracecontext;
use notify_store::outbox::{self, OutboxRow, PublishFailure};
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection, PgConnection};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    encoder::Encoder,
    publisher::{OutgoingRecord, Publisher},
    settings::RelaySettings,
    shards::{ShardSet, OWNER_APPLICATION_NAME},
};

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub claimed: usize,
    pub published: usize,
    pub failed: usize,
    /// Rows held back because an earlier row of their key failed in the same batch.
    pub held_back: usize,
    pub parked: usize,
}

/// One relay instance.
pub struct Relay {
    pub(crate) connect: PgConnectOptions,
    pub(crate) settings: RelaySettings,
    pub(crate) topics: Topics,
    pub(crate) encoder: Encoder,
    pub(crate) publisher: Arc<dyn Publisher>,
    pub(crate) wake: Arc<Notify>,
}

impl Relay {
    pub fn new(
        connect: PgConnectOptions,
        settings: RelaySettings,
        topics: Topics,
        encoder: Encoder,
        publisher: Arc<dyn Publisher>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            connect: connect.application_name(OWNER_APPLICATION_NAME),
            settings,
            topics,
            encoder,
            publisher,
            wake,
        }
    }

    /// Runs until `stop` is cancelled. Connection failures are logged and retried; the
    /// batch in flight at that moment rolls back and is published again later.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = self.settings.retry_base;
        while !stop.is_cancelled() {
            match self.run_connected(&stop).await {
                Ok(()) => return,
                Err(e) => {
                    metrics::counter!("relay_loop_errors_total").increment(1);
                    tracing::error!(
                        error = format!("{e:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "relay loop failed; reconnecting"
                    );
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.settings.retry_max);
                }
            }
        }
    }

    async fn run_connected(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut conn = self
            .connect
            .connect()
            .await
            .context("failed to open the shard-owner connection")?;
        let mut shards = ShardSet::default();
        let mut next_rebalance = Instant::now();
        let mut publish_backoff = self.settings.retry_base;
        loop {
            if stop.is_cancelled() {
                let _ = conn.close().await;
                return Ok(());
            }
            if Instant::now() >= next_rebalance {
                let (taken, released) = shards.rebalance(&mut conn).await.context("rebalance failed")?;
                if taken + released > 0 {
                    tracing::info!(taken, released, owned = shards.len(), "outbox shards rebalanced");
                }
                metrics::gauge!("relay_owned_shards").set(shards.len() as f64);
                next_rebalance = Instant::now() + self.settings.rebalance_interval;
            }
            if shards.is_empty() {
                self.idle(stop, next_rebalance).await;
                continue;
            }
            let outcome = self
                .publish_batch(&mut conn, &shards.owned())
                .await
                .context("batch failed")?;
            if outcome.failed > 0 && outcome.published == 0 {
                // Nothing got through (broker down?): back off before the next batch.
                tracing::warn!(
                    failed = outcome.failed,
                    retry_in_ms = publish_backoff.as_millis() as u64,
                    "publishing failed; backing off"
                );
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(publish_backoff) => {}
                }
                publish_backoff = (publish_backoff * 2).min(self.settings.retry_max);
                continue;
            }
            publish_backoff = self.settings.retry_base;
            if outcome.claimed < usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX) {
                self.idle(stop, next_rebalance).await;
            }
        }
    }

    /// Waits for a `NOTIFY`, the poll interval, the next rebalance or the stop signal.
    async fn idle(&self, stop: &CancellationToken, next_rebalance: Instant) {
        let poll = Instant::now() + self.settings.poll_interval;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep_until(poll.min(next_rebalance)) => {}
        }
    }

    fn retry_delay(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(0);
        (self.settings.retry_base * 2u32.saturating_pow(exp)).min(self.settings.retry_max)
    }

    /// The record for `row`. When spans are exported, also the row's producer span (the
    /// child of the request that wrote the row), whose context the record carries on; it
    /// ends when the broker has answered.
    fn record_for(&self, row: &OutboxRow, payload: Vec<u8>) -> (OutgoingRecord, Option<tracing::Span>) {
        let mut hdrs: Vec<(String, String)> = row
            .headers
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let topic = self.topics.physical(&row.topic);
        let span = tracecontext::exporting().then(|| {
            let span = tracing::info_span!(
                           "outbox_publish",
                           otel.name = format!("{topic} publish"),
                           otel.kind = "producer",
                           otel.status_code = tracing::field::Empty,
                           messaging.system = "kafka",
                           messaging.operation.type = "publish",
                           messaging.destination.name = %topic,
                           outbox_id = row.id,
                           trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
                       );
            let inbound = hdrs
                .iter()
                .find(|(k, _)| k == headers::TRACEPARENT)
                .map(|(_, v)| v.as_str());
            if let Some(own) = tracecontext::adopt(&span, inbound) {
                hdrs.retain(|(k, _)| k != headers::TRACEPARENT);
                hdrs.push((headers::TRACEPARENT.into(), own));
            }
            span
        });
        hdrs.push((headers::EVENT_TYPE.into(), row.event_type.clone()));
        hdrs.push((headers::OUTBOX_ID.into(), row.id.to_string()));
        let record = OutgoingRecord {
            topic,
            key: row.message_key.clone(),
            payload,
            headers: hdrs,
        };
        (record, span)
    }

    /// Claims one batch of the owned shards, publishes it and records the outcome, all in
    /// one transaction on the shard-owner connection.
    pub async fn publish_batch(&self, conn: &mut PgConnection, shards: &[i16]) -> anyhow::Result<BatchOutcome> {
        let started = std::time::Instant::now();
        let mut tx = conn.begin().await?;
        let rows = outbox::claim(&mut tx, shards, self.settings.batch_size).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(BatchOutcome::default());
        }
        let mut outcome = BatchOutcome {
            claimed: rows.len(),
            ..Default::default()
        };

        // Keys with a failure earlier in this batch: their later rows are not sent, or, if
        // already sent, not marked, so they go out again after the failed one (order first,
        // at the price of a possible duplicate).
        let mut failed_keys: HashSet<&str> = HashSet::new();
        let mut failures: Vec<PublishFailure> = Vec::new();
        let mut to_send: Vec<(usize, OutgoingRecord)> = Vec::with_capacity(rows.len());
        let mut spans: Vec<Option<tracing::Span>> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if failed_keys.contains(row.message_key.as_str()) {
                outcome.held_back += 1;
                continue;
            }
            match self.encoder.encode(&row.event_type, &row.payload).await {
                Ok(bytes) => {
                    let (record, span) = self.record_for(row, bytes);
                    to_send.push((i, record));
                    spans.push(span);
                }
                Err(e) => {
                    failed_keys.insert(&row.message_key);
                    failures.push(PublishFailure {
                        id: row.id,
                        error: e.to_string(),
                        permanent: e.is_permanent(),
                        retry_in: self.retry_delay(row.attempts),
                    });
                }
            }
        }
        let (indices, records): (Vec<usize>, Vec<OutgoingRecord>) = to_send.into_iter().unzip();
        let results = self.publisher.publish(records).await;

        let mut published: Vec<i64> = Vec::with_capacity(results.len());
        for (n, (i, result)) in indices.into_iter().zip(results).enumerate() {
            let row = &rows[i];
            if let (Err(e), Some(Some(span))) = (&result, spans.get(n)) {
                span.record("otel.status_code", "ERROR");
                tracing::debug!(parent: span, error = %e, "not acknowledged");
            }
            if failed_keys.contains(row.message_key.as_str()) {
                outcome.held_back += 1;
                continue;
            }
            match result {
                Ok(()) => published.push(row.id),
                Err(e) => {
                    failed_keys.insert(&row.message_key);
                    failures.push(PublishFailure {
                        id: row.id,
                        error: e.message.clone(),
                        permanent: e.permanent,
                        retry_in: self.retry_delay(row.attempts),
                    });
                }
            }
        }
        drop(spans);
        outbox::mark_published(&mut tx, &published).await?;
        let parked = outbox::record_failures(&mut tx, &failures, self.settings.max_attempts).await?;
        tx.commit().await?;

        outcome.published = published.len();
        outcome.failed = failures.len();
        outcome.parked = parked.len();
        metrics::counter!("relay_published_total").increment(published.len() as u64);
        metrics::histogram!("relay_batch_seconds").record(started.elapsed().as_secs_f64());
        if !failures.is_empty() {
            metrics::counter!("relay_publish_failures_total").increment(failures.len() as u64);
            for f in failures.iter().take(5) {
                tracing::warn!(outbox_id = f.id, permanent = f.permanent, error = %f.error, "publish failed; will retry");
            }
        }
        if !parked.is_empty() {
            metrics::counter!("relay_parked_total").increment(parked.len() as u64);
            tracing::error!(alert = true, parked_ids = ?parked, "outbox rows parked after repeated permanent failures; operator action needed");
        }
        if outcome.held_back > 0 {
            metrics::counter!("relay_held_back_total").increment(outcome.held_back as u64);
        }
        tracing::debug!(
            ?outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        Ok(outcome)
    }
}
