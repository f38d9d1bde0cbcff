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
//! * a failure of a dependency whose circuit is open neither burns retries nor
//!   dead-letters: the lane pauses its partition, probes after the cool-down, and goes
//!   on with the same event when the dependency is back;
//! * when the share of dead-lettered events trips the fuse, the worker stops consuming;
//! * a dead letter that cannot be published is retried until it is, so nothing is
//!   acknowledged that is neither handled nor in the DLQ.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use ltf_schemas::{EventCodec, SchemaError};
use metrics::{counter, histogram};
use tracing::{info_span, warn, Instrument};

use crate::dedup::DedupStore;
use crate::metrics::{labels, outcome, END_TO_END_SECONDS, EVENTS_TOTAL, PROCESSING_SECONDS, RETRIES_TOTAL};
use crate::middleware::dead_letter::UNDECODABLE_HANDLER;
use crate::middleware::{Breakers, DeadLetter, DeadLetterPublisher, DlqFuse, RetryPolicy};
use crate::runner::{Blocker, Incoming, Process};
use crate::{Event, Handler, HandlerContext, HandlerError, Router};

/// The dependency name of the schema registry, for its circuit breaker.
const REGISTRY: &str = "schema-registry";
/// The dependency name of the dedup store's database.
const POSTGRES: &str = "postgres";

/// The pipeline of one consumer group.
#[derive(Debug)]
pub struct Pipeline {
    group: String,
    codec: Arc<EventCodec>,
    router: Router,
    dedup: Option<Arc<DedupStore>>,
    retry: RetryPolicy,
    breakers: Arc<Breakers>,
    fuse: Arc<DlqFuse>,
    dead_letters: DeadLetterPublisher,
}

