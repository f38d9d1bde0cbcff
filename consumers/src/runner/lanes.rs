//! Per-ordering-key lanes: events of one key run one after another, in offset order;
//! different keys run concurrently.
//!
//! The fetch loop hands over what one poll returned as a batch: an event whose key has a
//! lane already waits in that lane's queue; the events of new keys get one task for the
//! whole batch, which runs their lanes concurrently and takes each lane's later events
//! as they queue up. So a task is spawned per batch, not per event (every record has a
//! key of its own when records are keyed by id), and the batches of one partition still
//! spread over the runtime's threads. The task first runs each new lane as far as it goes
//! without waiting; only a lane whose event waits (a handler's I/O, a parked event)
//! becomes a future of the task's set, so an event handled at once costs no slot there.
//!
//! A task records what its lanes finished each time it waits (and when it ends): one lock
//! of the partitions' bookkeeping and one release of the in-flight slots per round of the
//! task, not per event. The lanes' queues are sharded by lane key, so the poll thread and
//! the lanes on every runtime thread seldom meet on one lock.
//!
//! A finished message is not dropped by the lanes: it goes back with the task's record,
//! and the poll thread, which allocated its metadata and value, drops it on its next
//! round ([`Lanes::drop_spent`]). Freed by another thread, each of its blocks cost an
//! atomic hand-back in the allocator and a collection by its owner again (7 % of the
//! worker's CPU in a no-op run; BENCHMARKS.md, "Consumer", session 32).

use std::collections::VecDeque;
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use foldhash::HashMap;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;
use tracing::error;

use crate::runner::process::{Incoming, PartitionPause, Process};
use crate::runner::state::{PartitionStates, Tp};

/// A lane: (topic, partition, ordering key) hashed with the lanes' random seed
/// ([`Lanes::key`]), so queuing an event allocates no key. Two keys of one hash would
/// share a lane and run one after the other, which their order allows: a collision
/// (one in 2^64 per pair) costs concurrency, never order.
pub type LaneKey = u64;

/// One fetched message on its way through a lane.
#[derive(Debug)]
pub struct Job {
    /// Its partition.
    pub tp: Tp,
    pub incoming: Incoming,
    pub generation: u64,
    /// Released when the job finishes: bounds the events in flight.
    pub permit: OwnedSemaphorePermit,
}

/// Shards of the lanes' queues: the poll thread queues jobs while the lanes on every
/// runtime thread take them, and one lock for all of them made the threads wait for each
/// other (a lock convoy).
const SHARDS: usize = 64;

/// The queues of the lanes of one shard.
type Queues = HashMap<LaneKey, VecDeque<Job>>;

/// What the lanes of one task finished and did not record yet.
#[derive(Debug, Default)]
struct Finished {
    /// (partition, generation, offset) of each event.
    events: Vec<(Tp, u64, i64)>,
    /// Their in-flight slots, merged into one.
    permit: Option<OwnedSemaphorePermit>,
    /// Their messages, to be dropped by the poll thread ([`Lanes::drop_spent`]).
    spent: Vec<Incoming>,
}

impl Finished {
    /// Adds a finished event to the task's shared record.
    fn add_to(finished: &Mutex<Finished>, tp: Tp, generation: u64, spent: Incoming, permit: OwnedSemaphorePermit) {
        finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(tp, generation, spent, permit);
    }

    fn add(&mut self, tp: Tp, generation: u64, spent: Incoming, permit: OwnedSemaphorePermit) {
        self.events.push((tp, generation, spent.meta.offset));
        self.spent.push(spent);
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
    }
}

/// The running lanes. A lane exists while it runs; its queue holds the jobs waiting
/// behind the one being processed.
#[derive(Debug)]
pub struct Lanes {
    /// The lanes' queues, sharded by lane key.
    queues: Box<[Mutex<Queues>]>,
    seed: foldhash::fast::RandomState,
    shared: Arc<PartitionStates>,
    /// The lanes' handle on the runner, lent to every event (not cloned per event: its
    /// count would be one more shared cache line written from both threads).
    pause: PartitionPause,
    process: Arc<dyn Process>,
    /// Where the lanes run (the poll loop has a runtime of its own).
    runtime: Handle,
    /// Messages whose processing ended, for the poll thread to drop: it allocated them,
    /// and a block freed by the thread that allocated it costs a fraction of one freed
    /// by another (mimalloc frees a foreign block through an atomic list its owner must
    /// collect again).
    spent: Mutex<Vec<Incoming>>,
}

impl Lanes {
    pub fn new(shared: Arc<PartitionStates>, process: Arc<dyn Process>, runtime: Handle) -> Arc<Lanes> {
        let queues = (0..SHARDS).map(|_| Mutex::new(Queues::default())).collect();
        let pause = PartitionPause::new(shared.clone());
        Arc::new(Lanes { queues, seed: Default::default(), shared, pause, process, runtime, spent: Mutex::default() })
    }

    /// The queues of the shard of `key`.
    fn queues(&self, key: LaneKey) -> std::sync::MutexGuard<'_, Queues> {
        self.queues[(key % SHARDS as u64) as usize].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lane of the messages of `tp` with ordering key `ordering`; a message without
    /// one is a lane of its own (by its `offset`).
    pub fn key(&self, tp: &Tp, ordering: Option<&str>, offset: i64) -> LaneKey {
        self.seed.hash_one((&tp.0, tp.1, ordering, ordering.is_none().then_some(offset)))
    }

