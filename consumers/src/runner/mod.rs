//! The consumer-group runner: fetches, schedules per ordering key, stores offsets.
//!
//! Guarantees:
//! * at-least-once: an offset is stored only after its message was processed to the end
//!   (handled, skipped as a duplicate, or dead-lettered), and the stored offset of a
//!   partition is the lowest one not finished, so a restart re-reads every unfinished
//!   message and nothing finished is lost; offsets are stored once per poll round (per
//!   batch), not per event, and always before a commit (revocation, shutdown);
//! * per ordering key (the `ordering-key` header, else the Kafka key) messages of a
//!   partition are processed one at a time in offset order; different keys and
//!   partitions run concurrently, at most `max_in_flight` messages at once;
//! * memory is bounded: librdkafka's prefetch (`consumer.prefetch_kbytes`) and the
//!   in-flight bound; a finished message waits at most one poll round to be dropped by
//!   the poll thread, which allocated it;
//! * the poll loop has a thread of its own; the lanes run on the caller's runtime, so a
//!   handler that is slow or blocks its thread never delays a poll (the worker stays in
//!   its group and alive for its probe);
//! * before partitions are revoked, the finished offsets are committed synchronously;
//!   work still running for a revoked partition stores nothing (the new owner handles
//!   it again; dedup keeps its side effects single);
//! * an event waiting for a dependency (parked) holds only its lane and its in-flight
//!   slot: the partition's other keys go on; when every slot is held, the partition of
//!   the next message fetched is paused (the consumer keeps polling, so it stays in the
//!   group) and, once slots are free again, resumed from that message;
//! * every pause has its resume: a partition assigned again after a revocation is resumed
//!   (librdkafka keeps an application's pause across rebalances);
//! * on shutdown the runner stops fetching, lets in-flight work finish within
//!   `shutdown_deadline`, commits exactly what finished, and abandons the rest.

mod config;
mod context;
mod lanes;
mod offsets;
mod process;
mod state;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use ltf_kafka::topics::{ensure_side_topics, SideTopic};
use ltf_schemas::TopicNames;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

pub use config::WorkerConfig;
pub use offsets::PartitionOffsets;
pub use process::{Incoming, PartitionPause, Process};

/// A pause of a partition of a runner without a consumer, for tests of the middleware.
#[cfg(test)]
pub(crate) fn test_pause() -> PartitionPause {
    PartitionPause::new(state::PartitionStates::new("test".into()))
}

use crate::runner::context::RunnerContext;
use crate::runner::lanes::{Job, LaneKey, Lanes};
use crate::runner::state::PartitionStates;
use crate::{ConsumeError, Meta};

/// What a run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// In-flight messages abandoned at the shutdown deadline (handled again after a
    /// restart).
    pub abandoned: usize,
}

/// Health of a running worker, for `/healthz` and `/readyz`.
#[derive(Debug, Clone)]
pub struct Health {
    shared: Arc<PartitionStates>,
}

impl Health {
    /// Alive: the poll loop went round within `stuck_after`.
    pub fn is_alive(&self, stuck_after: Duration) -> bool {
        self.shared.since_heartbeat() < stuck_after
    }

    /// Ready: partitions assigned and the worker not stopped by its fuse or shutdown.
    pub fn is_ready(&self) -> bool {
        self.shared.assigned() > 0 && !self.shared.is_stopped()
    }

    /// Whether the worker stopped consuming (fuse tripped or shutting down).
    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }
}

/// A consumer-group runner for one worker.
#[derive(Debug)]
pub struct Runner {
    config: WorkerConfig,
    topics: Vec<String>,
    process: Arc<dyn Process>,
    shared: Arc<PartitionStates>,
}

impl Runner {
    /// A runner of `config.consumer.group_id` over `topics` (plus the group's retry topic
    /// of each, when configured), handing every message to `process`.
    pub fn new(config: WorkerConfig, topics: Vec<String>, process: Arc<dyn Process>) -> Result<Runner, ConsumeError> {
        config.validate()?;
        let shared = PartitionStates::new(config.consumer.group_id.clone());
        Ok(Runner { config, topics, process, shared })
    }

