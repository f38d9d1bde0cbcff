//! The demo's reader: decoded events from the current end of the event topics, by manual
//! assignment (no consumer group membership), so the demo sees exactly what it writes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ltf_consumers::Meta;
use ltf_kafka::ConsumerConfig;
use ltf_schemas::{DomainEvent, EventCodec, SchemaError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// One message as read: Kafka metadata plus the decoded event or why it did not decode.
#[derive(Debug)]
pub struct ReceivedEvent {
    /// Topic, partition, offset, key, timestamp and headers.
    pub meta: Meta,
    /// The decoded event, or why the value does not decode.
    pub event: Result<DomainEvent, SchemaError>,
}

/// A reader of decoded events, from the end the topics had when it was made.
pub struct EventReader {
    consumer: StreamConsumer,
    codec: Arc<EventCodec>,
}

/// The end offset of a partition. A topic created a moment ago may have no leader yet
/// (`NotLeaderForPartition`, `LeaderNotAvailable`): that is waited out for up to 30 s, as
/// librdkafka would for a produce, instead of failing the caller.
fn end_offset(consumer: &StreamConsumer, topic: &str, partition: i32, timeout: Duration) -> Result<i64, KafkaError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Ok((_low, high)) => return Ok(high),
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                            | RDKafkaErrorCode::UnknownTopicOrPartition
                    )
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader").finish_non_exhaustive()
    }
}

impl EventReader {
    /// Reads `topics` from their current ends (messages written after this call), with
    /// manual assignment instead of group membership: for tools that must see exactly
    /// what they are about to write.
    pub fn from_end_of(config: &ConsumerConfig, codec: Arc<EventCodec>, topics: &[String]) -> anyhow::Result<EventReader> {
        let consumer: StreamConsumer = config.client_config()?.create().context("creating the demo's reader")?;
        let timeout = Duration::from_secs(10);
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let md = consumer.fetch_metadata(Some(topic), timeout).with_context(|| format!("reading the end of {topic}"))?;
            for t in md.topics() {
                for p in t.partitions() {
                    let high =
                        end_offset(&consumer, topic, p.id(), timeout).with_context(|| format!("reading the end of {topic}"))?;
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))
                        .with_context(|| format!("reading the end of {topic}"))?;
                }
            }
        }
        consumer.assign(&tpl).context("assigning the demo's reader")?;
        Ok(EventReader { consumer, codec })
    }

    /// The next message, decoded.
    pub async fn next(&self) -> anyhow::Result<ReceivedEvent> {
        let msg = self.consumer.recv().await.context("reading the event topics")?;
        let event = self.codec.decode(msg.payload().unwrap_or_default()).await;
        Ok(ReceivedEvent { meta: Meta::of(&msg), event })
    }
}
