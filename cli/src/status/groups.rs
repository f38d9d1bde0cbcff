//! Consumer groups of the prefix: state and members (ListGroups/DescribeGroups), and lag
//! per topic from committed offsets, high watermarks and the timestamp of the first
//! unconsumed message. Blocking Kafka calls: run off the async runtime.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use ltf_schemas::TopicNames;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::dlq::{plain_consumer, KAFKA_TIMEOUT};

/// How long to wait for the first unconsumed message of the lagging partitions.
const PEEK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub partition: i32,
    /// The committed offset (`None`: nothing committed; lag counts from the start).
    pub committed: Option<i64>,
    pub high_watermark: i64,
    pub lag: i64,
    /// Now minus the timestamp of the first unconsumed message; 0 without lag.
    pub lag_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicLag {
    pub topic: String,
    /// Messages not consumed yet, all partitions.
    pub lag: i64,
    /// The largest partition lag in seconds.
    pub lag_seconds: f64,
    pub partitions: Vec<PartitionLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupKafka {
    pub group: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, … (`Unknown` when the broker does not
    /// describe it, e.g. a group known only from its DLQ topics).
    pub state: String,
    pub members: Vec<Member>,
    /// The topics the group committed offsets for.
    pub topics: Vec<TopicLag>,
}

/// Every group of `prefix` (`<prefix>.*`), plus `extra` groups (known from DLQ topics).
pub fn groups(bootstrap: &str, prefix: &str, extra: &[String]) -> Result<Vec<GroupKafka>> {
    let consumer = plain_consumer(bootstrap)?;
    let list = consumer.fetch_group_list(None, KAFKA_TIMEOUT).context("listing the consumer groups")?;
    let mut described: BTreeMap<String, (String, Vec<Member>)> = BTreeMap::new();
    for g in list.groups().iter().filter(|g| g.name().starts_with(&format!("{prefix}."))) {
        let members = g
            .members()
            .iter()
            .map(|m| Member { id: m.id().to_owned(), client_id: m.client_id().to_owned(), host: m.client_host().to_owned() })
            .collect();
        described.insert(g.name().to_owned(), (g.state().to_owned(), members));
    }
    for g in extra {
        described.entry(g.clone()).or_insert_with(|| ("Unknown".into(), Vec::new()));
    }
    let md = consumer.fetch_metadata(None, KAFKA_TIMEOUT).context("reading the cluster metadata")?;
    let partitions: HashMap<String, Vec<i32>> =
        md.topics().iter().map(|t| (t.name().to_owned(), t.partitions().iter().map(|p| p.id()).collect())).collect();
    let events: Vec<String> = TopicNames::new(prefix).all_events().into_iter().filter(|t| partitions.contains_key(t)).collect();
    let mut out = Vec::new();
    for (group, (state, members)) in described {
        let candidates: Vec<String> = events
            .iter()
            .flat_map(|e| [e.clone(), TopicNames::retry(e, &group)])
            .filter(|t| partitions.contains_key(t))
            .collect();
        let topics = lag_of(bootstrap, &consumer, &group, &candidates, &partitions)?;
        out.push(GroupKafka { group, state, members, topics });
    }
    Ok(out)
}

/// Lag of `group` on each of `topics` it committed an offset for.
fn lag_of(
    bootstrap: &str,
    reader: &BaseConsumer,
    group: &str,
    topics: &[String],
    partitions: &HashMap<String, Vec<i32>>,
) -> Result<Vec<TopicLag>> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    // A consumer with the group's id only to read its committed offsets: it never
    // subscribes, so it does not join the group.
    let offsets: BaseConsumer = ltf_kafka::security::client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the offsets consumer")?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for &p in &partitions[t] {
            tpl.add_partition(t, p);
        }
    }
    let committed = offsets.committed_offsets(tpl, KAFKA_TIMEOUT).with_context(|| format!("committed offsets of {group}"))?;
    let mut by_topic: BTreeMap<String, Vec<PartitionLag>> = BTreeMap::new();
    let mut with_commit: BTreeSet<String> = BTreeSet::new();
    let mut peek = Vec::new();
    for e in committed.elements() {
        let (low, high) = reader.fetch_watermarks(e.topic(), e.partition(), KAFKA_TIMEOUT)?;
        let at = match e.offset() {
            Offset::Offset(o) => {
                with_commit.insert(e.topic().to_owned());
                Some(o)
            }
            _ => None,
        };
        let from = at.unwrap_or(low).max(low);
        let lag = (high - from).max(0);
        if lag > 0 {
            peek.push((e.topic().to_owned(), e.partition(), from));
        }
        by_topic.entry(e.topic().to_owned()).or_default().push(PartitionLag {
            partition: e.partition(),
            committed: at,
            high_watermark: high,
            lag,
            lag_seconds: 0.0,
        });
    }
    let ages = first_unconsumed_ages(reader, &peek)?;
    Ok(by_topic
        .into_iter()
        .filter(|(t, _)| with_commit.contains(t))
        .map(|(topic, mut parts)| {
            for p in &mut parts {
                p.lag_seconds = ages.get(&(topic.clone(), p.partition)).copied().unwrap_or(0.0);
            }
            parts.sort_by_key(|p| p.partition);
            TopicLag {
                lag: parts.iter().map(|p| p.lag).sum(),
                lag_seconds: parts.iter().map(|p| p.lag_seconds).fold(0.0, f64::max),
                topic,
                partitions: parts,
            }
        })
        .collect())
}

/// For each (topic, partition, offset): now minus the timestamp of the message there (the
/// next one when it is gone), in seconds, at least 0.
fn first_unconsumed_ages(reader: &BaseConsumer, at: &[(String, i32, i64)]) -> Result<HashMap<(String, i32), f64>> {
    let mut out = HashMap::new();
    if at.is_empty() {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in at {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    reader.assign(&tpl).context("assigning the lagging partitions")?;
    let deadline = Instant::now() + PEEK_TIMEOUT;
    let now_ms = Utc::now().timestamp_millis();
    while out.len() < at.len() && Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = (m.topic().to_owned(), m.partition());
                if let (false, Some(ts)) = (out.contains_key(&key), m.timestamp().to_millis()) {
                    out.insert(key, ((now_ms - ts) as f64 / 1000.0).max(0.0));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => return Err(e).context("reading the first unconsumed messages"),
        }
    }
    reader.unassign().ok();
    Ok(out)
}
