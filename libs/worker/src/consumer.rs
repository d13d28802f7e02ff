//! The consume loops.
//!
//! Two loops per worker, each its own consumer group: the *main* loop reads the channel's
//! topic and its delay tiers; the *priority* loop reads `notifications.<channel>.priority`,
//! so a high-priority notification never waits behind a backlog of normal ones.
//!
//! Per record: a record of a delay tier that is not due yet pauses its partition (and seeks
//! back to it) until the due time — other partitions and the main topic keep flowing; no
//! sleeping in the poll loop. Otherwise the record goes to the attempt slot of its key
//! (`APP_WORKER_CONCURRENCY` slots: one key's records in order, different keys side by side);
//! its follow-up records (status event, and the retry or dead-letter record) are produced, and
//! its offset is committed only when they, and those of every record received before it, are
//! acknowledged ([`notify_kafka::ordered`]). Nothing is committed for a record whose fate is
//! undecided; a crash means redelivery, which the delivery ledger makes harmless.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use notify_kafka::{
    ordered::{KeyedSlots, OrderedCommitter},
    Topics,
};
use notify_schemas::registry::SchemaRegistry;
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Message, OwnedMessage},
    producer::{DeliveryFuture, FutureProducer},
    Offset, TopicPartitionList,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    attempt::{AttemptResult, FollowUp},
    pipeline::Pipeline,
    routing::{headers_of, names},
    settings::Settings,
    status_events::StatusEncoder,
};

/// What the attempt slots and the due-time timers ask of their consume loop.
enum LoopCommand {
    /// A delay-tier partition's parked record is due: resume the partition.
    Resume(String, i32),
    /// A slot found a dependency down (the reason): stop fetching until every hold is released.
    Hold(String),
    /// The dependency answered the slot that held.
    Release,
}

/// A record on its way to an attempt slot.
struct Attempt {
    msg: OwnedMessage,
    headers: HashMap<String, String>,
    done: oneshot::Sender<Decided>,
}

/// Where a follow-up record stands with the broker.
enum Ack {
    /// Enqueued; the broker's answer is to come.
    Pending(DeliveryFuture),
    Acknowledged,
    /// Not enqueued, or refused: to be produced again.
    Refused,
}

/// An attempt's follow-up records and where each stands.
struct Decided {
    follow_ups: Vec<FollowUp>,
    acks: Vec<Ack>,
}

/// The running worker: shared by both loops.
pub struct Runtime {
    pub settings: Settings,
    pub pipeline: Pipeline,
    pub registry: SchemaRegistry,
    pub status: StatusEncoder,
    /// Status events.
    pub producer: FutureProducer,
    /// Retry and dead-letter records, one per batch (see [`FollowUp::own_batch`]).
    pub retry_producer: FutureProducer,
    pub topics: Topics,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Runtime {
    fn consumer(&self, group: &str, topics: &[String]) -> anyhow::Result<StreamConsumer> {
        let mut config = self
            .settings
            .kafka
            .consumer_config(group, self.settings.queued_max_kbytes);
        if let Some(instance) = &self.settings.instance_id {
            config.set("group.instance.id", format!("{group}/{instance}"));
        }
        let consumer: StreamConsumer = config.create().context("failed to create a Kafka consumer")?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).context("failed to subscribe")?;
        Ok(consumer)
    }