impl Pipeline {
    /// A pipeline for `group`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        group: impl Into<String>,
        codec: Arc<EventCodec>,
        router: Router,
        dedup: Option<Arc<DedupStore>>,
        retry: RetryPolicy,
        breakers: Arc<Breakers>,
        fuse: Arc<DlqFuse>,
        dead_letters: DeadLetterPublisher,
    ) -> Pipeline {
        Pipeline { group: group.into(), codec, router, dedup, retry, breakers, fuse, dead_letters }
    }

    /// The retry policy's delay before attempt `attempt + 1`.
    fn backoff(&self, attempt: u32) -> Duration {
        self.retry.delay(attempt, &mut rand::rng())
    }

    /// Waits while `dependency`'s circuit is open, with the partition paused, until a
    /// probe may go through.
    async fn wait_for_circuit(&self, dependency: &str, blocker: &Blocker) {
        blocker.block();
        loop {
            let left = self.breakers.wait_until_probe(dependency);
            tokio::time::sleep(left.max(Duration::from_millis(50))).await;
            if self.breakers.try_probe(dependency) {
                return;
            }
        }
    }

    /// Decodes the value; waits out a registry outage.
    async fn decode(&self, msg: &Incoming, blocker: &Blocker) -> Result<Event, SchemaError> {
        let mut attempt = 0;
        loop {
            match self.codec.decode(&msg.value).await {
                Ok(event) => {
                    self.breakers.on_success(REGISTRY);
                    return Ok(Event { event, meta: msg.meta.clone() });
                }
                Err(e) if e.is_retryable() => {
                    attempt += 1;
                    warn!(error = %e, attempt, "schema registry unavailable; the message waits");
                    self.breakers.on_failure(REGISTRY);
                    if self.breakers.is_open(REGISTRY) {
                        self.wait_for_circuit(REGISTRY, blocker).await;
                    } else {
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn is_duplicate(&self, handler: &str, event: &Event, blocker: &Blocker) -> bool {
        let Some(dedup) = &self.dedup else { return false };
        let mut attempt = 0;
        loop {
            match dedup.is_processed(&self.group, handler, event.event_id()).await {
                Ok(done) => {
                    self.breakers.on_success(POSTGRES);
                    return done;
                }
                Err(e) => {
                    attempt += 1;
                    warn!(error = %e, attempt, "dedup store unavailable; the event waits");
                    self.breakers.on_failure(POSTGRES);
                    if self.breakers.is_open(POSTGRES) {
                        self.wait_for_circuit(POSTGRES, blocker).await;
                    } else {
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
            }
        }
    }

    async fn record_processed(&self, handler: &str, event: &Event) -> Result<(), HandlerError> {
        let Some(dedup) = &self.dedup else { return Ok(()) };
        let mut conn = dedup.pool().acquire().await?;
        DedupStore::record(&mut conn, &self.group, handler, event.event_id()).await?;
        Ok(())
    }

    /// Runs one handler on one event to the end.
    async fn handle(&self, handler: &Arc<dyn Handler>, event: &Event, value: &[u8], blocker: &Blocker) {
        let name = handler.name().to_owned();
        let event_type = event.event_type().as_str();
        let count = |outcome: &'static str| {
            counter!(EVENTS_TOTAL, labels::GROUP => self.group.clone(), labels::HANDLER => name.clone(),
                labels::EVENT_TYPE => event_type, labels::OUTCOME => outcome)
            .increment(1);
        };
        if self.is_duplicate(&name, event, blocker).await {
            count(outcome::DUPLICATE);
            return;
        }
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut first_failure = None;
        let mut failed_dependency: Option<String> = None;
        let result = loop {
            attempt += 1;
            let ctx = HandlerContext { group: self.group.clone(), handler: name.clone(), attempt, dedup: self.dedup.clone() };
            let result = match handler.handle(&ctx, event).await {
                Ok(()) => self.record_processed(&name, event).await,
                Err(e) => Err(e),
            };
            let err = match result {
                Ok(()) => break Ok(()),
                Err(e) => e,
            };
            first_failure.get_or_insert_with(Utc::now);
            if let Some(dep) = err.dependency.as_deref() {
                failed_dependency = Some(dep.to_owned());
                self.breakers.on_failure(dep);
                if self.breakers.is_open(dep) {
                    // Not the event's fault: wait for the dependency, then try again
                    // without counting this against the event's attempts.
                    warn!(handler = %name, dependency = dep, "circuit open; pausing the partition");
                    self.wait_for_circuit(dep, blocker).await;
                    attempt = attempt.saturating_sub(1);
                    continue;
                }
            }
            if !self.retry.should_retry(&err, attempt) {
                break Err((err, attempt));
            }
            counter!(RETRIES_TOTAL, labels::GROUP => self.group.clone(), labels::HANDLER => name.clone(),
                labels::CLASS => err.class.clone())
            .increment(1);
            tokio::time::sleep(self.backoff(attempt)).await;
        };
        blocker.unblock();
        histogram!(PROCESSING_SECONDS, labels::GROUP => self.group.clone(), labels::HANDLER => name.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                if let Some(dep) = &failed_dependency {
                    self.breakers.on_success(dep);
                }
                count(if attempt > 1 { outcome::RETRIED } else { outcome::SUCCESS });
                self.fuse.record(false);
            }
            Err((err, attempts)) => {
                let first = first_failure.unwrap_or_else(Utc::now);
                let dl = DeadLetter {
                    original: event.meta.clone(),
                    value: value.to_vec(),
                    error_class: err.class.clone(),
                    error_message: err.message.clone(),
                    attempts,
                    group: self.group.clone(),
                    handler: name.clone(),
                    first_failure: first,
                    last_failure: Utc::now(),
                };
                self.dead_letter(dl).await;
                count(outcome::DEAD_LETTERED);
                if self.fuse.record(true) {
                    blocker.stop_worker();
                }
            }
        }
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
    async fn process(&self, msg: &Incoming, blocker: &Blocker) {
        let event = match self.decode(msg, blocker).await {
            Ok(e) => e,
            Err(e) => {
                let now = Utc::now();
                let dl = DeadLetter {
                    original: msg.meta.clone(),
                    value: msg.value.clone(),
                    error_class: decode_class(&e).to_owned(),
                    error_message: e.to_string(),
                    attempts: 0,
                    group: self.group.clone(),
                    handler: UNDECODABLE_HANDLER.to_owned(),
                    first_failure: now,
                    last_failure: now,
                };
                self.dead_letter(dl).await;
                counter!(EVENTS_TOTAL, labels::GROUP => self.group.clone(), labels::HANDLER => "-",
                    labels::EVENT_TYPE => "unknown", labels::OUTCOME => outcome::DEAD_LETTERED)
                .increment(1);
                if self.fuse.record(true) {
                    blocker.stop_worker();
                }
                return;
            }
        };
        let span = info_span!("handle_event",
            group = %self.group,
            event_id = %event.event_id(),
            event_type = event.event_type().as_str(),
            aggregate_id = %event.event.aggregate_id(),
            traceparent = event.meta.header(ltf_schemas::Headers::TRACEPARENT).unwrap_or(""),
        );
        async {
            for handler in self.router.handlers_for(event.event_type()) {
                self.handle(&handler, &event, &msg.value, blocker).await;
            }
        }
        .instrument(span)
        .await;
        let age_ms = (Utc::now() - event.event.envelope.occurred_on).num_milliseconds();
        histogram!(END_TO_END_SECONDS, labels::GROUP => self.group.clone(), labels::EVENT_TYPE => event.event_type().as_str())
            .record((age_ms.max(0) as f64) / 1000.0);
    }
}

/// The `dlq-error-class` of a value that does not decode.
fn decode_class(e: &SchemaError) -> &'static str {
    match e {
        SchemaError::NotConfluentFramed { .. } => "not_confluent_framed",
        SchemaError::UnknownSchemaId { .. } => "unknown_schema_id",
        SchemaError::BadAvro { .. } => "bad_avro",
        SchemaError::UnknownEventType { .. } => "unknown_event_type",
        SchemaError::UnsupportedVersion { .. } => "unsupported_version",
        SchemaError::Malformed { .. } | SchemaError::InvalidEvent { .. } => "malformed_event",
        _ => "decode_error",
    }
}
