//! State shared by the poll loop, the lanes and the rebalance callbacks: per-partition
//! offsets, pauses, health.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldhash::HashMap;
use metrics::{counter, gauge, Gauge};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use crate::metrics::{labels, IN_FLIGHT, PAUSED_PARTITIONS, REBALANCES_TOTAL};
use crate::runner::context::RunnerContext;
use crate::runner::offsets::PartitionOffsets;

/// (topic, partition).
/// (topic, partition); the topic's name is shared, so a `Tp` is cloned without copying it.
pub type Tp = (Arc<str>, i32);

/// What the partition bookkeeping asks of the consumer: store an offset, pause a
/// partition, seek and resume it. The runner's consumer implements it; tests of the
/// bookkeeping use a recorder, without a broker.
pub trait PartitionControl: Send + Sync {
    /// Stores `offset` (the next to read) of the partition for the next commit.
    fn store_offset(&self, tp: &Tp, offset: i64) -> Result<(), KafkaError>;
    /// Stops fetching the partition.
    fn pause(&self, tp: &Tp) -> Result<(), KafkaError>;
    /// Moves the fetch position of a paused partition to `offset`.
    fn seek(&self, tp: &Tp, offset: i64) -> Result<(), KafkaError>;
    /// Fetches the partition again.
    fn resume(&self, tp: &Tp) -> Result<(), KafkaError>;
}

fn one(tp: &Tp, offset: Option<i64>) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    match offset {
        Some(o) => tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(o))?,
        None => {
            tpl.add_partition(&tp.0, tp.1);
        }
    }
    Ok(tpl)
}

impl PartitionControl for StreamConsumer<RunnerContext> {
    fn store_offset(&self, tp: &Tp, offset: i64) -> Result<(), KafkaError> {
        self.store_offsets(&one(tp, Some(offset))?)
    }

    fn pause(&self, tp: &Tp) -> Result<(), KafkaError> {
        Consumer::pause(self, &one(tp, None)?)
    }

    fn seek(&self, tp: &Tp, offset: i64) -> Result<(), KafkaError> {
        Consumer::seek(self, &tp.0, tp.1, Offset::Offset(offset), Duration::from_secs(10))
    }

    fn resume(&self, tp: &Tp) -> Result<(), KafkaError> {
        Consumer::resume(self, &one(tp, None)?)
    }
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Bumped on every revocation, so work of an earlier assignment never stores offsets.
    generation: u64,
    offsets: PartitionOffsets,
    /// Paused for back-pressure (every in-flight slot held): where to seek before
    /// resuming, the first message not dispatched.
    resume_at: Option<i64>,
    /// The commit position finished work moved to, not stored in the consumer yet
    /// ([`PartitionStates::flush_offsets`] stores it).
    unstored: Option<i64>,
}

/// PartitionStates runner state. See the module documentation.
pub struct PartitionStates {
    pub group: String,
    /// Weak: the consumer's context holds this state, and the run owns the consumer; a
    /// strong reference here would keep the consumer (and its group membership) alive
    /// after the run ended.
    consumer: OnceLock<Weak<dyn PartitionControl>>,
    partitions: Mutex<HashMap<Tp, PartitionState>>,
    generation: AtomicU64,
    in_flight: AtomicUsize,
    assigned: AtomicUsize,
    /// Partitions paused for back-pressure.
    held: AtomicUsize,
    heartbeat_ms: AtomicU64,
    stopped: AtomicBool,
    /// Whether some partition has an unstored commit position.
    unstored: AtomicBool,
    /// The in-flight gauge of the group, resolved on first use and set once per poll
    /// round ([`PartitionStates::report_in_flight`]).
    in_flight_gauge: OnceLock<Gauge>,
}

