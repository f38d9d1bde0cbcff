//! The processing pipeline of one message, as the runner calls it: decode → for each
//! handler: dedup → handler with retries and circuit breaking → record processed, or
//! dead-letter. Each concern is a middleware module of its own; this file only orders
//! them.
//!
//! Guarantees:
//! * a value that does not decode (not Confluent-framed, unknown schema id, bad Avro,
//!   unknown type, unsupported version) is dead-lettered byte for byte and the partition
//!   moves on; a registry that is down is an outage, not a poison message: the message
//!   waits;
//! * an event already recorded for a handler in the dedup store is acknowledged without
//!   running the handler; after success the event is recorded (in the handler's own
//!   transaction when it used [`DedupStore::begin`], else right after);
//! * only retryable errors are retried, with backoff; a permanent error or exhausted
//!   retries dead-letter the event, which is then *not* recorded as processed;
//! * a handler that panics fails that call (`panic`): retried, then dead-lettered like
//!   any handler error; the panic never unwinds through the lane, so the key goes on and
//!   the permit comes back;
//! * a failure of a dependency (the registry, the dedup store, or one a handler names)
//!   neither uses attempts nor dead-letters: the event is parked (its lane waits, other
//!   keys of the partition go on), called again after the backoff or the breaker's
//!   cool-down, and goes on when the dependency is back; only a worker with `max_park`
//!   (the automation worker) gives up, after that long, with `dependency_unavailable`;
//! * when the share of dead-lettered events trips the fuse, the worker stops consuming;
//! * a dead letter that cannot be published is retried until it is, so nothing is
//!   acknowledged that is neither handled nor in the DLQ.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use ltf_schemas::{EventCodec, EventType, SchemaError};
use tracing::{debug, info_span, warn, Instrument};

use crate::handler::guarded;
use crate::metrics::{outcome, GroupMetrics};
use crate::middleware::dead_letter::UNDECODABLE_HANDLER;
use crate::middleware::dedup::{self, DedupStore};
use crate::middleware::dependency::wait_out;
use crate::middleware::retry::{self, Attempted, Scope};
use crate::middleware::{Breakers, DeadLetter, DeadLetterSink, DlqFuse, RetryPolicy};
use crate::runner::{Incoming, PartitionPause, Process};
use crate::{ErrorClass, Event, Handler, HandlerContext, HandlerError, Router};

/// The dependency name of the schema registry, for its circuit breaker.
const REGISTRY: &str = "schema-registry";
/// The dependency name of the dedup store's database.
const POSTGRES: &str = "postgres";

/// The pipeline of one consumer group.
#[derive(Debug)]
pub struct Pipeline {
    group: Arc<str>,
    codec: Arc<EventCodec>,
    router: Router,
    dedup: Option<Arc<DedupStore>>,
    retry: RetryPolicy,
    breakers: Arc<Breakers>,
    fuse: Arc<DlqFuse>,
    dead_letters: Arc<dyn DeadLetterSink>,
    /// How long an event may stay parked on a failed dependency (`None`: without limit).
    pub(crate) max_park: Option<Duration>,
    metrics: GroupMetrics,
}

impl Pipeline {
    /// A pipeline for `group` ([`crate::WorkerBuilder`] assembles one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        group: impl Into<String>,
        codec: Arc<EventCodec>,
        router: Router,
        dedup: Option<Arc<DedupStore>>,
        retry: RetryPolicy,
        breakers: Arc<Breakers>,
        fuse: Arc<DlqFuse>,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Pipeline {
        let group: String = group.into();
        let metrics = GroupMetrics::new(&group);
        Pipeline { group: group.into(), codec, router, dedup, retry, breakers, fuse, dead_letters, max_park: None, metrics }
    }

    /// The retry policy's delay before attempt `attempt + 1`.
    fn backoff(&self, attempt: u32) -> Duration {
        self.retry.delay(attempt, &mut rand::rng())
    }

    /// Decodes the value; waits out a registry outage. The first try goes to the codec
    /// alone: nearly always the writer schema is cached and no registry call is made, so
    /// its success is not the registry's (and costs no lock of the breakers). Only a
    /// failure the registry caused enters the wait, whose calls the breaker counts.
    async fn decode(&self, msg: &Incoming) -> Result<Event, SchemaError> {
        let event = match self.codec.decode_shared(&msg.value).await {
            Ok(event) => event,
            Err(e) if e.is_retryable() => {
                let decode = || self.codec.decode_shared(&msg.value);
                wait_out(&self.breakers, &self.retry, REGISTRY, "schema registry", decode, SchemaError::is_retryable).await?
            }
            Err(e) => return Err(e),
        };
        Ok(Event { event, meta: msg.meta.clone() })
    }

    /// Whether `handler` handled the event already; waits out a dedup-store outage.
    pub(crate) async fn is_duplicate(&self, handler: &str, event: &Event) -> bool {
        let Some(dedup) = &self.dedup else { return false };
        let check = || dedup.is_processed(&self.group, handler, event.event_id());
        let outage = |_: &sqlx::Error| true;
        wait_out(&self.breakers, &self.retry, POSTGRES, "dedup store", check, outage).await.unwrap_or(false)
    }

