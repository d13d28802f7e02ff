//! The Kafka side of the `dlt` commands: settings, reading fixed offset ranges of a topic,
//! the replay group's committed offsets, and producing records until they are acknowledged.
//!
//! Everything is synchronous (a `BaseConsumer` polled by the command; the producer's delivery
//! futures are awaited with a local executor): a command runs once and exits.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use notify_kafka::KafkaSettings;
use notify_kit::settings::{self, SettingsError};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Headers, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};

use super::record::{DeadLetter, HeaderList, Position};

/// How long one broker request (metadata, offsets, commit) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read may go without a record while records remain in its ranges.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// What the `dlt` commands read from the environment.
#[derive(Debug, Clone)]
pub struct DltSettings {
    /// `APP_KAFKA_BOOTSTRAP` and `APP_KAFKA_TOPIC_PREFIX`, as the services read them;
    /// `APP_KAFKA_REPLICATION` for the markers topic (one partition) if it is created.
    pub kafka: KafkaSettings,
    /// The replay consumer group: `--group`, else `APP_DLT_REPLAY_GROUP`, else
    /// `<prefix>notifyctl-dlt-replay`.
    pub group: String,
}

impl DltSettings {
    pub fn from_env(group: Option<&str>) -> Result<Self, SettingsError> {
        let kafka = KafkaSettings {
            // The only topic this tool creates, the markers topic, has one partition.
            partitions: 1,
            ..KafkaSettings::from_env()?
        };
        let group = match group {
            Some(g) => g.to_string(),
            None => settings::string(
                "APP_DLT_REPLAY_GROUP",
                &format!("{}notifyctl-dlt-replay", kafka.topic_prefix),
            ),
        };
        Ok(Self { kafka, group })
    }
}

/// A consumer of the replay group that is only ever *assigned* partitions (it never joins the
/// group) and commits explicitly.
pub fn consumer(settings: &DltSettings) -> anyhow::Result<BaseConsumer> {
    settings
        .kafka
        .consumer_config(&settings.group, 4096)
        .set("enable.auto.offset.store", "false")
        .create()
        .context("failed to create a Kafka consumer")
}

/// An idempotent producer that waits for every in-sync replica (`acks=all`).
pub fn producer(settings: &DltSettings) -> anyhow::Result<FutureProducer> {
    settings
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("failed to create a Kafka producer")
}

/// The partitions of `topic`, or `None` when the broker does not know the topic.
pub fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Option<Vec<i32>>> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic} from the broker"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if let Some(e) = t.error() {
        let code = RDKafkaErrorCode::from(e);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Ok(None);
        }
        bail!("the broker reports an error for topic {topic}: {code}");
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok((!ids.is_empty()).then_some(ids))
}

/// `(low, high)` watermarks of every partition: the first retained offset and the next
/// offset to be written.
pub fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    partitions
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, *p, REQUEST_TIMEOUT)
                .map(|w| (*p, w))
                .with_context(|| format!("cannot read the offsets of {topic} partition {p}"))
        })
        .collect()
}

/// The offsets the consumer's group committed on `topic` (`None` for a partition without one).
pub fn committed(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let got = consumer
        .committed_offsets(tpl, REQUEST_TIMEOUT)
        .with_context(|| format!("cannot read the committed offsets of the replay group on {topic}"))?;
    Ok(partitions
        .iter()
        .map(|p| {
            let offset = got.find_partition(topic, *p).and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            });
            (*p, offset)
        })
        .collect())
}

/// Commits `offsets` (partition → next offset to read) of `topic` for the consumer's group,
/// synchronously.
pub fn commit(consumer: &BaseConsumer, topic: &str, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .with_context(|| format!("bad offset {o} for partition {p}"))?;
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .with_context(|| format!("cannot commit the replay progress on {topic}"))
}

/// One step of a [`RangeReader`].
#[derive(Debug)]
pub enum Read {
    Record(DeadLetter),
    /// Every record of this partition's range was returned.
    PartitionDone(i32),
}

/// Reads fixed ranges `[start, end)` of the partitions of one topic, in offset order per
/// partition. `end` is fixed at start, so records written meanwhile (e.g. a replayed record
/// that failed again) are not part of this read.
pub struct RangeReader<'c> {
    consumer: &'c BaseConsumer,
    topic: String,
    /// Partition → end of its range, for the partitions still being read.
    open: BTreeMap<i32, i64>,
    done: VecDeque<i32>,
    last_progress: Instant,
}