    /// Runs both loops until `stop`; each finishes the record in hand, commits and leaves its
    /// group.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> anyhow::Result<()> {
        let channel = self.settings.channel;
        let mut main_topics = vec![self.topics.requests(channel, false)];
        for tier in &self.settings.tiers {
            main_topics.push(self.topics.retry(channel, tier.name));
        }
        let main_group = self.settings.group_id.clone();
        let priority_group = format!("{main_group}.priority");
        let main = self.consumer(&main_group, &main_topics)?;
        let priority = self.consumer(&priority_group, &[self.topics.requests(channel, true)])?;
        let (a, b) = tokio::join!(
            self.clone().consume(main, &main_group, stop.clone()),
            self.clone().consume(priority, &priority_group, stop.clone())
        );
        a.and(b)
    }

    async fn consume(
        self: Arc<Self>,
        consumer: StreamConsumer,
        group: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let consumer = Arc::new(consumer);
        let (commands, mut command_rx) = mpsc::unbounded_channel::<LoopCommand>();
        tokio::spawn(report_lag(consumer.clone(), group.to_string(), stop.clone()));
        let committer = OrderedCommitter::spawn(consumer.clone(), self.settings.max_in_flight, {
            let (runtime, stop) = (self.clone(), stop.clone());
            move |decided: Decided| {
                let (runtime, stop) = (runtime.clone(), stop.clone());
                async move { runtime.wait_acknowledged(decided, &stop).await }
            }
        });
        let slots = KeyedSlots::spawn(self.settings.concurrency, self.settings.max_in_flight, stop.clone(), {
            let (runtime, stop, commands) = (self.clone(), stop.clone(), commands.clone());
            move |job: Attempt| {
                let (runtime, stop, commands) = (runtime.clone(), stop.clone(), commands.clone());
                async move { runtime.attempt_one(job, &commands, &stop).await }
            }
        });
        let mut hold = Hold::new(self.settings.channel.as_str(), group);
        // Delay-tier partitions paused until their parked record is due.
        let mut due_parked: HashSet<(String, i32)> = HashSet::new();
        let mut reconcile = tokio::time::interval(RESUME_RECONCILE);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(command) = command_rx.recv() => match command {
                    LoopCommand::Resume(topic, partition) => {
                        due_parked.remove(&(topic.clone(), partition));
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(&topic, partition);
                        // The partition may have moved to another member meanwhile: nothing to do.
                        if let Err(e) = consumer.resume(&tpl) {
                            tracing::debug!(%topic, partition, error = %e, "resume skipped");
                        }
                    }
                    LoopCommand::Hold(reason) => hold.hold(&consumer, &reason),
                    LoopCommand::Release => hold.release(&consumer),
                },
                _ = reconcile.tick(), if !hold.is_held() => resume_unparked(&consumer, &due_parked),
                msg = consumer.recv() => match msg {
                    // Held: a record fetched before the pause took effect waits where it is
                    // (its partition paused, the position set back to it) until the release.
                    Ok(m) if hold.is_held() => self.park(&consumer, &m),
                    Ok(m) => self.dispatch(&consumer, &m, &commands, &committer, &slots, &mut due_parked).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        // The attempts in hand finish; the committer stores the offsets of every record whose
        // outcome is durable, up to the first one that is not.
        slots.close().await;
        committer.close().await;
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit had nothing to do");
        }
        consumer.unsubscribe();
        Ok(())
    }

    fn is_retry_topic(&self, topic: &str) -> bool {
        self.settings
            .tiers
            .iter()
            .any(|t| topic == self.topics.retry(self.settings.channel, t.name))
    }

    /// Hands a record to the attempt slot of its key (so the records of one key are attempted
    /// one after the other, in order) and queues its commit behind every earlier record of
    /// this loop. A record of a delay tier that is not due yet is parked instead.
    async fn dispatch(
        &self,
        consumer: &StreamConsumer,
        msg: &BorrowedMessage<'_>,
        commands: &mpsc::UnboundedSender<LoopCommand>,
        committer: &OrderedCommitter<Decided>,
        slots: &KeyedSlots<Attempt>,
        due_parked: &mut HashSet<(String, i32)>,
    ) {
        let headers = headers_of(msg);
        if self.is_retry_topic(msg.topic()) {
            let due = headers
                .get(names::DUE_AT)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            let wait = due - now_ms();
            if wait > 0 {
                due_parked.insert((msg.topic().to_string(), msg.partition()));
                self.park_until_due(consumer, msg, wait, commands);
                return;
            }
        }
        // Waits while `max_in_flight` records are undecided or unacknowledged.
        let Some(done) = committer.register(msg).await else {
            return;
        };
        let job = Attempt {
            msg: msg.detach(),
            headers,
            done,
        };
        if !slots.submit(msg.key(), msg.partition(), job).await {
            tracing::debug!("attempt slots closed (shutting down)");
        }
    }

    /// Attempts one record and hands its follow-up records, enqueued to the producer, to the
    /// committer without waiting for their acks. While a dependency is down the slot holds
    /// the record (its loop stops fetching) and tries it again with a growing pause, without
    /// spending an attempt. Stopped before the outcome could be recorded, the record is left
    /// unanswered: nothing from it on is committed.
    async fn attempt_one(&self, job: Attempt, commands: &mpsc::UnboundedSender<LoopCommand>, stop: &CancellationToken) {
        let attempt = job
            .headers
            .get(names::ATTEMPT)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let mut holding = false;
        let mut backoff = HOLD_FIRST_PROBE;
        let result = loop {
            match self.attempt(&job.msg, &job.headers, attempt, stop).await {
                AttemptResult::Held(outage) => {
                    if !holding {
                        holding = true;
                        let _ = commands.send(LoopCommand::Hold(outage.message));
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(HOLD_MAX_PROBE);
                }
                AttemptResult::Stopped => break None,
                AttemptResult::Decided(follow_ups) => break Some(follow_ups),
            }
        };
        if holding {
            let _ = commands.send(LoopCommand::Release);
        }
        let Some(follow_ups) = result else {
            return;
        };
        let acks = self.enqueue_all(&follow_ups).await;
        let _ = job.done.send(Decided { follow_ups, acks });
    }

    /// Waits for the acks of one record's follow-ups; produces the refused ones again until
    /// the broker takes them. `false` when stopped first (the record stays uncommitted).
    async fn wait_acknowledged(&self, decided: Decided, stop: &CancellationToken) -> bool {
        let mut refused: Vec<&FollowUp> = Vec::new();
        for (record, ack) in decided.follow_ups.iter().zip(decided.acks) {
            let ok = match ack {
                Ack::Pending(ack) => matches!(ack.await, Ok(Ok(_))),
                Ack::Acknowledged => true,
                Ack::Refused => false,
            };
            if !ok {
                refused.push(record);
            }
        }
        let mut backoff = Duration::from_millis(200);
        while !refused.is_empty() {
            match self.produce_all(&refused).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "follow-up records not acknowledged; retrying");
                    if stop.is_cancelled() {
                        return false;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        true
    }

    /// Enqueues each follow-up to the producer. A retry or dead-letter record is awaited
    /// before what follows it (the status event), so a notification reported `retrying` or
    /// `dead_lettered` has its record on the topic already (one broker round trip, failures
    /// only).
    async fn enqueue_all(&self, records: &[FollowUp]) -> Vec<Ack> {
        let mut acks = Vec::with_capacity(records.len());
        for r in records {
            let mut tries = 0;
            let ack = loop {
                match self.producer_for(r).send_result(r.record()) {
                    Ok(ack) if r.own_batch => {
                        break match ack.await {
                            Ok(Ok(_)) => Ack::Acknowledged,
                            _ => Ack::Refused,
                        }
                    }
                    Ok(ack) => break Ack::Pending(ack),
                    // The producer's queue is full: let it drain a little.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) if tries < 500 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, topic = %r.topic, "follow-up record not enqueued; will retry");
                        break Ack::Refused;
                    }
                }
            };
            acks.push(ack);
        }
        acks
    }

    fn park_until_due(
        &self,
        consumer: &StreamConsumer,
        msg: &BorrowedMessage<'_>,
        wait_ms: i64,
        commands: &mpsc::UnboundedSender<LoopCommand>,
    ) {
        self.park(consumer, msg);
        let (topic, partition) = (msg.topic().to_string(), msg.partition());
        let commands = commands.clone();
        let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = commands.send(LoopCommand::Resume(topic, partition));
        });
    }

    /// Pauses the partition of `msg` and sets its position back to `msg`, so it is read again
    /// when the partition is resumed.
    fn park(&self, consumer: &StreamConsumer, msg: &BorrowedMessage<'_>) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(msg.topic(), msg.partition());
        if let Err(e) = consumer.pause(&tpl) {
            tracing::warn!(error = %e, "cannot pause a partition");
        }
        // Asynchronous (timeout 0): librdkafka raises the partition's version barrier before
        // returning, so records of it fetched before the seek are never handed out, and the
        // consume loop does not wait for the broker thread. A seek that waited (it used to
        // wait up to 5 s) froze the runtime while the broker was slow, under load with retries.
        if let Err(e) = consumer.seek(
            msg.topic(),
            msg.partition(),
            Offset::Offset(msg.offset()),
            Duration::ZERO,
        ) {
            tracing::warn!(error = %e, "cannot seek back to a parked record");
        }
    }

    /// The producer of a follow-up: retry and dead-letter records one per batch.
    fn producer_for(&self, r: &FollowUp) -> &FutureProducer {
        if r.own_batch {
            &self.retry_producer
        } else {
            &self.producer
        }
    }

    async fn produce_all(&self, records: &[&FollowUp]) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            pending.push(self.producer_for(r).send(r.record(), Duration::from_secs(10)));
        }
        for p in pending {
            p.await.map_err(|(e, _)| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    }
}

