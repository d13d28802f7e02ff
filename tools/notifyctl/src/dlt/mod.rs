//! `notifyctl dlt list|replay`: inspect a channel's dead-letter topic and republish dead
//! letters to its request topic.
//!
//! Progress is kept in the replay consumer group (`<prefix>notifyctl-dlt-replay`): its
//! committed offset on each DLT partition says "everything below was replayed". A replay
//! reads each partition from there to the end it sees at start, republishes the selected
//! records with an idempotent `acks=all` producer, and commits only once they are
//! acknowledged (batch by batch). A selective replay (`--notification-id`, `--error-class`,
//! `--limit`) cannot commit past a record it leaves in place; the records it replays beyond
//! that point get a marker (see [`markers`]) so no later run republishes them again, and the
//! records left stay pending for the next replay. See the README, *Replaying dead letters*.

mod kafka;
mod markers;
mod output;
mod progress;
mod record;

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use notify_kafka::ensure_topics;
use notify_schemas::headers as h;
use rdkafka::{consumer::BaseConsumer, producer::FutureProducer};

use crate::cli::{ListArgs, ReplayArgs};
use kafka::{DltSettings, Outgoing, RangeReader, Read};
use markers::Marker;
use output::{ListRow, ReplayRow};
use progress::{Handling, Progress};
use record::{DeadLetter, Position};

/// Records republished (and acknowledged) before their progress is committed.
const BATCH: usize = 200;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What the broker and the replay group say about one dead-letter topic.
struct DltState {
    /// Partition → `(low, high)` watermarks.
    watermarks: BTreeMap<i32, (i64, i64)>,
    /// Partition → first offset not replayed yet (the committed offset, within the retained
    /// records).
    pending_from: BTreeMap<i32, i64>,
    /// Dead letters replayed beyond the committed offset.
    marked: HashSet<Position>,
}

impl DltState {
    fn load(consumer: &BaseConsumer, settings: &DltSettings, topic: &str) -> anyhow::Result<Self> {
        let partitions = kafka::partitions(consumer, topic)?.with_context(|| {
            format!(
                "topic {topic} does not exist on {}: is APP_KAFKA_TOPIC_PREFIX right, and has a worker of this channel run?",
                settings.kafka.bootstrap
            )
        })?;
        let watermarks = kafka::watermarks(consumer, topic, &partitions)?;
        let committed = kafka::committed(consumer, topic, &partitions)?;
        let mut pending_from = BTreeMap::new();
        for (p, (low, high)) in &watermarks {
            let from = match committed.get(p).copied().flatten() {
                None => *low,
                Some(c) if c > *high => {
                    tracing::warn!(topic, partition = p, committed = c, end = high,
                        "the replay group's offset is past the end of the partition (was the topic recreated?): reading it from its first record");
                    *low
                }
                Some(c) => c.max(*low),
            };
            pending_from.insert(*p, from);
        }
        let marked = load_markers(settings, topic)?;
        Ok(Self {
            watermarks,
            pending_from,
            marked,
        })
    }

    fn is_replayed(&self, p: &Position) -> bool {
        self.is_below_committed(p) || self.marked.contains(p)
    }

    /// Ranges of the pending records (`all`: of every retained record).
    fn ranges(&self, all: bool) -> BTreeMap<i32, (i64, i64)> {
        self.watermarks
            .iter()
            .map(|(p, (low, high))| {
                let start = if all { *low } else { self.from(*p, *low) };
                (*p, (start, *high))
            })
            .collect()
    }

    /// Records from the committed offsets to the end, less those marked as replayed.
    fn pending_count(&self) -> i64 {
        let unmarked: i64 = self
            .watermarks
            .iter()
            .map(|(p, (low, high))| high - self.from(*p, *low))
            .sum();
        let marked = self.marked.iter().filter(|m| !self.is_below_committed(m)).count();
        unmarked - i64::try_from(marked).unwrap_or(0)
    }

    /// The first pending offset of `partition` (`low` if unknown).
    fn from(&self, partition: i32, low: i64) -> i64 {
        self.pending_from.get(&partition).copied().unwrap_or(low)
    }

    fn is_below_committed(&self, p: &Position) -> bool {
        self.pending_from.get(&p.partition).is_some_and(|from| p.offset < *from)
    }
}

