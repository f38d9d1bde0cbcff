//! What every configuration struct of the project shares: the error that names the bad
//! key, and durations written as whole milliseconds.

use thiserror::Error;

/// A configuration value that is invalid: `key` names it (dotted for nested keys, e.g.
/// `consumer.group_id`), `reason` says what a valid value is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid configuration `{key}`: {reason}")]
pub struct ConfigError {
    /// The key, as written in the configuration.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigError {
    /// An error naming `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError { key: key.into(), reason: reason.into() }
    }

    /// The same error with its key under `prefix` (`prefix.key`).
    pub fn within(self, prefix: &str) -> ConfigError {
        ConfigError { key: format!("{prefix}.{}", self.key), reason: self.reason }
    }
}

/// Serde for durations written as whole milliseconds (`*_ms` keys):
/// `#[serde(with = "ltf_kafka::config::millis", rename = "timeout_ms")]`.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads whole milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    /// Writes whole milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
