//! The idempotent [`EventPublisher`] and its settings ([`PublisherConfig`]).

mod config;
mod transaction;

pub use config::PublisherConfig;
pub use transaction::TransactionOutcome;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ltf_schemas::codec::each_header;
use ltf_schemas::{DomainEvent, EncodedEvent, EventCodec, Headers};
use metrics::counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tracing::{debug, warn};

use crate::metrics::PRODUCER_REBUILDS_TOTAL;
use crate::PublishError;

/// Where the broker stored an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The partition the event was written to.
    pub partition: i32,
    /// The event's offset in that partition.
    pub offset: i64,
}

/// The idempotent event producer. Cheap to clone; clones share one librdkafka producer.
///
/// After a fatal error of librdkafka's idempotent producer (it stops producing for good:
/// a sequence it cannot repair, a fenced or unknown producer id), the next publish
/// replaces the producer with a new one of the same settings, so callers that retry
/// (the relay, dead-lettering) recover instead of failing forever.
#[derive(Clone)]
pub struct EventPublisher {
    producer: Arc<RwLock<FutureProducer>>,
    config: PublisherConfig,
    codec: Arc<EventCodec>,
    /// Per topic: its `max.message.bytes` and when it was read.
    topic_limits: Arc<Mutex<HashMap<String, TopicLimit>>>,
    /// A transactional publisher: the producer whose transactions are initialized (its
    /// native handle's address; 0 for none yet). See [`EventPublisher::transactional`].
    txn_ready: Arc<Mutex<usize>>,
}

/// A topic's `max.message.bytes` (`None`: Kafka did not say) and when it was read.
type TopicLimit = (Option<usize>, Instant);

/// How long a topic's `max.message.bytes` is trusted before it is read again.
const TOPIC_LIMIT_TTL: Duration = Duration::from_secs(60);

/// Bytes reserved per event of a batch for its framed value (a RecordUpdated of ten field
/// values before and after is ~800 bytes).
const VALUE_CAPACITY: usize = 1024;

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").field("codec", &self.codec).finish_non_exhaustive()
    }
}

fn event_id_of(msg: &EncodedEvent) -> String {
    msg.header(Headers::EVENT_ID).unwrap_or("<none>").to_owned()
}

impl EventPublisher {
    /// An idempotent producer with `config` (validated first: the error names the bad key)
    /// that encodes events with `codec`.
    pub fn new(config: &PublisherConfig, codec: Arc<EventCodec>) -> Result<EventPublisher, PublishError> {
        let producer: FutureProducer = config.client_config()?.create().map_err(PublishError::Create)?;
        Ok(EventPublisher {
            producer: Arc::new(RwLock::new(producer)),
            config: config.clone(),
            codec,
            topic_limits: Arc::default(),
            txn_ready: Arc::default(),
        })
    }

    /// The largest message `topic` takes from this producer: min(the producer's
    /// `message.max.bytes`, the topic's `max.message.bytes`, read from Kafka at most once a
    /// minute and again after [`forget_limit`](Self::forget_limit)). Kafka not answering
    /// leaves the producer's limit.
    pub async fn message_limit(&self, topic: &str) -> usize {
        let producer_limit = self
            .config
            .extra
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(ltf_schemas::codec::DEFAULT_MAX_MESSAGE_BYTES);
        let cached = self.topic_limits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(topic).copied();
        let topic_limit = match cached {
            Some((limit, read)) if read.elapsed() < TOPIC_LIMIT_TTL => limit,
            _ => {
                let limit = crate::topics::max_message_bytes(&self.config.bootstrap_servers, &[topic.to_owned()])
                    .await
                    .unwrap_or_else(|e| {
                        debug!(topic, error = %e, "reading the topic's max.message.bytes failed");
                        None
                    });
                self.topic_limits
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(topic.to_owned(), (limit, Instant::now()));
                limit
            }
        };
        topic_limit.map_or(producer_limit, |t| t.min(producer_limit))
    }

    /// Forgets what [`message_limit`](Self::message_limit) read of `topic` (Kafka refused a
    /// message as too large: the topic's setting may have changed).
    pub fn forget_limit(&self, topic: &str) {
        self.topic_limits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(topic);
    }

