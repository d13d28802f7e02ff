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
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Message},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
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
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(commit_in_order(consumer, rx, settle));
        Self { tx, task }
    }

    /// Registers `msg` behind every record registered before it (waits while `capacity`
    /// records are open). Send its outcome through the returned sender; dropping the sender
    /// unanswered stops the committer there (nothing after it is committed). `None` once
    /// the committer has stopped.
    pub async fn register(&self, msg: &BorrowedMessage<'_>) -> Option<oneshot::Sender<T>> {
        let (done_tx, done_rx) = oneshot::channel();
        let ticket = Ticket {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
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

async fn commit_in_order<T, S, Fut>(consumer: Arc<StreamConsumer>, mut rx: mpsc::Receiver<Ticket<T>>, settle: S)
where
    S: Fn(T) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut stored = false;
    let mut last_commit = Instant::now();
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            _ = tokio::time::sleep(COMMIT_INTERVAL), if stored => {
                commit_stored(&consumer);
                stored = false;
                last_commit = Instant::now();
                continue;
            }
        };
        let Some(ticket) = next else { break };
        let Ok(outcome) = ticket.done.await else { break };
        if !settle(outcome).await {
            break;
        }
        // Stores offset + 1, the next record to read.
        if let Err(e) = consumer.store_offset(&ticket.topic, ticket.partition, ticket.offset) {
            // The partition was revoked meanwhile: its new owner reads the record again.
            tracing::debug!(topic = %ticket.topic, partition = ticket.partition, error = %e, "offset not stored");
        }
        stored = true;
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            commit_stored(&consumer);
            stored = false;
            last_commit = Instant::now();
        }
    }
    if stored {
        commit_stored(&consumer);
    }
}

/// Commits the stored offsets without waiting (a lost commit only means redelivery).
fn commit_stored(consumer: &StreamConsumer) {
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
        tracing::debug!(error = %e, "offset commit skipped");
    }
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
