use rdkafka::error::KafkaError;
use thiserror::Error;

/// Errors of the consumer side.
#[derive(Debug, Error)]
pub enum ConsumeError {
    /// A configuration value is invalid; `key` names it.
    #[error("invalid configuration `{key}`: {reason}")]
    Config { key: String, reason: String },

    /// librdkafka refused to create the consumer.
    #[error("creating the Kafka consumer failed: {0}")]
    Create(#[source] KafkaError),

    /// Subscribing to the topics failed.
    #[error("subscribing to {topics:?} failed: {source}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        source: KafkaError,
    },

    /// Polling the broker failed.
    #[error("receiving from Kafka failed: {0}")]
    Receive(#[source] KafkaError),

    /// Storing or committing an offset failed.
    #[error("storing offset {offset} of {topic}[{partition}] failed: {source}")]
    Store {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: KafkaError,
    },

    /// The group's retry or dead-letter topics could not be created.
    #[error("creating the retry and dead-letter topics failed: {0}")]
    Topics(String),
}

impl From<ltf_kafka::ConfigError> for ConsumeError {
    fn from(e: ltf_kafka::ConfigError) -> ConsumeError {
        ConsumeError::Config { key: e.key, reason: e.reason }
    }
}
