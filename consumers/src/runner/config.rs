use std::time::Duration;

use serde::Deserialize;

use ltf_kafka::ConsumerConfig;

use crate::ConsumeError;

/// Settings of one worker's consumer-group runner. Every field has a default;
/// [`WorkerConfig::validate`] names the bad key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// The Kafka consumer (bootstrap servers, group id, session timeout, prefetch bound).
    pub consumer: ConsumerConfig,
    /// Most events fetched and not finished at once, over all partitions. Default 256.
    pub max_in_flight: u32,
    /// On SIGTERM, how long in-flight events may take to finish before they are
    /// abandoned (their offsets are not committed; they are handled again after a
    /// restart). Default 20 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "shutdown_deadline_ms")]
    pub shutdown_deadline: Duration,
    /// How often librdkafka reports statistics (consumer lag). Default 5 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "stats_interval_ms")]
    pub stats_interval: Duration,
    /// Whether the group also consumes its `<topic>.<group>.retry` topics (where
    /// replayed dead letters arrive). Default true.
    pub consume_retry_topics: bool,
    /// Partitions of the group's retry and dead-letter topics, created at start when
    /// missing. Default 6.
    pub side_topic_partitions: i32,
    /// Replication factor of a retry or dead-letter topic created while its event topic
    /// does not exist yet; otherwise it takes the event topic's replication factor and
    /// `min.insync.replicas`. Default -1: the cluster's `default.replication.factor`.
    pub side_topic_replication: i32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            consumer: ConsumerConfig::default(),
            max_in_flight: 256,
            shutdown_deadline: Duration::from_secs(20),
            stats_interval: Duration::from_secs(5),
            consume_retry_topics: true,
            side_topic_partitions: 6,
            side_topic_replication: ltf_kafka::topics::CLUSTER_DEFAULT_REPLICATION,
        }
    }
}

impl WorkerConfig {
    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConsumeError> {
        let bad = |key: &str, reason: &str| Err(ConsumeError::Config { key: key.into(), reason: reason.into() });
        self.consumer.validate().map_err(|e| e.within("consumer"))?;
        if self.max_in_flight == 0 || self.max_in_flight > 100_000 {
            return bad("max_in_flight", "must be between 1 and 100000");
        }
        if self.shutdown_deadline.is_zero() {
            return bad("shutdown_deadline_ms", "must be positive");
        }
        if self.side_topic_partitions < 1 {
            return bad("side_topic_partitions", "must be at least 1");
        }
        if self.side_topic_replication < 1 && self.side_topic_replication != ltf_kafka::topics::CLUSTER_DEFAULT_REPLICATION {
            return bad("side_topic_replication", "must be at least 1, or -1 for the cluster's default");
        }
        if self.stats_interval < Duration::from_millis(100) {
            return bad("stats_interval_ms", "must be at least 100");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let mut c = WorkerConfig::default();
        c.consumer.group_id = "g".into();
        c.validate().unwrap();
        let e = WorkerConfig { max_in_flight: 0, ..c.clone() }.validate().unwrap_err();
        assert!(e.to_string().contains("max_in_flight"), "{e}");
        let e = WorkerConfig::default().validate().unwrap_err();
        assert!(e.to_string().contains("consumer.group_id"), "{e}");
    }
}