/// The positions on `dlt_topic` that the group's earlier selective replays marked.
fn load_markers(settings: &DltSettings, dlt_topic: &str) -> anyhow::Result<HashSet<Position>> {
    let topic = markers::topic(&settings.kafka.topic_prefix);
    let consumer = kafka::consumer(settings)?;
    let Some(partitions) = kafka::partitions(&consumer, &topic)? else {
        return Ok(HashSet::new());
    };
    let ranges = kafka::watermarks(&consumer, &topic, &partitions)?;
    let mut reader = RangeReader::start(&consumer, &topic, &ranges)?;
    let mut values = Vec::new();
    while let Some(read) = reader.next()? {
        if let Read::Record(r) = read {
            values.push(r.payload.unwrap_or_default());
        }
    }
    Ok(markers::marked(
        values.iter().map(Vec::as_slice),
        &settings.group,
        dlt_topic,
    ))
}

/// `notifyctl dlt list`.
pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let settings = DltSettings::from_env(args.group.as_deref())?;
    let topic = settings.kafka.topics().dlt(args.channel);
    let consumer = kafka::consumer(&settings)?;
    let state = DltState::load(&consumer, &settings, &topic)?;
    tracing::info!(%topic, group = %settings.group, "reading dead letters");
    let mut reader = RangeReader::start(&consumer, &topic, &state.ranges(args.all))?;
    let mut rows = Vec::new();
    while args.limit.is_none_or(|l| rows.len() < l) {
        let Some(read) = reader.next()? else { break };
        let Read::Record(dead) = read else { continue };
        let replayed = state.is_replayed(&dead.position);
        if replayed && !args.all {
            continue;
        }
        let row = ListRow::of(&dead, replayed);
        if args.json {
            output::print_json(&row.to_json())?;
        }
        rows.push(row);
    }
    if !args.json {
        if rows.is_empty() {
            let what = if args.all {
                "no dead letters"
            } else {
                "no pending dead letters"
            };
            output::print(&format!("{what} on {topic}\n"))?;
        } else {
            output::print(&output::list_table(&rows, args.all))?;
        }
    }
    tracing::info!(%topic, shown = rows.len(), pending = state.pending_count(), "listed");
    Ok(())
}

/// One dead letter to republish in the current batch.
struct Planned {
    row: ReplayRow,
    record: Outgoing,
    marker: Option<Marker>,
}

/// A replay run: the reader's state, what is in flight and the counts.
struct Replay<'a> {
    args: &'a ReplayArgs,
    settings: &'a DltSettings,
    consumer: &'a BaseConsumer,
    producer: Option<FutureProducer>,
    topic: String,
    progress: Progress,
    batch: Vec<Planned>,
    markers_topic_ready: bool,
    /// Dead letters selected (republished, or with `--dry-run` to be).
    selected: usize,
    rows: Vec<ReplayRow>,
}

impl Replay<'_> {
    /// Republishes the batch, waits for the acks, writes the markers it needs, then commits
    /// the progress. Nothing is committed (nor marked) for a batch that was not acknowledged
    /// in full: its records are offered again by the next run.
    fn flush(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        if self.args.dry_run {
            self.emit(batch.into_iter().map(|p| p.row).collect())?;
            return Ok(());
        }
        let Some(producer) = &self.producer else {
            anyhow::bail!("no producer for a replay");
        };
        if !batch.is_empty() {
            let records: Vec<Outgoing> = batch.iter().map(|p| p.record.clone()).collect();
            kafka::produce_all(producer, &records).context("republishing dead letters")?;
        }
        let markers: Vec<Outgoing> = batch
            .iter()
            .filter_map(|p| p.marker.as_ref())
            .map(|m| Outgoing {
                topic: markers::topic(&self.settings.kafka.topic_prefix),
                key: Some(m.key().into_bytes()),
                payload: Some(m.to_json()),
                headers: Vec::new(),
            })
            .collect();
        if !markers.is_empty() {
            if !self.markers_topic_ready {
                let topic = markers::topic(&self.settings.kafka.topic_prefix);
                futures::executor::block_on(ensure_topics(&self.settings.kafka, &[topic]))
                    .context("creating the replay markers topic")?;
                self.markers_topic_ready = true;
            }
            kafka::produce_all(producer, &markers).context("recording replayed dead letters")?;
        }
        let offsets = self.progress.to_commit();
        kafka::commit(self.consumer, &self.topic, &offsets)?;
        self.progress.committed(&offsets);
        if !offsets.is_empty() {
            tracing::debug!(topic = %self.topic, ?offsets, "committed replay progress");
        }
        self.emit(batch.into_iter().map(|p| p.row).collect())
    }

    fn emit(&mut self, rows: Vec<ReplayRow>) -> anyhow::Result<()> {
        if self.args.json {
            for r in &rows {
                output::print_json(&r.to_json())?;
            }
        }
        self.rows.extend(rows);
        Ok(())
    }

    /// Decides what to do with one dead letter.
    fn take(&mut self, state: &DltState, dead: DeadLetter) -> anyhow::Result<Handling> {
        let handling = if state.marked.contains(&dead.position) {
            Handling::AlreadyReplayed
        } else if dead.matches(&self.args.notification_ids, self.args.error_class.as_deref()) {
            Handling::Replayed
        } else {
            Handling::Left
        };
        let needs_marker = self
            .progress
            .record(dead.position.partition, dead.position.offset, handling);
        if handling != Handling::Replayed {
            return Ok(handling);
        }
        let target = record::replay_target(&self.settings.kafka.topics(), self.args.channel, &dead);
        let now = now_ms();
        let headers = record::replay_headers(&dead, now);
        let row = ReplayRow {
            dry_run: self.args.dry_run,
            topic: dead.position.topic.clone(),
            partition: dead.position.partition,
            offset: dead.position.offset,
            notification_id: dead.header(h::NOTIFICATION_ID).map(str::to_string),
            error_class: dead.header(h::ERROR_CLASS).map(str::to_string),
            target_topic: target.clone(),
            replay_count: record::header(&headers, h::REPLAY_COUNT).map(str::to_string),
        };
        let marker = needs_marker.then(|| Marker {
            group: self.settings.group.clone(),
            topic: dead.position.topic.clone(),
            partition: dead.position.partition,
            offset: dead.position.offset,
            notification_id: row.notification_id.clone(),
            republished_to: target.clone(),
            replayed_at: now,
        });
        self.batch.push(Planned {
            row,
            record: Outgoing {
                topic: target,
                key: dead.key,
                payload: dead.payload,
                headers,
            },
            marker,
        });
        self.selected += 1;
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(handling)
    }
}

