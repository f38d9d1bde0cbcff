//! Batch mode (the spec's BatchEventProcessor): a handler that takes events grouped by
//! event type, for sinks where one round trip per batch beats one per event.
//!
//! Guarantees, on top of the pipeline's:
//! * a batch holds events of one type, at most `max_batch`, collected for at most
//!   `max_wait`; per ordering key it holds at most one event, and the key's next event
//!   waits until the batch finished, so order per key holds as in event mode;
//! * events already recorded in the dedup store for the handler are left out of the
//!   batch; after the batch succeeded, all its events are recorded;
//! * a batch that fails is retried as a whole by the retry policy; a batch that still
//!   fails is split and each event is tried alone, so only the events that fail alone
//!   are dead-lettered;
//! * a batch handler that panics fails that batch (`panic`): it is retried, then split,
//!   and the batcher lives on; should the batcher end anyway, its events
//!   are never acknowledged: the worker stops consuming until it is restarted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ltf_schemas::EventType;
use tokio::sync::{mpsc, oneshot};

use crate::handler::guarded;
use crate::metrics::outcome;
use crate::middleware::dedup;
use crate::pipeline::Pipeline;
use crate::runner::{Incoming, PartitionPause, Process};
use crate::{Event, HandlerContext, HandlerError};

/// A handler of batches of one event type.
#[async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    /// A stable name: metrics label, `dlq-handler` header, dedup key part.
    fn name(&self) -> &str;

    /// Whether this handler wants events of `event_type`.
    fn can_handle(&self, event_type: EventType) -> bool;

    /// The dependencies every call uses (see [`crate::Handler::dependencies`]).
    fn dependencies(&self) -> &[&'static str] {
        &[]
    }

    /// Handles `events`, all of type `event_type`, at least one.
    async fn handle_batch(&self, ctx: &HandlerContext, event_type: EventType, events: &[Event]) -> Result<(), HandlerError>;
}

/// Batch-mode settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most events per batch. Default 500.
    pub max_batch: usize,
    /// Longest wait for a batch to fill. Default 50 ms.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_batch: 500, max_wait: Duration::from_millis(50) }
    }
}

struct Pending {
    event: Event,
    value: Arc<[u8]>,
    blocker: PartitionPause,
    done: oneshot::Sender<()>,
}

/// A [`Process`] that hands events to a [`BatchHandler`] in batches. Use it in place of
/// a [`Pipeline`] (which it uses for decoding, dedup, retries and dead letters; its
/// router is not used).
#[derive(Debug)]
pub struct BatchPipeline {
    core: Arc<Pipeline>,
    name: String,
    wants: Vec<EventType>,
    tx: mpsc::Sender<Pending>,
}

impl BatchPipeline {
    /// Starts the batcher task (call inside a Tokio runtime).
    pub fn new(core: Pipeline, handler: impl BatchHandler, config: BatchConfig) -> BatchPipeline {
        let core = Arc::new(core);
        let handler: Arc<dyn BatchHandler> = Arc::new(handler);
        let wants = EventType::ALL.into_iter().filter(|t| handler.can_handle(*t)).collect();
        let (tx, rx) = mpsc::channel(config.max_batch.max(1) * 2);
        let name = handler.name().to_owned();
        tokio::spawn(batcher(core.clone(), handler, config, rx));
        BatchPipeline { core, name, wants, tx }
    }
}

#[async_trait]
impl Process for BatchPipeline {
    async fn process(&self, msg: Incoming, blocker: &PartitionPause) {
        let msg = &msg;
        let Some(event) = self.core.decode_or_dead_letter(msg, blocker).await else { return };
        if !self.wants.contains(&event.event_type()) {
            return;
        }
        if self.core.is_duplicate(&self.name, &event).await {
            self.core.count(&self.name, Some(event.event_type()), outcome::DUPLICATE);
            return;
        }
        let (done, finished) = oneshot::channel();
        let pending = Pending { event, value: msg.value.clone(), blocker: blocker.clone(), done };
        if self.tx.send(pending).await.is_ok() && finished.await.is_ok() {
            return;
        }
        // The batcher ended (it never should: handler panics are caught): the event is not
        // acknowledged, and the worker stops consuming, unready, until it is restarted.
        tracing::error!(handler = %self.name, "the batcher ended; stopping the worker without acknowledging the event");
        blocker.stop_worker();
        std::future::pending::<()>().await;
    }
}

async fn batcher(core: Arc<Pipeline>, handler: Arc<dyn BatchHandler>, config: BatchConfig, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.max_wait;
        while batch.len() < config.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                _ => break,
            }
        }
        let mut by_type: BTreeMap<&'static str, Vec<Pending>> = BTreeMap::new();
        for p in batch {
            by_type.entry(p.event.event_type().as_str()).or_default().push(p);
        }
        for group in by_type.into_values() {
            run_group(&core, handler.as_ref(), group).await;
        }
    }
}

/// One batch of one type: as a whole with retries, then event by event if it failed.
async fn run_group(core: &Pipeline, handler: &dyn BatchHandler, group: Vec<Pending>) {
    let name: Arc<str> = handler.name().into();
    let blocker = group[0].blocker.clone();
    if attempt(core, handler, &name, &group, &blocker, false).await {
        for p in group {
            let _ = p.done.send(());
        }
        return;
    }
    for p in group {
        let single = [p];
        attempt(core, handler, &name, &single, &single[0].blocker, true).await;
        let [p] = single;
        let _ = p.done.send(());
    }
}

/// Tries `events` as one batch; returns whether it succeeded. With `conclude_failure` a
/// failure is dead-lettered, otherwise left to the caller.
async fn attempt(
    core: &Pipeline,
    handler: &dyn BatchHandler,
    name: &Arc<str>,
    events: &[Pending],
    blocker: &PartitionPause,
    conclude_failure: bool,
) -> bool {
    let batch: Vec<Event> = events.iter().map(|p| p.event.clone()).collect();
    let event_type = batch[0].event_type();
    let attempted = core
        .attempts(name, handler.dependencies(), |ctx| {
            let batch = &batch;
            async move {
                let events: Vec<&Event> = batch.iter().collect();
                dedup::record_after(&ctx, &events, guarded(handler.handle_batch(&ctx, event_type, batch))).await
            }
        })
        .await;
    let ok = attempted.result.is_ok();
    if ok || conclude_failure {
        let concluded: Vec<(&Event, &[u8])> = events.iter().map(|p| (&p.event, &*p.value)).collect();
        core.conclude(name, &concluded, attempted, blocker).await;
    }
    ok
}

#[cfg(test)]
mod tests;