    /// The current librdkafka producer.
    fn producer(&self) -> FutureProducer {
        self.producer.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces `failed` (a producer that refused a message with a fatal error) with a new
    /// one of the same settings, unless another caller replaced it already.
    fn replace(&self, failed: &FutureProducer) -> Result<(), PublishError> {
        self.rebuild_if(failed, |p| {
            let (code, reason) = p.client().fatal_error()?;
            Some(format!("the producer raised a fatal error ({code}: {reason})"))
        })
    }

    /// Replaces `failed` with a new producer of the same settings when it is still the
    /// current one and `why` gives a reason (logged).
    fn rebuild_if(
        &self,
        failed: &FutureProducer,
        why: impl FnOnce(&FutureProducer) -> Option<String>,
    ) -> Result<(), PublishError> {
        let mut slot = self.producer.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.client().native_ptr() != failed.client().native_ptr() {
            return Ok(());
        }
        if let Some(reason) = why(&slot) {
            warn!(%reason, "replacing the producer with a new one");
            counter!(PRODUCER_REBUILDS_TOTAL).increment(1);
            *slot = self.config.client_config()?.create().map_err(PublishError::Create)?;
        }
        Ok(())
    }

    /// The codec events are encoded with.
    pub fn codec(&self) -> &Arc<EventCodec> {
        &self.codec
    }

    /// Encodes `event` for its topic.
    pub async fn encode(&self, event: &DomainEvent) -> Result<EncodedEvent, PublishError> {
        self.codec.encode(event).await.map_err(|source| self.encode_error(event, source))
    }

    /// The error of an event that could not be encoded.
    fn encode_error(&self, event: &DomainEvent, source: ltf_schemas::SchemaError) -> PublishError {
        PublishError::Encode {
            topic: event.topic(self.codec.topics()),
            event_id: event.event_id().to_string(),
            source: Box::new(source),
        }
    }

    /// Publishes one event; resolves once the broker acknowledged it.
    pub async fn publish(&self, event: &DomainEvent) -> Result<Delivery, PublishError> {
        let msg = self.encode(event).await?;
        self.publish_encoded(&msg).await
    }

    /// Publishes many events: all are encoded and enqueued before any acknowledgement is
    /// awaited. Fails with the first error, after every send has ended; an event that does
    /// not encode fails the batch before anything is sent.
    ///
    /// The values are written into one buffer and the headers handed to librdkafka from
    /// borrowed text ([`each_header`]): no `EncodedEvent` per event.
    pub async fn publish_batch(&self, events: &[DomainEvent]) -> Result<Vec<Delivery>, PublishError> {
        let mut values = Vec::with_capacity(events.len() * VALUE_CAPACITY);
        let mut encoded = Vec::with_capacity(events.len());
        for e in events {
            let start = values.len();
            let topic = self.codec.encode_value_into(e, &mut values).await.map_err(|source| self.encode_error(e, source))?;
            encoded.push((topic, start..values.len()));
        }
        let mut pending = Vec::with_capacity(events.len());
        for (e, (topic, value)) in events.iter().zip(&encoded) {
            let mut headers = OwnedHeaders::new_with_capacity(7);
            each_header(e, |key, value| headers = std::mem::take(&mut headers).insert(Header { key, value: Some(value) }));
            let event_id = || e.event_id().to_string();
            pending.push(self.send(topic, Some(e.aggregate_id()), &values[value.clone()], headers, event_id).await);
        }
        let mut deliveries = Vec::with_capacity(events.len());
        let mut failed = None;
        for ((e, (topic, _)), p) in events.iter().zip(&encoded).zip(pending) {
            match awaited(p, topic, || e.event_id().to_string()).await {
                Ok(d) => deliveries.push(d),
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        failed.map_or(Ok(deliveries), Err)
    }

    /// Publishes an already-encoded value with its key and headers (outbox relay,
    /// dead-lettering, replay).
    pub async fn publish_encoded(&self, msg: &EncodedEvent) -> Result<Delivery, PublishError> {
        let fut = self.enqueue(msg).await?;
        delivered(&msg.topic, || event_id_of(msg), fut).await
    }

    /// Publishes an already-encoded value without a Kafka key (`msg.key` is ignored): for
    /// copies of keyless messages (dead letters of foreign or poison messages), which
    /// must stay keyless rather than gain an empty key.
    pub async fn publish_encoded_without_key(&self, msg: &EncodedEvent) -> Result<Delivery, PublishError> {
        let fut = self.enqueue_as(msg, false).await?;
        delivered(&msg.topic, || event_id_of(msg), fut).await
    }

    /// Publishes already-encoded values; one result per message, in order.
    pub async fn publish_encoded_batch(&self, msgs: &[EncodedEvent]) -> Vec<Result<Delivery, PublishError>> {
        let mut pending = Vec::with_capacity(msgs.len());
        for m in msgs {
            pending.push(self.enqueue(m).await);
        }
        let mut results = Vec::with_capacity(msgs.len());
        for (m, p) in msgs.iter().zip(pending) {
            results.push(awaited(p, &m.topic, || event_id_of(m)).await);
        }
        results
    }

    /// Hands a message to librdkafka, waiting (without blocking the runtime) while its
    /// queue is full.
    async fn enqueue(&self, msg: &EncodedEvent) -> Result<DeliveryFuture, PublishError> {
        self.enqueue_as(msg, true).await
    }

    /// [`enqueue`](Self::enqueue), with `msg.key` as the Kafka key or without a key.
    async fn enqueue_as(&self, msg: &EncodedEvent, keyed: bool) -> Result<DeliveryFuture, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len());
        for (k, v) in &msg.headers {
            headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let key = keyed.then_some(msg.key.as_str());
        self.send(&msg.topic, key, &msg.value, headers, || event_id_of(msg)).await
    }

    /// Hands one message to librdkafka (which copies it), waiting (without blocking the
    /// runtime) while its queue is full; `event_id` names the event in an error.
    async fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        value: &[u8],
        headers: OwnedHeaders,
        event_id: impl Fn() -> String,
    ) -> Result<DeliveryFuture, PublishError> {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).payload(value).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        let mut backoff = Duration::from_micros(200);
        let mut replaced = false;
        loop {
            // A producer that raised a fatal error refuses every message with `Fatal`; only
            // then is it checked and replaced, so the common path costs nothing.
            let producer = self.producer();
            match producer.send_result(record) {
                Ok(fut) => return Ok(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::Fatal), r)) if !replaced => {
                    self.replace(&producer)?;
                    replaced = true;
                    record = r;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    debug!(topic, "producer queue full; waiting");
                    record = r;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
                Err((source, _)) => return Err(PublishError::Kafka { topic: topic.to_owned(), event_id: event_id(), source }),
            }
        }
    }

    /// Waits until every queued message was delivered or failed.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.producer().flush(timeout).map_err(|source| PublishError::Kafka { topic: "*".into(), event_id: "*".into(), source })
    }
}