/// The first pause between two tries of a held record, doubled up to [`HOLD_MAX_PROBE`].
const HOLD_FIRST_PROBE: Duration = Duration::from_millis(250);
/// The longest pause between two tries of a held record: how long a dependency that is back
/// may wait before the worker notices.
const HOLD_MAX_PROBE: Duration = Duration::from_secs(5);

/// How often a consume loop that holds nothing resumes every assigned partition that is not
/// parked until a due time (see [`resume_unparked`]).
const RESUME_RECONCILE: Duration = Duration::from_secs(1);

/// Resumes every assigned partition but those in `due_parked`: a no-op for a partition that
/// is not paused. librdkafka keeps a partition's pause across a rebalance that takes it away
/// and gives it back (only its own pauses are reset on assignment), and a resume while the
/// partition is not assigned does nothing: a hold released while the loop's partitions were
/// revoked (the loop waited on its in-flight records past `max.poll.interval.ms`, or another
/// member joined) would leave them paused for good, unseen (the worker reports itself not
/// paused, its fetch position no longer moves, nothing more is committed). So the loop does
/// not rely on one resume: while it holds nothing, it asserts "running" again every
/// [`RESUME_RECONCILE`].
fn resume_unparked(consumer: &StreamConsumer, due_parked: &HashSet<(String, i32)>) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let mut running = TopicPartitionList::new();
    for e in assignment.elements() {
        if !due_parked.contains(&(e.topic().to_string(), e.partition())) {
            running.add_partition(e.topic(), e.partition());
        }
    }
    if running.count() > 0 {
        if let Err(e) = consumer.resume(&running) {
            tracing::debug!(error = %e, "cannot resume the running partitions");
        }
    }
}

