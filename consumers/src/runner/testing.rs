//! The runner without a broker, for in-memory tests: a [`PartitionControl`] that records
//! what the bookkeeping asked of the consumer, and a [`Feed`] that hands messages to
//! lanes the way the fetch loop does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::lanes::{Job, Lanes};
use super::process::{Incoming, Process};
use super::state::{PartitionControl, PartitionStates, Tp};

/// What the bookkeeping asked of the consumer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Store(i64),
    Pause,
    Seek(i64),
    Resume,
}

#[derive(Debug, Default)]
pub(crate) struct Recorder(Mutex<Vec<Call>>);

impl Recorder {
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.0.lock().expect("recorder").clone()
    }
    /// Whether the partition is paused now, the way librdkafka keeps it: from the last
    /// pause or resume asked for, whatever rebalances happened in between.
    pub(crate) fn is_paused(&self) -> bool {
        self.calls().iter().rev().find_map(|c| match c {
            Call::Pause => Some(true),
            Call::Resume => Some(false),
            _ => None,
        }) == Some(true)
    }
    fn push(&self, c: Call) -> Result<(), rdkafka::error::KafkaError> {
        self.0.lock().expect("recorder").push(c);
        Ok(())
    }
}

impl PartitionControl for Recorder {
    fn store_offset(&self, _: &Tp, offset: i64) -> Result<(), rdkafka::error::KafkaError> {
        self.push(Call::Store(offset))
    }
    fn pause(&self, _: &Tp) -> Result<(), rdkafka::error::KafkaError> {
        self.push(Call::Pause)
    }
    fn seek(&self, _: &Tp, offset: i64) -> Result<(), rdkafka::error::KafkaError> {
        self.push(Call::Seek(offset))
    }
    fn resume(&self, _: &Tp) -> Result<(), rdkafka::error::KafkaError> {
        self.push(Call::Resume)
    }
}

/// The partition every message of these tests is read from.
pub(crate) fn tp() -> Tp {
    ("t".into(), 0)
}

/// Partition bookkeeping on a recording consumer.
pub(crate) fn states() -> (Arc<PartitionStates>, Arc<Recorder>) {
    let states = PartitionStates::new("g".into());
    let recorder = Arc::new(Recorder::default());
    states.set_consumer(recorder.clone());
    (states, recorder)
}

/// The fetch loop's side of the runner: messages of partition [`tp`] go to lanes by
/// ordering key (the Kafka key), each with a permit and its generation.
pub(crate) struct Feed {
    pub(crate) states: Arc<PartitionStates>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) permits: Arc<Semaphore>,
    lanes: Arc<Lanes>,
}

impl Feed {
    pub(crate) fn new(process: Arc<dyn Process>) -> Feed {
        let (states, recorder) = states();
        let lanes = Lanes::new(states.clone(), process, tokio::runtime::Handle::current());
        Feed { states, recorder, permits: Arc::new(Semaphore::new(16)), lanes }
    }

    /// Hands `msg` (of partition [`tp`], offsets in fetch order) to its key's lane.
    pub(crate) async fn push(&self, msg: Incoming) {
        let generation = self.states.start(&tp(), msg.meta.offset, msg.meta.timestamp_ms).expect("not paused");
        let permit = self.permits.clone().acquire_owned().await.expect("permit");
        let key = self.lanes.key(&tp(), Some(msg.meta.key.as_deref().unwrap_or_default()), msg.meta.offset);
        self.lanes.push(key, Job { tp: tp(), incoming: msg, generation, permit });
    }

    /// Hands `msgs` (of partition [`tp`], in fetch order) to the lanes as one batch, the
    /// way the fetch loop hands over what one poll found.
    pub(crate) async fn push_batch(&self, msgs: Vec<Incoming>) {
        let mut batch = Vec::new();
        for msg in msgs {
            let generation = self.states.start(&tp(), msg.meta.offset, msg.meta.timestamp_ms).expect("not paused");
            let permit = self.permits.clone().acquire_owned().await.expect("permit");
            let key = self.lanes.key(&tp(), Some(msg.meta.key.as_deref().unwrap_or_default()), msg.meta.offset);
            batch.push((key, Job { tp: tp(), incoming: msg, generation, permit }));
        }
        self.lanes.push_batch(batch);
    }

    /// Waits (at most 5 s) until nothing is in flight, then stores what finished, as the
    /// poll loop does on its next round.
    pub(crate) async fn settle(&self) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while self.states.in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("every message finished within 5 s");
        self.states.flush_offsets();
    }
}
