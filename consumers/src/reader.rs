use std::sync::Arc;

use ltf_schemas::{DomainEvent, EventCodec, SchemaError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

use ltf_kafka::ConsumerConfig;

use crate::{ConsumeError, Meta};

/// One message as read: Kafka metadata plus the decoded event or why it did not decode.
#[derive(Debug)]
pub struct ReceivedEvent {
    /// Topic, partition, offset, key, timestamp and headers.
    pub meta: Meta,
    /// The raw value, kept for dead-lettering.
    pub value: Vec<u8>,
    /// The decoded event, or the [`SchemaError`] saying why the value does not decode (not
    /// Confluent-framed, unknown schema id, unsupported version, …).
    pub event: Result<DomainEvent, SchemaError>,
}

impl ReceivedEvent {
    /// A header's value, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.meta.header(name)
    }
}

/// A consumer-group reader of decoded events.
pub struct EventReader {
    consumer: StreamConsumer,
    codec: Arc<EventCodec>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader").finish_non_exhaustive()
    }
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

impl EventReader {
    /// Joins `config.group_id` and subscribes to `topics`.
    pub fn subscribe(config: &ConsumerConfig, codec: Arc<EventCodec>, topics: &[String]) -> Result<EventReader, ConsumeError> {
        let consumer: StreamConsumer = config.client_config()?.create().map_err(ConsumeError::Create)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|source| ConsumeError::Subscribe { topics: topics.to_vec(), source })?;
        Ok(EventReader { consumer, codec })
    }

    /// Reads `topics` from their current ends (messages written after this call), with
    /// manual assignment instead of group membership: for tools that must see exactly
    /// what they are about to write.
    pub fn from_end_of(config: &ConsumerConfig, codec: Arc<EventCodec>, topics: &[String]) -> Result<EventReader, ConsumeError> {
        let consumer: StreamConsumer = config.client_config()?.create().map_err(ConsumeError::Create)?;
        let timeout = Duration::from_secs(10);
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let md = consumer.fetch_metadata(Some(topic), timeout).map_err(ConsumeError::Receive)?;
            for t in md.topics() {
                for p in t.partitions() {
                    let high = end_offset(&consumer, topic, p.id(), timeout).map_err(ConsumeError::Receive)?;
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(high)).map_err(ConsumeError::Receive)?;
                }
            }
        }
        consumer.assign(&tpl).map_err(|source| ConsumeError::Subscribe { topics: topics.to_vec(), source })?;
        Ok(EventReader { consumer, codec })
    }

    /// The next message, decoded.
    pub async fn next(&self) -> Result<ReceivedEvent, ConsumeError> {
        let msg = self.consumer.recv().await.map_err(ConsumeError::Receive)?;
        let value = msg.payload().map(<[u8]>::to_vec).unwrap_or_default();
        let event = self.codec.decode(&value).await;
        Ok(ReceivedEvent { meta: Meta::of(&msg), value, event })
    }

    /// Marks `ev` as done: its offset + 1 is committed with the next auto-commit.
    pub fn store(&self, ev: &ReceivedEvent) -> Result<(), ConsumeError> {
        let m = &ev.meta;
        self.consumer.store_offset(&m.topic, m.partition, m.offset).map_err(|source| ConsumeError::Store {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
            source,
        })
    }

    /// Commits stored offsets now (synchronously).
    pub fn commit(&self) -> Result<(), ConsumeError> {
        match self.consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(source) => Err(ConsumeError::Store { topic: "*".into(), partition: -1, offset: -1, source }),
        }
    }

    /// The partitions currently assigned to this member.
    pub fn assignment(&self) -> Result<TopicPartitionList, ConsumeError> {
        self.consumer.assignment().map_err(ConsumeError::Receive)
    }
}
