//! `ltf bench produce --producer threaded`: the same events, codec and producer settings as
//! the default side (`EventPublisher::publish_batch`, a `FutureProducer` with one
//! `DeliveryFuture` per event), published instead through a `ThreadedProducer` whose
//! delivery callback only counts successes and failures.
//!
//! With `reuse` (the default) each task encodes into buffers of its own, reused from event
//! to event: the framed value is written into one `Vec<u8>` cleared per event (the Avro body
//! still comes from `ltf_schemas::codec::encode_body`, whose buffer is the one allocation
//! left: the schemas crate has no encoder into a caller's buffer), the header values are
//! borrowed from the event or formatted into one reused scratch buffer (librdkafka copies
//! each header as it is added), and the topic, key and schema id are looked up once per
//! task. `BaseRecord` borrows all of it, so the copy into librdkafka is the only one.
//! Without `reuse`, every event goes through `EventCodec::encode` (an `EncodedEvent` of
//! owned Strings and a framed `Vec`) and its headers into `OwnedHeaders` exactly as the
//! publisher does, so the producer type and the buffers are measured apart.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use futures::{StreamExt, TryStreamExt};
use ltf_kafka::PublisherConfig;
use ltf_schemas::catalog::schema_def;
use ltf_schemas::codec::{encode_body, MAGIC_BYTE, MESSAGE_OVERHEAD_BYTES};
use ltf_schemas::contract::CONTENT_TYPE;
use ltf_schemas::{DomainEvent, EventCodec, Headers};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

/// The framing of each header (two length varints), as `EncodedEvent::message_bytes`
/// counts it.
const HEADER_OVERHEAD_BYTES: usize = 8;

/// Counts the delivery reports; keeps the first failure's text.
#[derive(Default)]
struct Counting {
    delivered: AtomicUsize,
    failed: AtomicUsize,
    first_failure: Mutex<Option<String>>,
}

impl Counting {
    /// Reports received so far (delivered or failed).
    fn reported(&self) -> usize {
        self.delivered.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire)
    }
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Release);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Release);
                let mut first = self.first_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

type Threaded = ThreadedProducer<Counting>;

/// What a threaded run did.
pub struct Outcome {
    /// Events acknowledged by the broker (equal to the events sent, or the run failed).
    pub delivered: usize,
    /// Seconds from the first encode to the last delivery report.
    pub seconds: f64,
    /// CPU seconds of the process (every thread) in that time; NaN when unknown.
    pub cpu_seconds: f64,
}

/// Publishes `chunks` (one tokio task per chunk, `concurrency` at once, as the future side)
/// through a `ThreadedProducer` made from `config.client_config()` (the publisher's own
/// librdkafka settings: acks=all, idempotence, compression, linger). At most `max_in_flight`
/// events are enqueued and not yet reported (0: only librdkafka's queue bounds them).
/// Stops the clock after every delivery was reported, and fails unless every event was
/// delivered.
pub async fn run(
    config: &PublisherConfig,
    codec: Arc<EventCodec>,
    chunks: Vec<Vec<DomainEvent>>,
    reuse: bool,
    concurrency: usize,
    max_in_flight: usize,
) -> Result<Outcome> {
    let events: usize = chunks.iter().map(Vec::len).sum();
    let producer: Arc<Threaded> =
        Arc::new(config.client_config()?.create_with_context(Counting::default()).context("creating the threaded producer")?);
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let cpu_started = process_cpu_seconds();
    futures::stream::iter(chunks)
        .map(|chunk| {
            let (producer, codec, sent) = (producer.clone(), codec.clone(), sent.clone());
            async move {
                tokio::spawn(async move {
                    let window = Window { producer: &producer, sent: &sent, max: max_in_flight };
                    if reuse {
                        publish_reused(&producer, &codec, &chunk, &window).await
                    } else {
                        publish_owned(&producer, &codec, &chunk, &window).await
                    }
                })
                .await?
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await?;
    let flusher = producer.clone();
    tokio::task::spawn_blocking(move || flusher.flush(Duration::from_secs(120))).await?.context("flushing the producer")?;
    // flush returns once librdkafka holds no message; the last reports may still be on
    // their way through the polling thread's callback.
    let deadline = Instant::now() + Duration::from_secs(10);
    while producer.context().reported() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds().zip(cpu_started).map_or(f64::NAN, |(end, start)| end - start);
    let ctx = producer.context();
    let (delivered, failed) = (ctx.delivered.load(Ordering::Acquire), ctx.failed.load(Ordering::Acquire));
    let first = ctx.first_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    ensure!(
        delivered == events && failed == 0,
        "threaded producer: {delivered} of {events} events delivered, {failed} failed, {} enqueued{}",
        sent.load(Ordering::Acquire),
        first.map(|f| format!("; first failure: {f}")).unwrap_or_default()
    );
    Ok(Outcome { delivered, seconds, cpu_seconds })
}

/// The bound on events enqueued and not yet reported.
struct Window<'a> {
    producer: &'a Threaded,
    sent: &'a AtomicUsize,
    max: usize,
}

impl Window<'_> {
    /// Waits (without blocking the runtime) until one more event fits.
    async fn admit(&self) {
        if self.max == 0 {
            return;
        }
        let mut backoff = Duration::from_micros(200);
        while self.sent.load(Ordering::Acquire).saturating_sub(self.producer.context().reported()) >= self.max {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(5));
        }
    }
}

