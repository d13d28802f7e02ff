//! Handling a consumer's records concurrently while committing them in order.
//!
//! - [`KeyedSlots`]: a fixed number of tasks, each handling its records one after the other;
//!   a record goes to the slot of its key, so one key's records keep their order while
//!   different keys proceed side by side.
//! - [`OrderedCommitter`]: every record is registered in receive order; its offset is stored
//!   only once its outcome, and that of every record before it, is *settled* (for a worker:
//!   its follow-up records acknowledged by the broker); stored offsets are committed every
//!   [`COMMIT_INTERVAL`]. So a crash never commits past an undecided record: at-least-once.
//!
//! Both are bounded: when `capacity` records are open the reading loop waits.

use std::{
    future::Future,
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Message, OwnedMessage},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// How often stored offsets are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The slot of a record: by key (keyless records by partition). Stable within a process.
pub fn slot_of(key: Option<&[u8]>, partition: i32, slots: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match key {
        Some(k) => k.hash(&mut h),
        None => partition.hash(&mut h),
    }
    usize::try_from(h.finish() % slots.max(1) as u64).unwrap_or(0)
}

/// Tasks that handle jobs one at a time each; see the module documentation.
pub struct KeyedSlots<J> {
    slots: Vec<mpsc::Sender<J>>,
    tasks: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static> KeyedSlots<J> {
    /// Starts `count` slots running `handle` on their jobs in turn. On `stop` a slot
    /// finishes the job in hand and drops the rest (their records stay uncommitted).
    pub fn spawn<H, Fut>(count: usize, capacity: usize, stop: CancellationToken, handle: H) -> Self
    where
        H: Fn(J) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut slots = Vec::with_capacity(count.max(1));
        let mut tasks = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            let (tx, mut rx) = mpsc::channel::<J>(capacity.max(1));
            let (handle, stop) = (handle.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let job = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        job = rx.recv() => match job {
                            Some(job) => job,
                            None => return,
                        },
                    };
                    handle(job).await;
                }
            }));
            slots.push(tx);
        }
        Self { slots, tasks }
    }

    /// Hands `job` to the slot of `key` (waits while that slot is full). `false` once the
    /// slots have stopped.
    pub async fn submit(&self, key: Option<&[u8]>, partition: i32, job: J) -> bool {
        let slot = slot_of(key, partition, self.slots.len());
        self.slots[slot].send(job).await.is_ok()
    }

    /// Stops taking jobs and waits for the slots to finish theirs.
    pub async fn close(self) {
        drop(self.slots);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// A record waiting, in receive order, to be settled.
struct Ticket<T> {
    topic: String,
    partition: i32,
    offset: i64,
    done: oneshot::Receiver<T>,
}

/// Where the committer stores and commits offsets: the consumer (a recorder in the tests).
trait OffsetSink: Send + Sync + 'static {
    /// Marks `offset` processed, so the next read of the partition starts after it.
    fn store(&self, topic: &str, partition: i32, offset: i64) -> Result<(), String>;
    /// Commits the stored offsets without waiting (a lost commit only means redelivery).
    fn commit(&self);
}

impl OffsetSink for StreamConsumer {
    fn store(&self, topic: &str, partition: i32, offset: i64) -> Result<(), String> {
        // Stores offset + 1, the next record to read.
        self.store_offset(topic, partition, offset).map_err(|e| e.to_string())
    }

    fn commit(&self) {
        if let Err(e) = self.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(error = %e, "offset commit skipped");
        }
    }
}

/// Commits in receive order; see the module documentation.
pub struct OrderedCommitter<T> {
    tx: mpsc::Sender<Ticket<T>>,
    task: JoinHandle<()>,
}

