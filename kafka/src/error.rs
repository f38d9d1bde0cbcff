use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use crate::ConfigError;

/// Errors of the Kafka clients: the publisher and topic administration.
#[derive(Debug, Error)]
pub enum PublishError {
    /// A configuration value is invalid; `key` names it.
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// The key, as written in the configuration (e.g. `linger_ms`, `extra.acks`).
        key: String,
        /// What a valid value is.
        reason: String,
    },

    /// librdkafka refused to create the producer or admin client.
    #[error("creating the Kafka client failed: {0}")]
    Create(#[source] KafkaError),

    /// The event could not be encoded (registry unreachable, invalid event, …).
    #[error("encoding event {event_id} for topic {topic} failed: {source}")]
    Encode {
        /// The topic the event was for.
        topic: String,
        /// The event's eventId.
        event_id: String,
        /// Why it could not be encoded; retryable when the registry was unreachable.
        #[source]
        source: Box<ltf_schemas::SchemaError>,
    },

    /// The broker did not acknowledge the event.
    #[error("publishing event {event_id} to topic {topic} failed: {source}")]
    Kafka {
        /// The topic written to (`*` when a flush failed).
        topic: String,
        /// The event's `event-id` header (`<none>` without one, `*` when a flush failed).
        event_id: String,
        /// librdkafka's error (e.g. the message timed out).
        #[source]
        source: KafkaError,
    },

    /// A step of a Kafka transaction failed (the transaction wrote nothing readers see).
    #[error("the Kafka transaction failed to {stage}: {source}")]
    Transaction {
        /// What was being done: `initialize`, `begin`, `commit` or `abort`.
        stage: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },

    /// Creating or describing topics failed.
    #[error("topic {topic}: {reason}")]
    Topic {
        /// The topic (`*` when the whole request failed).
        topic: String,
        /// The broker's error, or that the partitions got no leader in time.
        reason: String,
    },
}

impl From<ConfigError> for PublishError {
    fn from(e: ConfigError) -> PublishError {
        PublishError::Config { key: e.key, reason: e.reason }
    }
}

impl PublishError {
    /// Whether publishing this message again can never succeed as it is: the broker
    /// refused the message itself (too large for the topic, an invalid record, a policy
    /// violation, a format the topic cannot hold, a topic name it rejects, no right to
    /// write the topic), or the event does not encode for a reason a retry does not heal.
    /// Everything else (timeouts, lost brokers, leader changes, a registry outage) may
    /// succeed on a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            PublishError::Kafka { source, .. } => matches!(
                source.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::MessageSizeTooLarge
                        | RDKafkaErrorCode::InvalidMessageSize
                        | RDKafkaErrorCode::InvalidMessage
                        | RDKafkaErrorCode::InvalidRecord
                        | RDKafkaErrorCode::PolicyViolation
                        | RDKafkaErrorCode::UnsupportedForMessageFormat
                        | RDKafkaErrorCode::InvalidTopic
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                )
            ),
            PublishError::Encode { source, .. } => !source.is_retryable(),
            PublishError::Config { .. }
            | PublishError::Create(_)
            | PublishError::Topic { .. }
            | PublishError::Transaction { .. } => false,
        }
    }
}
