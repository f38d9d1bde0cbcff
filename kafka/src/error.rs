use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::ConfigError;

/// Errors of the Kafka clients: the publisher and topic administration.
#[derive(Debug, Error)]
pub enum PublishError {
    /// A configuration value is invalid; `key` names it.
    #[error("invalid configuration `{key}`: {reason}")]
    Config { key: String, reason: String },

    /// librdkafka refused to create the producer or admin client.
    #[error("creating the Kafka client failed: {0}")]
    Create(#[source] KafkaError),

    /// The event could not be encoded (registry unreachable, invalid event, …).
    #[error("encoding event {event_id} for topic {topic} failed: {source}")]
    Encode {
        topic: String,
        event_id: String,
        #[source]
        source: Box<ltf_schemas::SchemaError>,
    },

    /// The broker did not acknowledge the event.
    #[error("publishing event {event_id} to topic {topic} failed: {source}")]
    Kafka {
        topic: String,
        event_id: String,
        #[source]
        source: KafkaError,
    },

    /// Creating or describing topics failed.
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
}

impl From<ConfigError> for PublishError {
    fn from(e: ConfigError) -> PublishError {
        PublishError::Config { key: e.key, reason: e.reason }
    }
}