impl<T: Send + 'static> OrderedCommitter<T> {
    /// Starts the committer of `consumer`. `settle` turns a record's outcome into `true`
    /// once it is durable (it may wait, and retry); `false` stops committing (shutdown).
    pub fn spawn<S, Fut>(consumer: Arc<StreamConsumer>, capacity: usize, settle: S) -> Self
    where
        S: Fn(T) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self::spawn_on(consumer, COMMIT_INTERVAL, capacity, settle)
    }

    fn spawn_on<O, S, Fut>(sink: Arc<O>, interval: Duration, capacity: usize, settle: S) -> Self
    where
        O: OffsetSink,
        S: Fn(T) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let frontier = Frontier {
            sink,
            interval,
            stored: false,
            last_commit: Instant::now(),
        };
        let task = tokio::spawn(commit_in_order(frontier, rx, settle));
        Self { tx, task }
    }

    /// Registers `msg` behind every record registered before it (waits while `capacity`
    /// records are open). Send its outcome through the returned sender; dropping the sender
    /// unanswered stops the committer there (nothing after it is committed). `None` once
    /// the committer has stopped.
    pub async fn register(&self, msg: &BorrowedMessage<'_>) -> Option<oneshot::Sender<T>> {
        self.register_at(msg.topic(), msg.partition(), msg.offset()).await
    }

    async fn register_at(&self, topic: &str, partition: i32, offset: i64) -> Option<oneshot::Sender<T>> {
        let (done_tx, done_rx) = oneshot::channel();
        let ticket = Ticket {
            topic: topic.to_string(),
            partition,
            offset,
            done: done_rx,
        };
        self.tx.send(ticket).await.ok()?;
        Some(done_tx)
    }

    /// Takes no more records; waits until every registered one is settled (or unanswered)
    /// and its offset stored and committed.
    pub async fn close(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the offset committer failed");
        }
    }
}

/// The stored offsets not yet committed, and when they were last committed.
struct Frontier<O> {
    sink: Arc<O>,
    interval: Duration,
    stored: bool,
    last_commit: Instant,
}

impl<O: OffsetSink> Frontier<O> {
    /// Drives `fut` to its end, committing what is stored every `interval` meanwhile: a record
    /// that stays undecided for long (retries, an outage) does not hold back the commit of
    /// the records settled before it.
    async fn wait<F: Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                _ = tokio::time::sleep_until(self.last_commit + self.interval), if self.stored => self.commit(),
            }
        }
    }

    fn store(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Err(e) = self.sink.store(topic, partition, offset) {
            // The partition was revoked meanwhile: its new owner reads the record again.
            tracing::debug!(%topic, partition, error = %e, "offset not stored");
        }
        self.stored = true;
        if self.last_commit.elapsed() >= self.interval {
            self.commit();
        }
    }

    fn commit(&mut self) {
        self.sink.commit();
        self.stored = false;
        self.last_commit = Instant::now();
    }
}

async fn commit_in_order<T, O, S, Fut>(mut frontier: Frontier<O>, mut rx: mpsc::Receiver<Ticket<T>>, settle: S)
where
    O: OffsetSink,
    S: Fn(T) -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let Some(ticket) = frontier.wait(rx.recv()).await else {
            break;
        };
        let Ok(outcome) = frontier.wait(ticket.done).await else {
            break;
        };
        if !frontier.wait(settle(outcome)).await {
            break;
        }
        frontier.store(&ticket.topic, ticket.partition, ticket.offset);
    }
    if frontier.stored {
        frontier.commit();
    }
}

/// A record on its way to its slot, with the channel its outcome goes back on.
struct Job {
    msg: OwnedMessage,
    done: oneshot::Sender<bool>,
}