/// A consume loop's holds: while any attempt slot holds a record because a dependency is
/// down, the loop's partitions are paused (records wait in Kafka, and the loop keeps polling
/// so the consumer stays in its group); the last release resumes them.
/// `worker_consumption_paused{channel,group}` is 1 meanwhile.
struct Hold {
    channel: &'static str,
    group: String,
    count: usize,
    since: Option<std::time::Instant>,
}

impl Hold {
    fn new(channel: &'static str, group: &str) -> Self {
        metrics::gauge!("worker_consumption_paused", "channel" => channel, "group" => group.to_string()).set(0.0);
        Self {
            channel,
            group: group.to_string(),
            count: 0,
            since: None,
        }
    }

    fn is_held(&self) -> bool {
        self.count > 0
    }

    fn hold(&mut self, consumer: &StreamConsumer, reason: &str) {
        self.count += 1;
        if self.count > 1 {
            return;
        }
        self.since = Some(std::time::Instant::now());
        match consumer.assignment() {
            Ok(assignment) => {
                if let Err(e) = consumer.pause(&assignment) {
                    tracing::warn!(error = %e, "cannot pause the assignment");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the assignment to pause it"),
        }
        metrics::gauge!("worker_consumption_paused", "channel" => self.channel, "group" => self.group.clone()).set(1.0);
        tracing::error!(group = %self.group, reason, alert = true, "a dependency is down: consumption paused, records wait in Kafka");
    }

    fn release(&mut self, consumer: &StreamConsumer) {
        self.count = self.count.saturating_sub(1);
        if self.count > 0 {
            return;
        }
        // Resuming every partition also resumes a delay tier's partition parked until its
        // record is due: that record is read again, found not due, and parked again.
        match consumer.assignment() {
            Ok(assignment) => {
                if let Err(e) = consumer.resume(&assignment) {
                    tracing::warn!(error = %e, "cannot resume the assignment");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the assignment to resume it"),
        }
        metrics::gauge!("worker_consumption_paused", "channel" => self.channel, "group" => self.group.clone()).set(0.0);
        let paused_secs = self.since.take().map(|s| s.elapsed().as_secs_f64()).unwrap_or_default();
        tracing::info!(group = %self.group, paused_secs, "dependencies answer again: consumption resumed");
    }
}

/// Publishes, every 10 s and per assigned partition, `kafka_consumer_lag{group,topic,partition}`
/// (end offset − fetch position: what is not read yet) and
/// `kafka_consumer_committed_lag{group,topic,partition}` (end offset − the group's committed
/// offset, or the partition's start without one: what is not settled yet). A loop that reads
/// but stops settling shows in the second only.
async fn report_lag(consumer: Arc<StreamConsumer>, group: String, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = consumer.clone();
        let lags = tokio::task::spawn_blocking(move || -> Vec<PartitionLag> {
            let Ok(assignment) = c.assignment() else {
                return Vec::new();
            };
            let Ok(positions) = c.position() else {
                return Vec::new();
            };
            let committed = c.committed(Duration::from_secs(4)).ok();
            let offset_in = |list: &TopicPartitionList, topic: &str, partition: i32| {
                list.find_partition(topic, partition)
                    .and_then(|p| p.offset().to_raw())
                    .filter(|o| *o >= 0)
            };
            let mut out = Vec::new();
            for e in assignment.elements() {
                let Ok((low, high)) = c.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(4)) else {
                    continue;
                };
                out.push(PartitionLag {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    read: offset_in(&positions, e.topic(), e.partition()).map(|pos| (high - pos).max(0)),
                    settled: committed.as_ref().map(|list| {
                        let from = offset_in(list, e.topic(), e.partition()).unwrap_or(low);
                        (high - from).max(0)
                    }),
                });
            }
            out
        })
        .await
        .unwrap_or_default();
        for lag in lags {
            let (topic, partition) = (lag.topic, lag.partition.to_string());
            if let Some(read) = lag.read {
                metrics::gauge!("kafka_consumer_lag", "group" => group.clone(), "topic" => topic.clone(), "partition" => partition.clone())
                    .set(read as f64);
            }
            if let Some(settled) = lag.settled {
                metrics::gauge!("kafka_consumer_committed_lag", "group" => group.clone(), "topic" => topic, "partition" => partition)
                    .set(settled as f64);
            }
        }
    }
}

/// One assigned partition's lags (see [`report_lag`]); `None` when not known.
struct PartitionLag {
    topic: String,
    partition: i32,
    read: Option<i64>,
    settled: Option<i64>,
}
