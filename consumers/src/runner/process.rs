//! What the runner hands each message to: the processing pipeline.

use std::sync::Arc;

use async_trait::async_trait;

use crate::runner::state::{PartitionStates, Tp};
use crate::Meta;

/// A fetched message: its metadata and raw value (decoding is the pipeline's job, so an
/// undecodable value can be dead-lettered byte for byte).
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Kafka metadata.
    pub meta: Meta,
    /// The raw value.
    pub value: Vec<u8>,
}

/// Lets the pipeline tell the runner that the message's partition must wait (an open
/// circuit): the runner pauses fetching it until every blocked lane is released.
#[derive(Debug, Clone)]
pub struct PartitionPause {
    shared: Arc<PartitionStates>,
    tp: Tp,
    blocked: Arc<std::sync::atomic::AtomicBool>,
}

impl PartitionPause {
    pub(crate) fn new(shared: Arc<PartitionStates>, tp: Tp) -> PartitionPause {
        PartitionPause { shared, tp, blocked: Arc::new(std::sync::atomic::AtomicBool::new(false)) }
    }

    /// Pauses the partition (once per lane, however often it is called).
    pub fn block(&self) {
        if !self.blocked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.shared.block(&self.tp);
        }
    }

    /// Releases this lane's pause.
    pub fn unblock(&self) {
        if self.blocked.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.shared.unblock(&self.tp);
        }
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
    /// Processes `msg`.
    async fn process(&self, msg: &Incoming, blocker: &PartitionPause);
}