/// Reads `consumer` until `stop`: each record goes to the [`KeyedSlots`] slot of its key
/// (`concurrency` slots), where `settle` handles it and answers `true` once its outcome is
/// durable; offsets are committed in receive order through an [`OrderedCommitter`]. At the
/// end the slots and the committer drain, the last stored offsets are committed and the
/// consumer leaves its group. Shared by the services that consume one topic this way (the
/// status projector, ingest).
pub async fn consume_keyed<S, Fut>(
    consumer: Arc<StreamConsumer>,
    concurrency: usize,
    stop: CancellationToken,
    settle: S,
) where
    S: Fn(OwnedMessage, CancellationToken) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let capacity = 64 * concurrency.max(1);
    let committer = OrderedCommitter::spawn(consumer.clone(), capacity, |settled: bool| async move { settled });
    let slots = KeyedSlots::spawn(concurrency, capacity, stop.clone(), {
        let stop = stop.clone();
        move |job: Job| {
            let (settle, stop) = (settle.clone(), stop.clone());
            async move {
                let settled = settle(job.msg, stop).await;
                let _ = job.done.send(settled);
            }
        }
    });
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(done) = committer.register(&msg).await else {
            break;
        };
        let job = Job {
            msg: msg.detach(),
            done,
        };
        if !slots.submit(msg.key(), msg.partition(), job).await {
            break;
        }
    }
    slots.close().await;
    committer.close().await;
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    consumer.unsubscribe();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_always_lands_in_one_slot_and_keys_spread() {
        let a = slot_of(Some(b"user-a"), 0, 8);
        for p in 0..5 {
            assert_eq!(
                slot_of(Some(b"user-a"), p, 8),
                a,
                "the partition does not matter for keyed records"
            );
        }
        let used: std::collections::HashSet<usize> = (0..200)
            .map(|i| slot_of(Some(format!("user-{i}").as_bytes()), 0, 8))
            .collect();
        assert_eq!(used.len(), 8, "200 keys use every slot");
        assert!((0..200).all(|i| slot_of(Some(format!("k{i}").as_bytes()), 0, 3) < 3));
        assert_eq!(slot_of(None, 2, 1), 0);
    }

    #[tokio::test]
    async fn slots_keep_one_keys_jobs_in_order_and_run_keys_side_by_side() {
        use std::sync::Mutex;
        let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let max_running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, r, m) = (seen.clone(), running.clone(), max_running.clone());
        let slots = KeyedSlots::spawn(4, 16, CancellationToken::new(), move |(key, n): (String, u32)| {
            let (s, r, m) = (s.clone(), r.clone(), m.clone());
            async move {
                let now = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                m.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Later jobs of a key finish faster: only the slot keeps them in order.
                tokio::time::sleep(Duration::from_millis(u64::from(20 - n))).await;
                s.lock().unwrap().push((key, n));
                r.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        for n in 0..5u32 {
            for key in ["a", "b", "c", "d", "e", "f"] {
                assert!(slots.submit(Some(key.as_bytes()), 0, (key.to_string(), n)).await);
            }
        }
        slots.close().await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 30);
        for key in ["a", "b", "c", "d", "e", "f"] {
            let order: Vec<u32> = seen.iter().filter(|(k, _)| k == key).map(|(_, n)| *n).collect();
            assert_eq!(order, vec![0, 1, 2, 3, 4], "key {key}");
        }
        assert!(
            max_running.load(std::sync::atomic::Ordering::SeqCst) > 1,
            "keys ran side by side"
        );
    }
}

/// Property tests of [`OrderedCommitter`]: random receive orders over several partitions,
/// settled in random orders interleaved with the registrations, some records dropped
/// unanswered or refused by `settle`.
#[cfg(test)]
mod frontier_properties {
    use std::{
        collections::{BTreeMap, HashSet},
        sync::Mutex,
    };

    use proptest::prelude::*;

    use super::*;

