//! Shared helpers for the integration tests: where the real stack listens, unique names
//! per test, and a plain Kafka consumer that reads what a test wrote.
//!
//! The stack is started by `scripts/test` (`scripts/stack up`); a test whose service is
//! unreachable fails with a message naming the service. Nothing is skipped.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Kafka bootstrap servers of the test stack.
pub fn bootstrap() -> String {
    std::env::var("LTF_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Confluent-compatible registry API of the test stack.
pub fn registry_url() -> String {
    std::env::var("LTF_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// A topic prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("t-{test}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Reads every partition of `topics` from the beginning until `n` messages arrived.
pub fn read_n(topics: &[String], n: usize, timeout: Duration) -> Result<Vec<OwnedMessage>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the test consumer")?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).context("metadata")?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        if Instant::now() > deadline {
            bail!("read {} of {n} messages from {topics:?} before the timeout", out.len());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m?.detach());
        }
    }
    Ok(out)
}

/// A message's headers as (name, UTF-8 value) pairs.
pub fn headers(m: &OwnedMessage) -> Vec<(String, String)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|x| (x.key.to_owned(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes raw values (poison, hand-framed) to a topic and waits for acknowledgement.
pub fn produce_raw(topic: &str, key: &str, values: &[Vec<u8>]) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    for v in values {
        producer
            .send(BaseRecord::to(topic).key(key).payload(v))
            .map_err(|(e, _)| e)
            .context("enqueue raw value")?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}
