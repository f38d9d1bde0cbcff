//! The event topics of a chaos run as the checks see them: every message of every
//! partition, from its low to its high watermark at the time of the check, read as the
//! workers read (committed messages only), decoded, and folded by eventId.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ltf_schemas::DomainEvent;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::{Lines, KAFKA_TIMEOUT, READ_IDLE_TIMEOUT};
use crate::chaos::ground::Ground;

/// One distinct event of the event topics, with where it was first seen.
#[derive(Debug)]
pub(super) struct TopicEvent {
    pub(super) event: DomainEvent,
    pub(super) topic: String,
}

/// What the event topics hold, by eventId (duplicates folded: the relay is at least once).
#[derive(Debug, Default)]
pub(super) struct TopicEvents {
    pub(super) by_id: BTreeMap<Uuid, TopicEvent>,
    /// The `event-id` headers of messages whose value does not decode.
    pub(super) undecodable: BTreeSet<Uuid>,
}

impl TopicEvents {
    /// Whether `id` is on the topics, decodable or not.
    pub(super) fn contains(&self, id: &Uuid) -> bool {
        self.by_id.contains_key(id) || self.undecodable.contains(id)
    }

    /// The number of distinct eventIds on the topics.
    pub(super) fn distinct(&self) -> usize {
        self.by_id.len() + self.undecodable.iter().filter(|id| !self.by_id.contains_key(id)).count()
    }

    /// The decoded events, by eventId.
    pub(super) fn events(&self) -> impl Iterator<Item = &DomainEvent> {
        self.by_id.values().map(|t| &t.event)
    }
}

/// A message as read from an event topic, before decoding.
#[derive(Debug)]
struct RawMessage {
    topic: String,
    partition: i32,
    offset: i64,
    /// The `event-id` header.
    event_id: Option<String>,
    value: Option<Vec<u8>>,
}

/// A consumer that joins no group (a unique `group.id`, used only for assignment) and
/// commits nothing.
pub(super) fn plain_consumer(bootstrap: &str) -> Result<BaseConsumer> {
    ltf_kafka::security::client_config(bootstrap)
        .set("group.id", format!("ltf-chaos-check-{}", Uuid::new_v4().simple()))
        // What the workers read: messages of committed relay transactions.
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .context("creating a Kafka consumer")
}

/// Reads every event topic of the run and decodes each message. A message that does not
/// decode, whose `event-id` header disagrees with its eventId, or that is on the topic of
/// another aggregate is a problem line.
pub(super) async fn read_event_topics(g: &Ground, lines: &mut Lines) -> Result<TopicEvents> {
    let bootstrap = g.bootstrap.clone();
    let names = g.topics.all_events();
    let raw = tokio::task::spawn_blocking(move || read_raw(&bootstrap, &names)).await.context("the topic reader panicked")??;
    let mut out = TopicEvents::default();
    for m in raw {
        let at = format!("{}[{}]@{}", m.topic, m.partition, m.offset);
        let header = m.event_id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
        let Some(value) = &m.value else {
            lines.push(format_args!("{at}: a message without a value"));
            out.undecodable.extend(header);
            continue;
        };
        let event = match g.codec.decode(value).await {
            Ok(e) => e,
            Err(e) => {
                lines.push(format_args!("{at}: does not decode: {e}"));
                out.undecodable.extend(header);
                continue;
            }
        };
        if header != Some(event.event_id()) {
            lines.push(format_args!("{at}: event-id header {:?}, eventId {}", m.event_id, event.event_id()));
        }
        if event.topic(&g.topics) != m.topic {
            lines.push(format_args!("{at}: a {} event on the wrong topic", event.event_type().as_str()));
        }
        out.by_id.entry(event.event_id()).or_insert(TopicEvent { event, topic: m.topic });
    }
    Ok(out)
}

/// Every message of `topics` (those that exist), each partition from its low to its high
/// watermark as they are now (blocking).
fn read_raw(bootstrap: &str, topics: &[String]) -> Result<Vec<RawMessage>> {
    let consumer = plain_consumer(bootstrap)?;
    let md = consumer.fetch_metadata(None, KAFKA_TIMEOUT).context("reading the cluster metadata")?;
    let mut tpl = TopicPartitionList::new();
    let mut pending: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in md.topics().iter().filter(|t| topics.iter().any(|name| name == t.name())) {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(t.name(), p.id(), KAFKA_TIMEOUT)
                .with_context(|| format!("watermarks of {}[{}]", t.name(), p.id()))?;
            if low < high {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Offset(low))?;
                pending.insert((t.name().to_owned(), p.id()), high);
            }
        }
    }
    let mut out = Vec::new();
    if pending.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).context("assigning the event topics")?;
    let mut progress = Instant::now();
    while !pending.is_empty() {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            drop_reached(&consumer, &mut pending)?;
            if progress.elapsed() > READ_IDLE_TIMEOUT && !pending.is_empty() {
                bail!("reading the event topics stalled {READ_IDLE_TIMEOUT:?} before the end of {:?}", pending.keys());
            }
            continue;
        };
        let msg = msg.context("reading the event topics")?;
        progress = Instant::now();
        let place = (msg.topic().to_owned(), msg.partition());
        let Some(&high) = pending.get(&place) else { continue };
        if msg.offset() >= high {
            continue;
        }
        let event_id = msg.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == ltf_schemas::Headers::EVENT_ID)
                .map(|x| String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())
        });
        out.push(RawMessage {
            topic: place.0.clone(),
            partition: place.1,
            offset: msg.offset(),
            event_id,
            value: msg.payload().map(<[u8]>::to_vec),
        });
        if msg.offset() + 1 >= high {
            pending.remove(&place);
        }
    }
    Ok(out)
}

/// Drops from `pending` the partitions whose read position reached their end (the last
/// offsets may hold no message the reader sees, e.g. transaction markers).
fn drop_reached(consumer: &BaseConsumer, pending: &mut BTreeMap<(String, i32), i64>) -> Result<()> {
    let position = consumer.position().context("reading the reader's position")?;
    for e in position.elements() {
        if let Offset::Offset(at) = e.offset() {
            let place = (e.topic().to_owned(), e.partition());
            if pending.get(&place).is_some_and(|&high| at >= high) {
                pending.remove(&place);
            }
        }
    }
    Ok(())
}