/// Hands `record` to librdkafka, waiting while its queue is full (as the publisher does).
async fn send<'a>(producer: &Threaded, sent: &AtomicUsize, mut record: BaseRecord<'a, str, [u8], ()>) -> Result<(), KafkaError> {
    let mut backoff = Duration::from_micros(200);
    loop {
        match producer.send(record) {
            Ok(()) => {
                sent.fetch_add(1, Ordering::Release);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(20));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Encodes every event into the task's reused buffers and sends it.
async fn publish_reused(producer: &Threaded, codec: &EventCodec, chunk: &[DomainEvent], window: &Window<'_>) -> Result<()> {
    let Some(first) = chunk.first() else { return Ok(()) };
    // Topic and schema id once per task (the bench's events are all of one type and
    // version; any other is refused, not mis-sent).
    let (ty, version) = (first.event_type(), first.envelope.version);
    let topic = first.topic(codec.topics());
    let id = codec.schema_id(&topic, schema_def(ty, version)?).await?;
    let mut value: Vec<u8> = Vec::with_capacity(2048);
    let mut scratch = String::with_capacity(64);
    let mut uuid = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let limit = codec.max_message_bytes();
    for event in chunk {
        // The topic follows from the event type.
        if event.event_type() != ty || event.envelope.version != version {
            bail!("the threaded bench side publishes one event type and version per chunk");
        }
        let env = &event.envelope;
        let body = encode_body(event)?;
        value.clear();
        value.push(MAGIC_BYTE);
        value.extend_from_slice(&id.to_be_bytes());
        value.extend_from_slice(&body);

        // The contract's headers, as `headers_for` makes them, without an owned String each.
        let event_id = env.event_id.hyphenated().encode_lower(&mut uuid);
        scratch.clear();
        write!(scratch, "{}", env.version)?;
        let mut pairs: [(&str, &str); 7] = [
            (Headers::EVENT_ID, event_id),
            (Headers::EVENT_TYPE, ty.as_str()),
            (Headers::EVENT_VERSION, &scratch),
            (Headers::CONTENT_TYPE, CONTENT_TYPE),
            (Headers::CORRELATION_ID, &env.correlation_id),
            (Headers::ORDERING_KEY, event.ordering_key()),
            ("", ""),
        ];
        let count = match &env.causation_id {
            Some(c) => {
                pairs[6] = (Headers::CAUSATION_ID, c);
                7
            }
            None => 6,
        };
        let pairs = &pairs[..count];
        let key = event.aggregate_id();
        let header_bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + HEADER_OVERHEAD_BYTES).sum();
        let bytes = MESSAGE_OVERHEAD_BYTES + key.len() + value.len() + header_bytes;
        ensure!(bytes <= limit, "event {} makes a {bytes}-byte message, over the {limit}-byte limit", env.event_id);
        let mut headers = OwnedHeaders::new_with_capacity(count);
        for (k, v) in pairs {
            headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        window.admit().await;
        send(producer, window.sent, BaseRecord::to(&topic).key(key).payload(&value[..]).headers(headers))
            .await
            .with_context(|| format!("enqueueing event {}", env.event_id))?;
    }
    Ok(())
}

/// Encodes every event with `EventCodec::encode` and its headers into `OwnedHeaders`, as
/// `EventPublisher` does, and sends it.
async fn publish_owned(producer: &Threaded, codec: &EventCodec, chunk: &[DomainEvent], window: &Window<'_>) -> Result<()> {
    for event in chunk {
        let msg = codec.encode(event).await?;
        let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len());
        for (k, v) in &msg.headers {
            headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        window.admit().await;
        send(producer, window.sent, BaseRecord::to(&msg.topic).key(&msg.key[..]).payload(&msg.value[..]).headers(headers))
            .await
            .with_context(|| format!("enqueueing event {}", event.envelope.event_id))?;
    }
    Ok(())
}

/// This process's CPU time so far (user + system, from `/proc/self/stat`, in clock ticks
/// of 10 ms), to report the CPU a measured window used; `None` off Linux.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: state is the
    // 3rd field of the line, utime the 14th and stime the 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