    /// The topics subscribed: the event topics and, when configured, their retry topics.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut all = self.topics.clone();
        if self.config.consume_retry_topics {
            all.extend(self.topics.iter().map(|t| TopicNames::retry(t, &self.config.consumer.group_id)));
        }
        all
    }

    /// Creates the group's retry and dead-letter topics of every subscribed event topic
    /// when missing (before anything is published to them: an idempotent producer can
    /// lose the first records of an auto-created topic).
    pub async fn ensure_side_topics(&self) -> Result<(), ConsumeError> {
        let group = &self.config.consumer.group_id;
        let specs: Vec<SideTopic> = self
            .topics
            .iter()
            .flat_map(|t| [(TopicNames::retry(t, group), t), (TopicNames::dlq(t, group), t)])
            .map(|(name, source)| SideTopic {
                name,
                source: source.clone(),
                partitions: self.config.side_topic_partitions,
                fallback_replication: self.config.side_topic_replication,
            })
            .collect();
        ensure_side_topics(&self.config.consumer.bootstrap_servers, &specs)
            .await
            .map_err(|e| ConsumeError::Topics(e.to_string()))?;
        Ok(())
    }

    /// The worker's health, to serve while it runs.
    pub fn health(&self) -> Health {
        Health { shared: self.shared.clone() }
    }

    /// Runs until `shutdown` resolves (or forever after the fuse tripped, not consuming,
    /// until `shutdown`).
    ///
    /// The poll loop runs on a thread of its own (with a single-threaded runtime), as a
    /// Kafka client's consumer thread does, and hands batches to lanes on the caller's
    /// runtime. So the lanes spread over every thread of that runtime (spawned from one of
    /// its own tasks they would queue behind the poll loop on its thread), and busy
    /// handlers never delay a poll (the group's liveness). Dropping the returned future
    /// shuts the worker down as `shutdown` does, in the background.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<RunReport, ConsumeError> {
        self.ensure_side_topics().await?;
        let mut client = self.config.consumer.client_config()?;
        client.set("statistics.interval.ms", self.config.stats_interval.as_millis().to_string());
        let context = RunnerContext { shared: self.shared.clone() };
        let consumer: Arc<StreamConsumer<RunnerContext>> =
            Arc::new(client.create_with_context(context).map_err(ConsumeError::Create)?);
        self.shared.set_consumer(consumer.clone());
        let topics = self.subscriptions();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|source| ConsumeError::Subscribe { topics: topics.clone(), source })?;
        info!(group = %self.config.consumer.group_id, topics = ?topics, "worker consuming");

        let lanes = Lanes::new(self.shared.clone(), self.process.clone(), tokio::runtime::Handle::current());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let name = format!("ltf-poll-{}", self.config.consumer.group_id);
        std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                let report = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(self.poll(&consumer, &lanes, stop_rx)),
                    Err(e) => Err(ConsumeError::PollThread(format!("could not start its runtime: {e}"))),
                };
                let _ = done_tx.send(report);
            })
            .map_err(|e| ConsumeError::PollThread(format!("could not be started: {e}")))?;
        let mut done_rx = std::pin::pin!(done_rx);
        let done = tokio::select! {
            () = shutdown => {
                let _ = stop_tx.send(true);
                done_rx.await
            }
            done = &mut done_rx => done,
        };
        done.unwrap_or_else(|_| Err(ConsumeError::PollThread("panicked".into())))
    }

    /// The poll loop, until `stop` says so (or its sender is gone): fetches, schedules,
    /// stores offsets; then the drain and the final commit.
    async fn poll(
        self,
        consumer: &StreamConsumer<RunnerContext>,
        lanes: &Arc<Lanes>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<RunReport, ConsumeError> {
        let shutdown = stop.wait_for(|stop| *stop);
        tokio::pin!(shutdown);
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight as usize));
        // Held partitions resume once a quarter of the slots are free (at least one).
        let resume_at_free = (self.config.max_in_flight as usize / 4).max(1);
        let tick = Duration::from_secs(1);
        let mut next_positions = Instant::now() + tick;
        let mut names = SharedNames::default();
        // One stream for the whole loop: `recv` makes a stream per message, registering
        // and dropping a waker slot (a lock each) every time.
        let mut messages = consumer.stream();
        loop {
            self.shared.beat();
            lanes.drop_spent();
            self.shared.flush_offsets();
            self.shared.report_in_flight();
            if Instant::now() >= next_positions {
                next_positions = Instant::now() + tick;
                store_idle_positions(consumer, &self.shared);
            }
            if self.shared.is_stopped() {
                // The fuse tripped: stop consuming, stay up (unready) until shutdown.
                if let Ok(tpl) = consumer.assignment() {
                    let _ = consumer.pause(&tpl);
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(tick) => continue,
                }
            }
            // Back-pressure: paused partitions fetch again once enough slots are free.
            if permits.available_permits() >= resume_at_free {
                self.shared.release_held();
            }
            let held = self.shared.any_held();
            let msg = tokio::select! {
                _ = &mut shutdown => break,
                m = messages.next() => match m {
                    Some(m) => m,
                    None => continue,
                },
                // While partitions are held, wake as soon as enough slots are free.
                _ = permits.acquire_many(resume_at_free as u32), if held => continue,
                _ = tokio::time::sleep(tick) => continue,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "fetch failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // The message just fetched, then what else the consumer holds already while
            // slots are free: one batch for the lanes.
            let mut batch = Vec::with_capacity(BATCH);
            let mut next = Some(msg);
            while let Some(msg) = next.take() {
                let tp = (names.of(msg.topic()), msg.partition());
                // Fetched before its partition was paused: read again on resume.
                if !self.shared.is_held(&tp, msg.offset()) {
                    let permit = match permits.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        // Every slot is busy and the batch empty: wait a little for one
                        // (work in flight finishing); when none comes back in time, the
                        // slots are held by parked work.
                        Err(_) if batch.is_empty() => {
                            tokio::time::timeout(tick, permits.clone().acquire_owned()).await.ok().and_then(Result::ok)
                        }
                        Err(_) => None,
                    };
                    let Some(permit) = permit else {
                        // No slot: pause this partition at this message and keep polling.
                        self.shared.hold(&tp, msg.offset());
                        break;
                    };
                    batch.push(self.job(lanes, tp, &msg, permit));
                }
                drop(msg);
                if batch.len() < BATCH && permits.available_permits() > 0 {
                    next = messages.next().now_or_never().flatten().and_then(Result::ok);
                }
            }
            // Their partitions' bookkeeping, for the whole batch at once; a message of a
            // partition held meanwhile is dropped (fetched again on resume).
            let generations = self.shared.start_all(
                batch.iter().map(|(_, j)| (&j.tp, j.incoming.meta.offset, j.incoming.meta.timestamp_ms, j.generation)),
            );
            let batch = batch
                .into_iter()
                .zip(generations)
                .filter_map(|((key, mut job), generation)| {
                    job.generation = generation?;
                    Some((key, job))
                })
                .collect();
            lanes.push_batch(batch);
        }

        let abandoned = drain(&self.shared, self.config.shutdown_deadline).await;
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => warn!(error = %e, "final commit failed"),
        }
        info!(abandoned, "worker stopped");
        Ok(RunReport { abandoned })
    }
}