    /// What the test does with a registered record's sender.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Answer {
        /// Sends an outcome that `settle` accepts.
        Settle,
        /// Sends an outcome that `settle` refuses (shutdown): nothing from it on is committed.
        Refuse,
        /// Drops the sender unanswered: nothing from it on is committed.
        Drop,
    }

    /// One step of a run.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Registers the next record of the receive order.
        Register,
        /// Answers the record at this index of the receive order (already registered).
        Answer(usize),
    }

    #[derive(Debug, Clone)]
    struct Scenario {
        /// `(partition, offset)` in receive order; offsets grow within a partition, with gaps.
        records: Vec<(i32, i64)>,
        answers: Vec<Answer>,
        steps: Vec<Step>,
    }

    /// Records the sink calls and checks each store against what the test has answered.
    #[derive(Default)]
    struct Recorder {
        state: Mutex<Recorded>,
    }

    #[derive(Default)]
    struct Recorded {
        /// The receive order as registered so far.
        registered: Vec<(i32, i64)>,
        /// Records whose outcome `settle` accepted (marked before the outcome is sent).
        settled: HashSet<(i32, i64)>,
        stored: BTreeMap<i32, i64>,
        committed: BTreeMap<i32, i64>,
        violations: Vec<String>,
    }

    impl OffsetSink for Recorder {
        fn store(&self, topic: &str, partition: i32, offset: i64) -> Result<(), String> {
            let mut s = self.state.lock().unwrap();
            assert_eq!(topic, "t");
            match s.registered.iter().position(|r| *r == (partition, offset)) {
                None => s
                    .violations
                    .push(format!("stored {partition}/{offset}, never registered")),
                Some(at) => {
                    let open: Vec<(i32, i64)> = s.registered[..=at]
                        .iter()
                        .filter(|r| !s.settled.contains(r))
                        .copied()
                        .collect();
                    if !open.is_empty() {
                        s.violations.push(format!(
                            "stored {partition}/{offset} while {open:?} (received before it or itself) were unsettled"
                        ));
                    }
                }
            }
            if s.stored.get(&partition).is_some_and(|&o| o >= offset) {
                s.violations
                    .push(format!("partition {partition} went back to {offset}"));
            }
            s.stored.insert(partition, offset);
            Ok(())
        }

        fn commit(&self) {
            let mut s = self.state.lock().unwrap();
            s.committed = s.stored.clone();
        }
    }

    /// The offsets that must be committed once the committer has caught up: per partition,
    /// the last offset within the longest prefix of the receive order whose records were all
    /// settled (accepted). Nothing past the first unanswered, dropped or refused record.
    fn expected_frontier(records: &[(i32, i64)], answered: &[Option<Answer>]) -> BTreeMap<i32, i64> {
        let mut frontier = BTreeMap::new();
        for (record, answer) in records.iter().zip(answered) {
            if *answer != Some(Answer::Settle) {
                break;
            }
            frontier.insert(record.0, record.1);
        }
        frontier
    }

    /// Whether the committer has a reason to stop: the first record of the receive order
    /// that is not settled was refused or dropped.
    fn stopped(answered: &[Option<Answer>]) -> bool {
        answered
            .iter()
            .find(|a| **a != Some(Answer::Settle))
            .is_some_and(|a| a.is_some())
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (1..=4i32, 1..=40usize)
            .prop_flat_map(|(partitions, n)| {
                (
                    prop::collection::vec((0..partitions, 1..=3i64), n),
                    prop::collection::vec(0..1_000i64, partitions as usize),
                    prop::collection::vec(
                        prop_oneof![18 => Just(Answer::Settle), 1 => Just(Answer::Refuse), 1 => Just(Answer::Drop)],
                        n,
                    ),
                    Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                    prop::collection::vec(any::<bool>(), 2 * n),
                )
            })
            .prop_map(|(picks, bases, answers, settle_order, coins)| {
                let mut next = bases;
                let records: Vec<(i32, i64)> = picks
                    .into_iter()
                    .map(|(p, gap)| {
                        let offset = next[p as usize];
                        next[p as usize] += gap;
                        (p, offset)
                    })
                    .collect();
                // Interleaves registrations (in receive order) with answers (in settle order);
                // a record is answered only once registered.
                let (mut steps, mut registered, mut coins) = (Vec::new(), 0, coins.into_iter());
                for i in settle_order {
                    while registered <= i || (registered < records.len() && coins.next().unwrap_or(false)) {
                        steps.push(Step::Register);
                        registered += 1;
                    }
                    steps.push(Step::Answer(i));
                }
                Scenario {
                    records,
                    answers,
                    steps,
                }
            })
    }

    async fn wait_until(what: &str, recorder: &Recorder, cond: impl Fn(&Recorded) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            {
                let s = recorder.state.lock().unwrap();
                if !s.violations.is_empty() {
                    return Err(format!("{:?}", s.violations));
                }
                if cond(&s) {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(format!("{what}: stored {:?}, committed {:?}", s.stored, s.committed));
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs `scenario` against a committer over a [`Recorder`]; after every step, waits for
    /// the committed offsets to reach the expected frontier (and checks every store).
    async fn run(scenario: &Scenario) -> Result<(), String> {
        let recorder = Arc::new(Recorder::default());
        let committer = OrderedCommitter::spawn_on(
            recorder.clone(),
            Duration::from_millis(1),
            scenario.records.len(),
            |accepted: bool| async move { accepted },
        );
        let mut senders: Vec<Option<oneshot::Sender<bool>>> = Vec::new();
        let mut answered: Vec<Option<Answer>> = vec![None; scenario.records.len()];
        for step in &scenario.steps {
            match *step {
                Step::Register => {
                    let (p, o) = scenario.records[senders.len()];
                    recorder.state.lock().unwrap().registered.push((p, o));
                    let sender = committer.register_at("t", p, o).await;
                    if sender.is_none() && !stopped(&answered) {
                        return Err(format!("the committer stopped taking records before {p}/{o}"));
                    }
                    senders.push(sender);
                }
                Step::Answer(i) => {
                    let answer = scenario.answers[i];
                    answered[i] = Some(answer);
                    // Registered after the committer stopped: nothing to answer.
                    let Some(sender) = senders[i].take() else { continue };
                    match answer {
                        Answer::Settle => {
                            recorder.state.lock().unwrap().settled.insert(scenario.records[i]);
                            let _ = sender.send(true);
                        }
                        Answer::Refuse => {
                            let _ = sender.send(false);
                        }
                        Answer::Drop => drop(sender),
                    }
                }
            }
            let expected = expected_frontier(&scenario.records, &answered);
            wait_until("the committed offsets to reach the settled prefix", &recorder, |s| {
                s.committed == expected
            })
            .await?;
        }
        committer.close().await;
        let s = recorder.state.lock().unwrap();
        if !s.violations.is_empty() {
            return Err(format!("{:?}", s.violations));
        }
        let expected = expected_frontier(&scenario.records, &answered);
        if s.committed != expected || s.stored != expected {
            return Err(format!(
                "after close: stored {:?}, committed {:?}, expected {expected:?}",
                s.stored, s.committed
            ));
        }
        Ok(())
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(64)))]

        #[test]
        fn never_commits_past_an_unsettled_record_and_commits_every_settled_prefix(s in scenario()) {
            prop_assert_eq!(block_on(run(&s)), Ok(()));
        }
    }

    /// `PROPTEST_CASES` when set (the long run), else `default`.
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn records_settled_out_of_order_wait_for_the_first_one() {
        // Receive order: p0/10, p1/5, p0/11; settled last to first.
        let records = vec![(0, 10), (1, 5), (0, 11)];
        let scenario = Scenario {
            answers: vec![Answer::Settle; 3],
            steps: vec![
                Step::Register,
                Step::Register,
                Step::Register,
                Step::Answer(2),
                Step::Answer(1),
                Step::Answer(0),
            ],
            records: records.clone(),
        };
        assert_eq!(block_on(run(&scenario)), Ok(()));
        // The expected frontier itself: nothing until the first record is settled.
        let settle = Some(Answer::Settle);
        assert_eq!(expected_frontier(&records, &[None, settle, settle]), BTreeMap::new());
        assert_eq!(
            expected_frontier(&records, &[settle, settle, settle]),
            BTreeMap::from([(0, 11), (1, 5)])
        );
    }

    #[test]
    fn a_record_stuck_undecided_does_not_hold_back_the_commit_of_those_before_it() {
        block_on(async {
            let recorder = Arc::new(Recorder::default());
            let committer = OrderedCommitter::spawn_on(
                recorder.clone(),
                Duration::from_millis(20),
                8,
                |accepted: bool| async move { accepted },
            );
            recorder.state.lock().unwrap().registered = vec![(0, 1), (0, 2)];
            let first = committer.register_at("t", 0, 1).await.unwrap();
            let _second_stays_undecided = committer.register_at("t", 0, 2).await.unwrap();
            recorder.state.lock().unwrap().settled.insert((0, 1));
            first.send(true).unwrap();
            let done = wait_until("the first record's commit", &recorder, |s| {
                s.committed == BTreeMap::from([(0, 1)])
            })
            .await;
            assert_eq!(done, Ok(()));
            assert!(recorder.state.lock().unwrap().violations.is_empty());
        });
    }
}
