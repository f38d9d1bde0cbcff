use std::time::Duration;

use serde::Deserialize;

use crate::relay::RelayError;

/// Relay settings. Every field has a default; [`RelayConfig::validate`] names the bad key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Most rows published per batch (one transaction, one Kafka round trip). Default 1000.
    pub batch_size: u32,
    /// Most aggregates claimed per batch. Default 256.
    pub max_aggregates: u32,
    /// Most relays running at once against one database. Each takes the lowest free slot
    /// (`0..max_relays`) and names its Kafka transactions `<topic prefix>.relay-<slot>`;
    /// a relay finding every slot taken fails its batches until one is free. Default 64.
    pub max_relays: u32,
    /// How long the relay waits for a notification before it looks for rows anyway.
    /// Default 1 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "poll_interval_ms")]
    pub poll_interval: Duration,
    /// First wait after a failed batch; doubles per failure up to `max_backoff`.
    /// Default 200 ms.
    #[serde(with = "ltf_kafka::config::millis", rename = "min_backoff_ms")]
    pub min_backoff: Duration,
    /// Longest wait after failed batches. Default 10 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "max_backoff_ms")]
    pub max_backoff: Duration,
    /// How long sent rows are kept before they are deleted (for audit and
    /// `wait_for_publish` look-ups). Default 24 h.
    #[serde(with = "ltf_kafka::config::millis", rename = "retention_ms")]
    pub retention: Duration,
    /// How often sent rows past the retention are deleted. Default 60 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "prune_interval_ms")]
    pub prune_interval: Duration,
    /// How often the backlog metrics are sampled. Default 5 s.
    #[serde(with = "ltf_kafka::config::millis", rename = "backlog_interval_ms")]
    pub backlog_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 1000,
            max_aggregates: 256,
            max_relays: 64,
            poll_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            retention: Duration::from_secs(24 * 3600),
            prune_interval: Duration::from_secs(60),
            backlog_interval: Duration::from_secs(5),
        }
    }
}

impl RelayConfig {
    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), RelayError> {
        let bad = |key: &str, reason: &str| Err(RelayError::Config { key: key.into(), reason: reason.into() });
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return bad("batch_size", "must be between 1 and 100000");
        }
        if self.max_relays == 0 || self.max_relays > 10_000 {
            return bad("max_relays", "must be between 1 and 10000");
        }
        if self.max_aggregates == 0 {
            return bad("max_aggregates", "must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval_ms", "must be positive");
        }
        if self.min_backoff.is_zero() {
            return bad("min_backoff_ms", "must be positive");
        }
        if self.max_backoff < self.min_backoff {
            return bad("max_backoff_ms", "must be at least min_backoff_ms");
        }
        if self.prune_interval.is_zero() {
            return bad("prune_interval_ms", "must be positive");
        }
        if self.backlog_interval.is_zero() {
            return bad("backlog_interval_ms", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        RelayConfig::default().validate().unwrap();
        let c = RelayConfig { batch_size: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("batch_size"));
        let c = RelayConfig { max_backoff: Duration::from_millis(1), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("max_backoff_ms"));
        let c: RelayConfig = serde_json::from_str(r#"{"batch_size": 10, "retention_ms": 0}"#).unwrap();
        assert_eq!((c.batch_size, c.retention), (10, Duration::ZERO));
        assert!(serde_json::from_str::<RelayConfig>(r#"{"batch": 10}"#).is_err());
    }
}
