//! What the runner hands each message to: the processing pipeline.

use std::sync::Arc;

use async_trait::async_trait;

use crate::runner::state::PartitionStates;
use crate::Meta;

/// A fetched message: its metadata and raw value (decoding is the pipeline's job, so an
/// undecodable value can be dead-lettered byte for byte).
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Kafka metadata (shared with the decoded [`crate::Event`], not copied).
    pub meta: Arc<Meta>,
    /// The raw value, shared: the decoded event's field maps keep a share of it rather
    /// than copies of their bytes.
    pub value: Arc<[u8]>,
}

/// A lane's handle on the runner: lets the pipeline stop the whole worker (the DLQ-rate
/// fuse). Waiting for a dependency needs nothing of the runner: a parked event holds its
/// lane and its in-flight slot, and the runner pauses fetching once every slot is held.
#[derive(Debug, Clone)]
pub struct PartitionPause {
    shared: Arc<PartitionStates>,
}

impl PartitionPause {
    pub(crate) fn new(shared: Arc<PartitionStates>) -> PartitionPause {
        PartitionPause { shared }
    }

    /// Stops the whole worker from consuming (the DLQ-rate fuse tripped).
    pub fn stop_worker(&self) {
        self.shared.stop();
    }

    /// Whether the worker was stopped.
    #[cfg(test)]
    pub(crate) fn is_worker_stopped(&self) -> bool {
        self.shared.is_stopped()
    }
}

/// Processes one message to the end: handled, skipped as a duplicate, or dead-lettered.
/// When `process` returns, the runner marks the offset finished; a message that could not
/// be finished (the DLQ unreachable) must not return until it is, or the worker stops.
#[async_trait]
pub trait Process: Send + Sync + std::fmt::Debug + 'static {
    /// Processes `msg`. The call owns the message, so the lanes can start it and keep it
    /// waiting without holding the message beside it.
    async fn process(&self, msg: Incoming, blocker: &PartitionPause);
}
