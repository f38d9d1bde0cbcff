//! Consuming LaTeChforce domain events from Kafka: the worker runtime, and nothing else
//! (the workers themselves are `ltf-workers`).
//!
//! | module | what |
//! |---|---|
//! | [`Handler`], [`Event`], [`HandlerContext`], [`HandlerError`] | the handler API: one function per handler |
//! | [`Router`] | the handlers of one consumer group, by event type |
//! | [`WorkerBuilder`] | assembles a group's [`pipeline::Pipeline`] |
//! | [`pipeline`] | one message: decode → dedup → breaker → retry → handler → dead letter |
//! | [`batch`] | the same for handlers that take batches |
//! | [`runner`] | the consumer group: per-key lanes, offsets, pause and resume, rebalances |
//! | [`middleware`] | retry, circuit breakers, dead letters, the DLQ-rate fuse |
//! | [`metrics`] | the runtime's metric names, labels and catalogue |
//!
//! The orchestration (runner bookkeeping, lanes, pipeline, batch, shutdown) is tested in
//! memory, without a broker or registry: a recording consumer stands in for librdkafka
//! (`PartitionControl`), a recording [`middleware::DeadLetterSink`] for the DLQ, and a
//! codec with remembered writer schemas for the registry (`cargo nextest run -p
//! ltf-consumers --lib`, seconds; `scripts/test` runs it before starting the stack).
//!
//! Invariants: this crate knows no table but `ltf_processed_events` (owned by [`middleware::dedup`]);
//! it depends on `ltf-schemas` and `ltf-kafka` alone of the project's crates, and on no
//! HTTP server, database of the domain, mail or Redis client (`scripts/lib/check-layers`).
//!
//! A worker is a [`Router`] of [`Handler`]s, a [`pipeline::Pipeline`] (decode → dedup →
//! handler with retries and circuit breaking → record processed, or dead-letter) and a
//! [`Runner`] (the consumer group). Guarantees of the runner ([`runner`]): at-least-once
//! (an offset is stored only once its message was handled, skipped as a duplicate or
//! dead-lettered; the stored offset is the lowest unfinished one), order per ordering key
//! with concurrency across keys and partitions bounded by `max_in_flight`, finished
//! offsets committed before a revocation and at shutdown; an event waiting for a
//! dependency holds only its key (fetching pauses only once waiting work holds every
//! in-flight slot, and every pause is resumed, across rebalances too). Guarantees of the
//! pipeline: see [`pipeline`].
//!
//! Guarantees of the dedup store ([`DedupStore`]):
//! * a handler's side effect and its dedup record (consumer group, handler, eventId)
//!   commit in one PostgreSQL transaction ([`DedupStore::begin`]): a redelivered event is
//!   acknowledged without a second side effect, and of two racing deliveries exactly one
//!   applies it; a handler that does not record the event itself has it recorded by
//!   the middleware right after its call succeeded;
//! * a dead-lettered event is never recorded, so a replay handles it again; records are
//!   pruned after the configured retention.
//!
//! Guarantees of the middleware ([`middleware`]):
//! * retry ([`RetryPolicy`], `middleware::retry`): only the handler's own retryable
//!   errors use attempts, at most `max_attempts` calls, one after the other (per-key order
//!   holds through retries), exponential backoff with equal jitter capped at
//!   `max_backoff`; a failure of a dependency never uses an attempt: the event is parked
//!   without limit, or until the worker's `max_park` (the automation worker), past which
//!   it fails with `dependency_unavailable`; a panic is an error of that call (`panic`);
//! * circuit breakers ([`Breakers`]): per dependency, open on a failure rate over a
//!   sliding window with a minimum number of calls, a few probes at once after
//!   `cooldown`, closed by their successes, then a concurrency limit that ramps up; at
//!   most `max_dependencies` kept; exported as a gauge and a transitions counter;
//! * dead letters ([`DeadLetterPublisher`]): to `<event topic>.<group>.dlq` with the
//!   original key, value bytes and headers plus every `dlq-*` header, acknowledged by the
//!   broker before the caller may store the offset;
//! * the DLQ-rate fuse ([`DlqFuse`]): trips when more than `max_dead_letter_share` of
//!   the last `window` events were dead-lettered, and stays tripped until reset.

#![warn(missing_docs)]

pub mod batch;
mod builder;

mod error;
mod error_class;
mod handler;
mod headers;
pub mod metrics;
pub mod middleware;
pub mod pipeline;
mod router;
pub mod runner;

pub use batch::{BatchConfig, BatchHandler, BatchPipeline};
pub use builder::WorkerBuilder;

pub use error::ConsumeError;
pub use error_class::ErrorClass;
pub use handler::{DependencyCall, Event, Handler, HandlerContext, HandlerError, Meta};
pub use headers::MessageHeaders;
pub use middleware::dedup::DedupStore;
pub use middleware::{BreakerConfig, Breakers, CircuitState, DeadLetter, DeadLetterPublisher, DlqFuse, FuseConfig, RetryPolicy};
pub use router::Router;
pub use runner::{Health, Incoming, PartitionPause, Process, RunReport, Runner, WorkerConfig};
