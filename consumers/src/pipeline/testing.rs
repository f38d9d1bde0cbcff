//! The pipeline without a broker or a registry, for in-memory tests: scripted handlers,
//! a codec that knows its writer schemas, and a recording dead-letter sink in place of
//! Kafka.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use ltf_kafka::PublishError;
use ltf_schemas::codec::{encode_body, frame};
use ltf_schemas::{catalog, examples, DomainEvent, EventCodec, TopicNames};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::Pipeline;
use crate::middleware::{BreakerConfig, FuseConfig};
use crate::middleware::{Breakers, DeadLetter, DeadLetterSink, DlqFuse, RetryPolicy};
use crate::runner::Incoming;
use crate::{ErrorClass, Meta};
use crate::{Event, Handler, HandlerContext, HandlerError, Router};

/// The schema id the test codec knows every sample's schema under, per sample.
pub(crate) fn schema_id(i: usize) -> u32 {
    100 + i as u32
}

pub(crate) fn codec() -> Arc<EventCodec> {
    // Nothing listens on port 9: any registry call would fail, so decoding must come
    // from the remembered writer schemas.
    let codec = EventCodec::new("http://127.0.0.1:9", TopicNames::default()).expect("codec");
    for (i, e) in examples::samples().iter().enumerate() {
        codec.remember_writer(schema_id(i), catalog::schema_def(e.event_type(), e.envelope.version).expect("schema"));
    }
    Arc::new(codec)
}

/// `event` as the runner hands it over, at `offset`, keyed by its aggregate id (its
/// writer schema is that of the sample of its type and version).
pub(crate) fn incoming_of(event: &DomainEvent, offset: i64) -> Incoming {
    let i = examples::samples()
        .iter()
        .position(|s| s.event_type() == event.event_type() && s.envelope.version == event.envelope.version)
        .expect("a sample of the event's type and version");
    let value = frame(schema_id(i), &encode_body(event).expect("encode"));
    let meta = Meta {
        topic: "latechforce.table.events".into(),
        partition: 0,
        offset,
        key: Some(event.aggregate_id().to_owned()),
        timestamp_ms: Some(1),
        headers: vec![("event-id", event.envelope.event_id.to_string())].into(),
    };
    Incoming { meta: meta.into(), value: value.into() }
}

/// Sample `i` and the message of it at `offset`.
pub(crate) fn incoming(i: usize, offset: i64) -> (DomainEvent, Incoming) {
    let event = examples::samples().swap_remove(i);
    let msg = incoming_of(&event, offset);
    (event, msg)
}

/// A handler that answers each call with the next scripted result (then `Ok`).
#[derive(Debug)]
pub(crate) struct Scripted {
    name: &'static str,
    results: Mutex<VecDeque<Result<(), HandlerError>>>,
    calls: AtomicU32,
    /// The attempt number of each call.
    pub(crate) attempts: Mutex<Vec<u32>>,
}

impl Scripted {
    pub(crate) fn new(name: &'static str, results: impl IntoIterator<Item = Result<(), HandlerError>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            name,
            results: Mutex::new(results.into_iter().collect()),
            calls: AtomicU32::new(0),
            attempts: Mutex::default(),
        })
    }
    pub(crate) fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Handler for Arc<Scripted> {
    fn name(&self) -> &str {
        self.name
    }
    fn can_handle(&self, _: ltf_schemas::EventType) -> bool {
        true
    }
    async fn handle(&self, ctx: &HandlerContext, _: &Event) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.attempts.lock().expect("attempts").push(ctx.attempt);
        self.results.lock().expect("script").pop_front().unwrap_or(Ok(()))
    }
}

/// A dead-letter sink that refuses the first `refuse` letters, then keeps them.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) refuse: AtomicU32,
    pub(crate) refused: AtomicU32,
    pub(crate) letters: Mutex<Vec<DeadLetter>>,
}

impl Sink {
    pub(crate) fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().expect("sink").clone()
    }
}

#[async_trait]
impl DeadLetterSink for Sink {
    async fn publish(&self, dl: &DeadLetter) -> Result<(), PublishError> {
        if self.refuse.load(Ordering::SeqCst) > self.refused.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let source = KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure);
            return Err(PublishError::Kafka { topic: dl.topic(), event_id: "-".into(), source });
        }
        self.letters.lock().expect("sink").push(dl.clone());
        Ok(())
    }
}

pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        multiplier: 2.0,
    }
}

pub(crate) fn pipeline(handlers: &[Arc<Scripted>], sink: Arc<Sink>, fuse: FuseConfig) -> Pipeline {
    let router = handlers.iter().fold(Router::new(), |r, h| r.register(h.clone()));
    let breakers = Arc::new(Breakers::new(
        "g",
        BreakerConfig { min_calls: 100, cooldown: Duration::from_millis(5), ..BreakerConfig::default() },
    ));
    Pipeline::new("g", codec(), router, None, fast_retry(), breakers, Arc::new(DlqFuse::new("g", fuse)), sink)
}

pub(crate) fn timeout() -> HandlerError {
    HandlerError::retryable(ErrorClass::Timeout, "took too long")
}