impl Runner {
    /// A fetched message as a lane's job, with its ordering key (the `ordering-key`
    /// header, else the Kafka key, else the offset). Its generation is the one it was
    /// received in until the batch is started ([`PartitionStates::start_all`]).
    fn job(&self, lanes: &Lanes, tp: state::Tp, msg: &BorrowedMessage<'_>, permit: OwnedSemaphorePermit) -> (LaneKey, Job) {
        let received = self.shared.generation();
        let meta = Meta::in_topic(msg, tp.0.clone());
        let value = Arc::from(msg.payload().unwrap_or_default());
        let ordering = meta.header(ltf_schemas::Headers::ORDERING_KEY).or(meta.key.as_deref());
        let key = lanes.key(&tp, ordering, meta.offset);
        (key, Job { tp, incoming: Incoming { meta: Arc::new(meta), value }, generation: received, permit })
    }
}

/// The names of the topics read, each allocated once: every message's partition and
/// metadata share its topic's name.
#[derive(Debug, Default)]
struct SharedNames(Vec<Arc<str>>);

impl SharedNames {
    fn of(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.iter().find(|t| &***t == name) {
            return known.clone();
        }
        let new: Arc<str> = name.into();
        self.0.push(new.clone());
        new
    }
}

/// Most messages handed to the lanes at once: what one poll found in the consumer's
/// queue without waiting.
const BATCH: usize = 64;

/// Stores the positions of idle partitions past transaction markers (see
/// [`PartitionStates::store_idle_positions`]).
fn store_idle_positions(consumer: &StreamConsumer<RunnerContext>, shared: &PartitionStates) {
    let Ok(tpl) = consumer.position() else { return };
    let positions: Vec<(state::Tp, i64)> = tpl
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some(((e.topic().into(), e.partition()), o)),
            _ => None,
        })
        .collect();
    shared.store_idle_positions(&positions);
}

/// Shutdown: stops fetching and lets in-flight work finish, for at most `deadline`, then
/// stores the offsets of what finished; returns how many messages were still in flight
/// (abandoned: their offsets are not stored, so they are delivered again).
async fn drain(shared: &PartitionStates, deadline: Duration) -> usize {
    shared.stop();
    let deadline = Instant::now() + deadline;
    while shared.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.flush_offsets();
    shared.report_in_flight();
    shared.in_flight()
}
