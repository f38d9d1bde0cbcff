//! Reading a dead-letter topic from its start (or an offset) to its end, without joining
//! a group or committing anything.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use ltf_consumers::middleware::DlqHeaders;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::topics::{DlqTopic, KAFKA_TIMEOUT};

/// A whole topic must be read within this long.
const SCAN_TIMEOUT: Duration = Duration::from_secs(60);

/// One dead letter as stored: where it is, and its key, value and headers as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The DLQ topic.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When it was dead-lettered (the DLQ record's timestamp), ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The original key (`None`: keyless).
    pub key: Option<Vec<u8>>,
    /// The original value bytes.
    pub value: Option<Vec<u8>>,
    /// Every header in order, the `dlq-*` ones included.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Letter {
    /// A header's value as UTF-8 (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned())
    }

    /// The `dlq-error-class`, or `unknown` when missing.
    pub fn class(&self) -> String {
        self.header(DlqHeaders::ERROR_CLASS).unwrap_or_else(|| "unknown".into())
    }

    /// The dead-lettering time.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.timestamp_ms.and_then(DateTime::from_timestamp_millis)
    }
}

/// Where to start reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    /// Only this partition.
    pub partition: Option<i32>,
    /// From this offset (in every partition read).
    pub from_offset: Option<i64>,
}

/// Every letter of `topic` in `range`, by partition then offset (blocking).
pub fn read_topic(consumer: &BaseConsumer, topic: &DlqTopic, range: Range) -> Result<Vec<Letter>> {
    let mut tpl = TopicPartitionList::new();
    let mut pending = BTreeSet::new();
    for &p in topic.partitions.iter().filter(|p| range.partition.is_none_or(|x| x == **p)) {
        let (low, high) =
            consumer.fetch_watermarks(&topic.name, p, KAFKA_TIMEOUT).with_context(|| format!("watermarks of {}", topic.name))?;
        let start = range.from_offset.unwrap_or(low).max(low);
        if start < high {
            tpl.add_partition_offset(&topic.name, p, Offset::Offset(start))?;
            pending.insert((p, high));
        }
    }
    let mut out = Vec::new();
    if pending.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).context("assigning the DLQ partitions")?;
    let deadline = Instant::now() + SCAN_TIMEOUT;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            bail!("reading {} did not reach its end in {SCAN_TIMEOUT:?}", topic.name);
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = match msg {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                pending.retain(|(x, _)| *x != p);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", topic.name)),
        };
        if msg.topic() != topic.name {
            continue; // left over from an earlier assignment of this consumer
        }
        let p = msg.partition();
        if pending.iter().any(|(x, high)| *x == p && msg.offset() + 1 >= *high) {
            pending.retain(|(x, _)| *x != p);
        }
        out.push(Letter {
            topic: msg.topic().to_owned(),
            partition: p,
            offset: msg.offset(),
            timestamp_ms: msg.timestamp().to_millis(),
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers: msg
                .headers()
                .map(|h| h.iter().map(|x| (x.key.to_owned(), x.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default(),
        });
    }
    consumer.unassign().ok();
    out.sort_by_key(|l| (l.partition, l.offset));
    Ok(out)
}