impl std::fmt::Debug for PartitionStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionStates").field("group", &self.group).field("in_flight", &self.in_flight).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl PartitionStates {
    pub fn new(group: String) -> Arc<PartitionStates> {
        Arc::new(PartitionStates {
            group,
            consumer: OnceLock::new(),
            partitions: Mutex::new(HashMap::default()),
            generation: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            assigned: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            heartbeat_ms: AtomicU64::new(now_ms()),
            stopped: AtomicBool::new(false),
            unstored: AtomicBool::new(false),
            in_flight_gauge: OnceLock::new(),
        })
    }

    /// The consumer the bookkeeping stores offsets in and pauses (kept weakly).
    pub fn set_consumer(&self, consumer: Arc<dyn PartitionControl>) {
        let _ = self.consumer.set(Arc::downgrade(&consumer));
    }

    fn consumer(&self) -> Option<Arc<dyn PartitionControl>> {
        self.consumer.get().and_then(Weak::upgrade)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Tp, PartitionState>> {
        self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a fetched offset. Returns its generation, or `None` when the message
    /// must be dropped: its partition is paused and it will be fetched again on resume.
    #[cfg(test)]
    pub fn start(&self, tp: &Tp, offset: i64, timestamp_ms: Option<i64>) -> Option<u64> {
        self.start_all([(tp, offset, timestamp_ms, self.generation())])[0]
    }

    /// The current generation: bumped by every revocation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// [`start`](Self::start) of the messages of a batch at once (one lock, so the poll
    /// thread and the lanes finishing work seldom meet on it): (partition, offset,
    /// timestamp, [`generation`](Self::generation) when it was received) each; their
    /// generations, in order. A message received before a revocation of its partition
    /// (a rebalance ran during the batch's later polls) is dropped: the partition's new
    /// owner reads it.
    pub fn start_all<'a>(&self, messages: impl IntoIterator<Item = (&'a Tp, i64, Option<i64>, u64)>) -> Vec<Option<u64>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut parts = self.lock();
        let started: Vec<Option<u64>> = messages
            .into_iter()
            .map(|(tp, offset, timestamp_ms, received)| {
                // Revoked since it was received: no state, or the state of a later
                // assignment (created after the revocation, so of a later generation).
                if received != generation && parts.get(tp).is_none_or(|p| p.generation > received) {
                    return None;
                }
                let p = parts.entry(tp.clone()).or_insert_with(|| PartitionState { generation, ..Default::default() });
                if p.resume_at.is_some_and(|r| offset >= r) {
                    return None;
                }
                p.offsets.start_at(offset, timestamp_ms);
                Some(p.generation)
            })
            .collect();
        self.in_flight.fetch_add(started.iter().flatten().count(), Ordering::SeqCst);
        started
    }

    /// Sets the in-flight gauge: once per poll round (per batch), not per event.
    pub fn report_in_flight(&self) {
        let gauge = self.in_flight_gauge.get_or_init(|| gauge!(IN_FLIGHT, labels::GROUP => self.group.clone()));
        gauge.set(self.in_flight() as f64);
    }

    /// Marks `offset` finished and moves the partition's commit position (the lowest
    /// unfinished offset); the next [`flush_offsets`](Self::flush_offsets) stores it.
    #[cfg(test)]
    pub fn finish(&self, tp: &Tp, generation: u64, offset: i64) {
        self.finish_all(&[(tp.clone(), generation, offset)]);
    }

    /// [`finish`](Self::finish) of several events at once (one lock): (partition,
    /// generation, offset) each.
    pub fn finish_all(&self, events: &[(Tp, u64, i64)]) {
        self.in_flight.fetch_sub(events.len(), Ordering::SeqCst);
        let mut parts = self.lock();
        let mut moved = false;
        for (tp, generation, offset) in events {
            if let Some(p) = parts.get_mut(tp).filter(|p| p.generation == *generation) {
                if let Some(next) = p.offsets.finish(*offset) {
                    p.unstored = Some(next);
                    moved = true;
                }
            }
        }
        if moved {
            self.unstored.store(true, Ordering::SeqCst);
        }
    }

    /// Stores in the consumer the commit position of every partition whose finished work
    /// moved it since the last flush: one store per partition per poll, not one per
    /// event. The poll loop calls it on every round, before it reads the consumer's
    /// positions, and before every commit (a revocation, the shutdown), so what finished
    /// is what gets committed.
    pub fn flush_offsets(&self) {
        if !self.unstored.swap(false, Ordering::SeqCst) {
            return;
        }
        let store: Vec<(Tp, i64)> =
            self.lock().iter_mut().filter_map(|(tp, p)| p.unstored.take().map(|next| (tp.clone(), next))).collect();
        let Some(consumer) = self.consumer() else { return };
        for (tp, next) in store {
            // Fails harmlessly for a partition revoked meanwhile (at-least-once).
            if let Err(e) = consumer.store_offset(&tp, next) {
                debug!(topic = %tp.0, partition = tp.1, error = %e, "offset not stored");
            }
        }
    }

    /// Every in-flight slot is held: pause fetching `tp`, to resume at `offset` (the
    /// message fetched without a slot, not dispatched).
    pub fn hold(&self, tp: &Tp, offset: i64) {
        let generation = self.generation.load(Ordering::SeqCst);
        let pause = {
            let mut parts = self.lock();
            let p = parts.entry(tp.clone()).or_insert_with(|| PartitionState { generation, ..Default::default() });
            let first = p.resume_at.is_none();
            p.resume_at = Some(p.resume_at.map_or(offset, |r| r.min(offset)));
            first
        };
        if pause {
            let n = self.held.fetch_add(1, Ordering::SeqCst) + 1;
            gauge!(PAUSED_PARTITIONS, labels::GROUP => self.group.clone()).set(n as f64);
            self.pause_resume(tp, true, None);
        }
    }

    /// Whether any partition is paused for back-pressure.
    pub fn any_held(&self) -> bool {
        self.held.load(Ordering::SeqCst) > 0
    }

    /// Whether `offset` of `tp` was fetched while the partition is paused for
    /// back-pressure (it is read again after the resume).
    pub fn is_held(&self, tp: &Tp, offset: i64) -> bool {
        if self.held.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.lock().get(tp).and_then(|p| p.resume_at).is_some_and(|r| offset >= r)
    }

    /// Slots are free again: every partition paused for back-pressure seeks to its first
    /// message not dispatched and fetches again.
    pub fn release_held(&self) {
        if self.held.load(Ordering::SeqCst) == 0 {
            return;
        }
        let resume: Vec<(Tp, i64)> = {
            let mut parts = self.lock();
            let out: Vec<(Tp, i64)> =
                parts.iter_mut().filter_map(|(tp, p)| p.resume_at.take().map(|r| (tp.clone(), r))).collect();
            self.held.store(0, Ordering::SeqCst);
            out
        };
        gauge!(PAUSED_PARTITIONS, labels::GROUP => self.group.clone()).set(0.0);
        for (tp, at) in resume {
            self.pause_resume(&tp, false, Some(at));
        }
    }

    fn pause_resume(&self, tp: &Tp, pause: bool, seek: Option<i64>) {
        let Some(consumer) = self.consumer() else { return };
        let result = if pause {
            consumer.pause(tp)
        } else {
            if let Some(at) = seek {
                if let Err(e) = consumer.seek(tp, at) {
                    warn!(topic = %tp.0, partition = tp.1, error = %e, "seek before resume failed");
                }
            }
            consumer.resume(tp)
        };
        if let Err(e) = result {
            warn!(topic = %tp.0, partition = tp.1, pause, error = %e, "pause/resume failed");
        }
    }

    /// Stores the consumer's position of each idle partition (nothing in flight, nothing
    /// held) that is past the offset stored. The position steps over transaction markers
    /// (the relay writes in transactions), which are never delivered: without this, a
    /// partition whose last record is a marker would show a lag of 1 for ever. Every record
    /// below such a position was finished or was a marker, because a message the poll
    /// returned is either dispatched (in flight until finished) or held (its partition held
    /// until the seek back, which resets the position). Call it from the poll loop, between
    /// polls, like [`hold`](Self::hold) and [`release_held`](Self::release_held).
    pub fn store_idle_positions(&self, positions: &[(Tp, i64)]) {
        // What finished first, so that a position stored below is never followed by an
        // older commit position.
        self.flush_offsets();
        let generation = self.generation.load(Ordering::SeqCst);
        let store: Vec<(Tp, i64)> = {
            let mut parts = self.lock();
            positions
                .iter()
                .filter(|(tp, position)| {
                    let p = parts.entry(tp.clone()).or_insert_with(|| PartitionState { generation, ..Default::default() });
                    p.resume_at.is_none() && p.offsets.advance_to(*position)
                })
                .cloned()
                .collect()
        };
        let Some(consumer) = self.consumer() else { return };
        for (tp, position) in store {
            if let Err(e) = consumer.store_offset(&tp, position) {
                debug!(topic = %tp.0, partition = tp.1, error = %e, "position not stored");
            }
        }
    }

    /// The partitions were revoked: work still running for them will not store offsets.
    pub fn revoke(&self, tpl: &TopicPartitionList) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut parts = self.lock();
        for e in tpl.elements() {
            parts.remove(&(e.topic().into(), e.partition()));
        }
        let held = parts.values().filter(|p| p.resume_at.is_some()).count();
        self.held.store(held, Ordering::SeqCst);
        drop(parts);
        gauge!(PAUSED_PARTITIONS, labels::GROUP => self.group.clone()).set(held as f64);
        self.assigned.fetch_sub(tpl.count().min(self.assigned.load(Ordering::SeqCst)), Ordering::SeqCst);
        counter!(REBALANCES_TOTAL, labels::GROUP => self.group.clone(), labels::KIND => "revoke").increment(1);
    }

    /// Partitions were assigned: each is resumed, since librdkafka keeps a pause asked for
    /// before a revocation across the rebalance, and this assignment starts unpaused.
    pub fn assign(&self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            self.pause_resume(&(e.topic().into(), e.partition()), false, None);
        }
        self.assigned.fetch_add(tpl.count(), Ordering::SeqCst);
        counter!(REBALANCES_TOTAL, labels::GROUP => self.group.clone(), labels::KIND => "assign").increment(1);
    }

    /// Age in seconds of the lowest unfinished message of `tp` (the one at its commit
    /// position); 0 when none.
    pub fn oldest_age_seconds(&self, tp: &Tp) -> f64 {
        let parts = self.lock();
        let oldest = parts.get(tp).and_then(|p| p.offsets.lowest_unfinished_timestamp());
        oldest.map_or(0.0, |ts| (now_ms() as f64 - ts as f64).max(0.0) / 1000.0)
    }

    /// Events dispatched and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Partitions assigned now.
    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::SeqCst)
    }

    /// The poll loop is alive.
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::SeqCst);
    }

    /// Time since the poll loop last went round.
    pub fn since_heartbeat(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.heartbeat_ms.load(Ordering::SeqCst)))
    }

    /// Marks the worker stopped (shutdown or fuse).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether the worker stopped consuming.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}