impl<'c> RangeReader<'c> {
    /// Assigns the partitions of `ranges` (partition → `(start, end)`) to `consumer`.
    pub fn start(consumer: &'c BaseConsumer, topic: &str, ranges: &BTreeMap<i32, (i64, i64)>) -> anyhow::Result<Self> {
        let mut tpl = TopicPartitionList::new();
        let mut open = BTreeMap::new();
        let mut done = VecDeque::new();
        for (p, (start, end)) in ranges {
            if start < end {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*start))
                    .with_context(|| format!("bad offset {start} for partition {p}"))?;
                open.insert(*p, *end);
            } else {
                done.push_back(*p);
            }
        }
        consumer
            .assign(&tpl)
            .with_context(|| format!("cannot read from {topic}"))?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            open,
            done,
            last_progress: Instant::now(),
        })
    }

    fn close(&mut self, partition: i32) {
        if self.open.remove(&partition).is_some() {
            self.done.push_back(partition);
        }
    }

    /// The next record or finished partition; `None` once every range was read.
    pub fn next(&mut self) -> anyhow::Result<Option<Read>> {
        loop {
            if let Some(p) = self.done.pop_front() {
                return Ok(Some(Read::PartitionDone(p)));
            }
            if self.open.is_empty() {
                return Ok(None);
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let p = m.partition();
                    let Some(end) = self.open.get(&p).copied().filter(|_| m.topic() == self.topic) else {
                        continue;
                    };
                    self.last_progress = Instant::now();
                    if m.offset() >= end {
                        self.close(p);
                        continue;
                    }
                    if m.offset() + 1 >= end {
                        self.close(p);
                    }
                    return Ok(Some(Read::Record(DeadLetter {
                        position: Position {
                            topic: self.topic.clone(),
                            partition: p,
                            offset: m.offset(),
                        },
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers: m
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })));
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "error while reading; retrying");
                }
                None => self.check_stalled()?,
            }
        }
    }

    /// No record came: a partition whose position passed its end (only gaps were left) is
    /// done; after [`IDLE_LIMIT`] without progress the read fails.
    fn check_stalled(&mut self) -> anyhow::Result<()> {
        if self.last_progress.elapsed() < Duration::from_secs(2) {
            return Ok(());
        }
        if let Ok(positions) = self.consumer.position() {
            let passed: Vec<i32> = self
                .open
                .iter()
                .filter(|(p, end)| {
                    positions
                        .find_partition(&self.topic, **p)
                        .and_then(|e| e.offset().to_raw())
                        .is_some_and(|pos| pos >= **end)
                })
                .map(|(p, _)| *p)
                .collect();
            for p in passed {
                self.close(p);
            }
        }
        if !self.open.is_empty() && self.last_progress.elapsed() >= IDLE_LIMIT {
            let open: Vec<String> = self.open.iter().map(|(p, end)| format!("{p} (to {end})")).collect();
            bail!(
                "no records arrived from {} for {}s although partitions {} are not read to their end",
                self.topic,
                IDLE_LIMIT.as_secs(),
                open.join(", ")
            );
        }
        Ok(())
    }
}

/// A record to produce.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HeaderList,
}

fn owned_headers(list: &HeaderList) -> OwnedHeaders {
    list.iter()
        .fold(OwnedHeaders::new_with_capacity(list.len()), |hs, (k, v)| {
            hs.insert(Header {
                key: k,
                value: v.as_deref(),
            })
        })
}

/// Produces `records` in order and waits until the broker acknowledged every one. Returns
/// the `(partition, offset)` each was written at; an error if any was not acknowledged.
pub fn produce_all(producer: &FutureProducer, records: &[Outgoing]) -> anyhow::Result<Vec<(i32, i64)>> {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.topic).headers(owned_headers(&r.headers));
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &r.payload {
            record = record.payload(p.as_slice());
        }
        let mut attempt = record;
        let future = loop {
            match producer.send_result(attempt) {
                Ok(f) => break f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    std::thread::sleep(Duration::from_millis(50));
                    attempt = back;
                }
                Err((e, _)) => bail!("cannot produce to {}: {e}", r.topic),
            }
        };
        pending.push((r.topic.as_str(), future));
    }
    let mut out = Vec::with_capacity(pending.len());
    let mut first_error = None;
    for (topic, future) in pending {
        match futures::executor::block_on(future) {
            Ok(Ok(at)) => out.push(at),
            Ok(Err((e, _))) => {
                first_error.get_or_insert_with(|| format!("{topic} did not acknowledge a record: {e}"));
            }
            Err(_) => {
                first_error.get_or_insert_with(|| format!("the producer stopped before {topic} acknowledged"));
            }
        }
    }
    match first_error {
        Some(e) => bail!(e),
        None => Ok(out),
    }
}