    /// Runs one handler on one event to the end.
    async fn handle(&self, handler: &Arc<dyn Handler>, name: &Arc<str>, event: &Event, value: &[u8], blocker: &PartitionPause) {
        if self.is_duplicate(name, event).await {
            self.count(name, Some(event.event_type()), outcome::DUPLICATE);
            return;
        }
        let attempted = self
            .attempts(name, handler.dependencies(), |ctx| {
                let handler = handler.clone();
                async move { dedup::record_after(&ctx, &[event], guarded(handler.handle(&ctx, event))).await }
            })
            .await;
        self.conclude(name, &[(event, value)], attempted, blocker).await;
    }

    /// Counts one event's outcome.
    pub(crate) fn count(&self, handler: &str, event_type: Option<EventType>, outcome: &'static str) {
        self.metrics.count(handler, event_type, outcome, 1);
    }

    /// The retry middleware around `call` (one handler call per attempt) of a handler
    /// that declared `dependencies`.
    pub(crate) async fn attempts<F, Fut>(&self, name: &Arc<str>, dependencies: &[&'static str], call: F) -> Attempted
    where
        F: FnMut(HandlerContext) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        let scope = Scope {
            group: &self.group,
            handler: name,
            policy: &self.retry,
            breakers: &self.breakers,
            dedup: self.dedup.as_ref(),
            dependencies,
            max_park: self.max_park,
            metrics: &self.metrics,
        };
        retry::attempts(&scope, call).await
    }

    /// Counts the outcome of `events` (one call, or one batch) and dead-letters them
    /// when it failed.
    pub(crate) async fn conclude(&self, name: &str, events: &[(&Event, &[u8])], attempted: Attempted, blocker: &PartitionPause) {
        match attempted.result {
            Ok(()) => {
                let outcome = if attempted.attempts > 1 { outcome::RETRIED } else { outcome::SUCCESS };
                for (event, _) in events {
                    self.count(name, Some(event.event_type()), outcome);
                    self.fuse.record(false);
                }
            }
            Err(err) => {
                for (event, value) in events {
                    let dl = DeadLetter {
                        original: (*event.meta).clone(),
                        value: value.to_vec(),
                        error_class: err.class,
                        error_message: err.message.clone(),
                        attempts: attempted.attempts,
                        group: self.group.to_string(),
                        handler: name.to_owned(),
                        first_failure: attempted.first_failure.unwrap_or_else(Utc::now),
                        last_failure: Utc::now(),
                    };
                    self.dead_letter(dl).await;
                    self.count(name, Some(event.event_type()), outcome::DEAD_LETTERED);
                    if self.fuse.record(true) {
                        blocker.stop_worker();
                    }
                }
            }
        }
    }

    /// The decoded event, or `None` once a value that does not decode was dead-lettered.
    pub(crate) async fn decode_or_dead_letter(&self, msg: &Incoming, blocker: &PartitionPause) -> Option<Event> {
        let e = match self.decode(msg).await {
            Ok(event) => return Some(event),
            Err(e) => e,
        };
        let now = Utc::now();
        let dl = DeadLetter {
            original: (*msg.meta).clone(),
            value: msg.value.to_vec(),
            error_class: ErrorClass::of_decode(&e),
            error_message: e.to_string(),
            attempts: 0,
            group: self.group.to_string(),
            handler: UNDECODABLE_HANDLER.to_owned(),
            first_failure: now,
            last_failure: now,
        };
        self.dead_letter(dl).await;
        self.count(UNDECODABLE_HANDLER, None, outcome::DEAD_LETTERED);
        if self.fuse.record(true) {
            blocker.stop_worker();
        }
        None
    }

    /// Publishes a dead letter, retrying until Kafka takes it.
    async fn dead_letter(&self, dl: DeadLetter) {
        let mut attempt = 0;
        while let Err(e) = self.dead_letters.publish(&dl).await {
            attempt += 1;
            warn!(error = %e, attempt, "publishing a dead letter failed; retrying");
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }
}

#[async_trait]
impl Process for Pipeline {
    async fn process(&self, msg: Incoming, blocker: &PartitionPause) {
        let msg = &msg;
        let Some(event) = self.decode_or_dead_letter(msg, blocker).await else { return };
        let span = info_span!("handle_event",
            group = %self.group,
            event_id = %event.event_id(),
            event_type = event.event_type().as_str(),
            aggregate_id = %event.event.aggregate_id(),
            traceparent = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if !span.is_disabled() {
            // Only a span some layer records needs the trace context.
            let traceparent = event.meta.header(ltf_schemas::Headers::TRACEPARENT);
            span.record("traceparent", traceparent.unwrap_or(""));
            ltf_kafka::trace::adopt(&span, traceparent);
        }
        async {
            let mut handlers = 0;
            for (handler, name) in self.router.named().filter(|(h, _)| h.can_handle(event.event_type())) {
                self.handle(handler, name, &event, &msg.value, blocker).await;
                handlers += 1;
            }
            debug!(handlers, "event handled");
        }
        .instrument(span)
        .await;
        // The clock read as the system's, without chrono's calendar conversion of `Utc::now`.
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let age_ms = now_ms - event.event.envelope.occurred_on.timestamp_millis();
        self.metrics.end_to_end(event.event_type(), (age_ms.max(0) as f64) / 1000.0);
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