/// `notifyctl dlt replay`.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let settings = DltSettings::from_env(args.group.as_deref())?;
    let topic = settings.kafka.topics().dlt(args.channel);
    let consumer = kafka::consumer(&settings)?;
    let state = DltState::load(&consumer, &settings, &topic)?;
    let producer = if args.dry_run {
        None
    } else {
        Some(kafka::producer(&settings)?)
    };
    let ranges = state.ranges(false);
    let mut progress = Progress::default();
    for (p, (start, end)) in &ranges {
        progress.add(*p, *start, *end);
    }
    tracing::info!(%topic, group = %settings.group, dry_run = args.dry_run, selective = args.is_selective(), "replaying dead letters");
    let mut run = Replay {
        args,
        settings: &settings,
        consumer: &consumer,
        producer,
        topic: topic.clone(),
        progress,
        batch: Vec::new(),
        markers_topic_ready: false,
        selected: 0,
        rows: Vec::new(),
    };
    let (mut already, mut left) = (0usize, 0usize);
    let mut reader = RangeReader::start(&consumer, &topic, &ranges)?;
    // A read error stops the run after what was read so far is made durable.
    let mut read_error = None;
    while args.limit.is_none_or(|l| run.selected < l) {
        let read = match reader.next() {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        match read {
            Read::PartitionDone(p) => run.progress.finished(p),
            Read::Record(dead) => match run.take(&state, dead) {
                Ok(Handling::AlreadyReplayed) => already += 1,
                Ok(Handling::Left) => left += 1,
                Ok(Handling::Replayed) => {}
                Err(e) => return finish(&run, Err(e)),
            },
        }
    }
    let flushed = run.flush();
    let result = match (flushed, read_error) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(e)) => Err(e.context("reading the dead-letter topic (what was replayed before is committed)")),
        (Ok(()), None) => Ok(()),
    };
    if result.is_ok() {
        tracing::info!(
            %topic,
            selected = run.selected,
            republished = if args.dry_run { 0 } else { run.selected },
            already_replayed = already,
            not_selected = left,
            dry_run = args.dry_run,
            "{}",
            if args.dry_run { "dry run: nothing republished" } else { "replay done" }
        );
    }
    finish(&run, result)
}

/// Prints the table of what was done (also when the run stops on an error: those records are
/// republished and committed) and returns `result`.
fn finish(run: &Replay<'_>, result: anyhow::Result<()>) -> anyhow::Result<()> {
    if !run.args.json {
        if run.rows.is_empty() {
            if result.is_ok() {
                output::print("nothing to replay\n")?;
            }
        } else {
            output::print(&output::replay_table(&run.rows))?;
        }
    }
    result
}