async fn delivered(topic: &str, event_id: impl FnOnce() -> String, fut: DeliveryFuture) -> Result<Delivery, PublishError> {
    let err = |source| PublishError::Kafka { topic: topic.to_owned(), event_id: event_id(), source };
    match fut.await {
        Ok(Ok(d)) => Ok(Delivery { partition: d.partition, offset: d.offset }),
        Ok(Err((e, _))) => Err(err(e)),
        Err(_canceled) => Err(err(KafkaError::Canceled)),
    }
}

/// The delivery of a message that was enqueued (or the error that kept it from the
/// queue). The deliveries of a batch are awaited one after another, in order: every
/// message is queued already, so waiting on one holds none of the others back, and no task
/// is made per message (as a `join_all` would).
async fn awaited(
    enqueued: Result<DeliveryFuture, PublishError>,
    topic: &str,
    event_id: impl FnOnce() -> String,
) -> Result<Delivery, PublishError> {
    delivered(topic, event_id, enqueued?).await
}

#[cfg(test)]
mod tests {
    use ltf_schemas::TopicNames;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    fn fatal(p: &EventPublisher) -> Option<(RDKafkaErrorCode, String)> {
        p.producer.read().expect("producer").client().fatal_error()
    }

    /// librdkafka's mock cluster (in process) injects the broker errors.
    #[tokio::test]
    async fn a_producer_that_raised_a_fatal_error_is_replaced_and_publishing_goes_on() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("t", 1, 1).expect("topic");
        let codec = Arc::new(EventCodec::new("http://127.0.0.1:9", TopicNames::default()).expect("codec"));
        let mut config = PublisherConfig::with_bootstrap(mock.bootstrap_servers());
        config.message_timeout_ms = 5000;
        let p = EventPublisher::new(&config, codec).expect("publisher");
        let msg = EncodedEvent { topic: "t".into(), key: "k".into(), value: b"v".to_vec(), headers: Vec::new() };
        p.publish_encoded(&msg).await.expect("published");

        mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER; 4]);
        assert!(p.publish_encoded(&msg).await.is_err(), "the injected error fails the message");
        assert!(fatal(&p).is_some(), "and the idempotent producer raised a fatal error");
        mock.clear_request_errors(RDKafkaApiKey::Produce);

        let d = p.publish_encoded(&msg).await.expect("published through a new producer");
        assert!(d.offset >= 1);
        assert_eq!(fatal(&p), None, "the producer was replaced");
    }
}
