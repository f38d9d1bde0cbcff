use rdkafka::error::KafkaError;
use thiserror::Error;

/// Errors of the consumer side.
#[derive(Debug, Error)]
pub enum ConsumeError {
    /// A configuration value is invalid; `key` names it.
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// The key, as written in the configuration (dotted for nested keys).
        key: String,
        /// What a valid value is.
        reason: String,
    },

    /// librdkafka refused to create the consumer.
    #[error("creating the Kafka consumer failed: {0}")]
    Create(#[source] KafkaError),

    /// Subscribing to the topics failed.
    #[error("subscribing to {topics:?} failed: {source}")]
    Subscribe {
        /// The topics asked for.
        topics: Vec<String>,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },

    /// Polling the broker failed.
    #[error("receiving from Kafka failed: {0}")]
    Receive(#[source] KafkaError),

    /// Storing or committing an offset failed.
    #[error("storing offset {offset} of {topic}[{partition}] failed: {source}")]
    Store {
        /// The message's topic (`*` when a commit of every stored offset failed).
        topic: String,
        /// The message's partition (-1 for a commit).
        partition: i32,
        /// The offset of the message marked done (-1 for a commit).
        offset: i64,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },

    /// The group's retry or dead-letter topics could not be created.
    #[error("creating the retry and dead-letter topics failed: {0}")]
    Topics(String),

    /// The poll loop's thread could not be started, or ended by a panic.
    #[error("the poll thread {0}")]
    PollThread(String),
}

impl From<ltf_kafka::ConfigError> for ConsumeError {
    fn from(e: ltf_kafka::ConfigError) -> ConsumeError {
        ConsumeError::Config { key: e.key, reason: e.reason }
    }
}