    /// Queues each job behind earlier jobs of its key; the jobs of keys without a lane
    /// start their lanes together in one task.
    pub fn push_batch(self: &Arc<Self>, batch: Vec<(LaneKey, Job)>) {
        let mut fresh = Vec::new();
        for (key, job) in batch {
            let mut queues = self.queues(key);
            if let Some(q) = queues.get_mut(&key) {
                q.push_back(job);
            } else {
                queues.insert(key, VecDeque::new());
                fresh.push((key, job));
            }
        }
        if fresh.is_empty() {
            return;
        }
        let lanes = self.clone();
        self.runtime.spawn(async move {
            let finished = Mutex::new(Finished::default());
            let mut fresh = fresh.into_iter();
            let mut waiting = FuturesUnordered::new();
            // What finished is recorded whenever the lanes wait (and at the end): once per
            // round of the task, not once per event.
            std::future::poll_fn(|cx| {
                // The batch's new lanes first, each as far as it goes without waiting: only
                // a lane that waits becomes a future of the task's set.
                for (key, job) in fresh.by_ref() {
                    if let Some(started) = lanes.run_ready(key, job, &finished, cx) {
                        waiting.push(lanes.run_rest(key, started, &finished));
                    }
                }
                loop {
                    match waiting.poll_next_unpin(cx) {
                        Poll::Ready(Some(())) => continue,
                        Poll::Ready(None) => {
                            lanes.record(&finished);
                            return Poll::Ready(());
                        }
                        Poll::Pending => {
                            lanes.record(&finished);
                            return Poll::Pending;
                        }
                    }
                }
            })
            .await;
        });
    }

    /// Marks what the lanes of a task finished in the bookkeeping and releases their
    /// in-flight slots.
    fn record(&self, finished: &Mutex<Finished>) {
        let Finished { events, permit, spent } =
            std::mem::take(&mut *finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if !events.is_empty() {
            self.shared.finish_all(&events);
            let mut all = self.spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if all.is_empty() {
                *all = spent;
            } else {
                all.extend(spent);
            }
        }
        drop(permit);
    }

    /// Drops the messages whose processing ended since the last call; the poll loop calls
    /// it on every round, so they wait at most one round (and their number is bounded by
    /// the in-flight slots they held and the batch fetched since).
    pub fn drop_spent(&self) {
        let spent = std::mem::take(&mut *self.spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        drop(spent);
    }

    /// Queues `job` behind earlier jobs of its key, or starts a lane for it.
    #[cfg(test)]
    pub fn push(self: &Arc<Self>, key: LaneKey, job: Job) {
        self.push_batch(vec![(key, job)]);
    }

    /// Runs the lane of `key` from `job` as far as it goes without waiting, polling each
    /// event's processing with the task's context `cx`; returns the event whose processing
    /// waits (its lane goes on in [`Lanes::run_rest`]), or `None` once the lane's queue is
    /// empty (or an event panicked).
    fn run_ready<'a>(
        &'a self,
        key: LaneKey,
        mut job: Job,
        finished: &Mutex<Finished>,
        cx: &mut Context<'_>,
    ) -> Option<Started<'a>> {
        loop {
            let Job { tp, incoming, generation, permit } = job;
            let spent = incoming.clone();
            let mut processing = self.process.process(incoming, &self.pause);
            match std::panic::catch_unwind(AssertUnwindSafe(|| processing.as_mut().poll(cx))) {
                Ok(Poll::Ready(())) => {}
                Ok(Poll::Pending) => return Some(Started { processing, tp, generation, spent, permit }),
                Err(_) => {
                    panicked(&tp, spent.meta.offset);
                    return None;
                }
            }
            drop(processing);
            Finished::add_to(finished, tp, generation, spent, permit);
            job = self.next(key)?;
        }
    }

    /// The lane of `key` from an event whose processing waited, until its queue is empty.
    async fn run_rest(&self, key: LaneKey, started: Started<'_>, finished: &Mutex<Finished>) {
        let Started { processing, tp, generation, spent, permit } = started;
        if AssertUnwindSafe(processing).catch_unwind().await.is_err() {
            panicked(&tp, spent.meta.offset);
            return;
        }
        Finished::add_to(finished, tp, generation, spent, permit);
        if let Some(job) = self.next(key) {
            self.run(key, job, finished).await;
        }
    }

    /// Runs the lane of `key` from `first` until its queue is empty.
    async fn run(&self, key: LaneKey, first: Job, finished: &Mutex<Finished>) {
        let mut job = first;
        loop {
            let Job { tp, incoming, generation, permit } = job;
            let spent = incoming.clone();
            if AssertUnwindSafe(self.process.process(incoming, &self.pause)).catch_unwind().await.is_err() {
                panicked(&tp, spent.meta.offset);
                return;
            }
            Finished::add_to(finished, tp, generation, spent, permit);
            let Some(next) = self.next(key) else { return };
            job = next;
        }
    }

    /// The next job of the lane of `key`; `None` ends the lane (its queue is empty).
    fn next(&self, key: LaneKey) -> Option<Job> {
        let mut queues = self.queues(key);
        let next = queues.get_mut(&key).and_then(VecDeque::pop_front);
        if next.is_none() {
            queues.remove(&key);
        }
        next
    }
}

/// An event whose processing was started and waits.
struct Started<'a> {
    processing: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    tp: Tp,
    generation: u64,
    /// The message, kept to be dropped by the poll thread.
    spent: Incoming,
    permit: OwnedSemaphorePermit,
}

/// A panic while processing an event. The lane stays: its key's later events wait behind
/// an event that is never finished, which is read again after a restart (at-least-once).
fn panicked(tp: &Tp, offset: i64) {
    error!(topic = %tp.0, partition = tp.1, offset, "processing panicked; the event stays unfinished");
}
