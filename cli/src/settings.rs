//! Options every subcommand shares; each can also come from an environment variable.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use ltf_kafka::topics::max_message_bytes;
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::codec::DEFAULT_MAX_MESSAGE_BYTES;
use ltf_schemas::{EventCodec, TopicNames};

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Kafka bootstrap servers.
    #[arg(long, global = true, env = "LTF_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Confluent-compatible schema registry API base URL.
    #[arg(long, global = true, env = "LTF_REGISTRY_URL", default_value = "http://127.0.0.1:8081/apis/ccompat/v7")]
    pub registry: String,
    /// Topic prefix: topics are `<prefix>.<aggregate>.events`.
    #[arg(long, global = true, env = "LTF_TOPIC_PREFIX", default_value = "latechforce")]
    pub topic_prefix: String,
    /// Log format: text or json.
    #[arg(long, global = true, env = "LTF_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Common {
    /// Installs logging and tracing for the command `service` ([`crate::telemetry`]).
    pub fn init_tracing(&self, service: &str) -> crate::telemetry::Telemetry {
        crate::telemetry::init(service, self.log_format == "json")
    }

    pub fn topics(&self) -> TopicNames {
        TopicNames::new(&self.topic_prefix)
    }

    pub fn codec(&self) -> Result<Arc<EventCodec>> {
        Ok(Arc::new(EventCodec::new(&self.registry, self.topics()).context("schema registry settings")?))
    }

    /// The codec of a process that writes events (the API, the workers): the largest event
    /// it encodes is min(librdkafka's `message.max.bytes` default, the smallest
    /// `max.message.bytes` of the event topics as Kafka reports them now). Kafka not
    /// answering leaves the default, with a warning.
    pub async fn writer_codec(&self) -> Result<Arc<EventCodec>> {
        let codec = EventCodec::new(&self.registry, self.topics()).context("schema registry settings")?;
        let limit = match max_message_bytes(&self.bootstrap, &self.topics().all_events()).await {
            Ok(topics) => topics.map_or(DEFAULT_MAX_MESSAGE_BYTES, |t| t.min(DEFAULT_MAX_MESSAGE_BYTES)),
            Err(e) => {
                tracing::warn!(error = %e, "reading the topics' max.message.bytes failed; using the default limit");
                DEFAULT_MAX_MESSAGE_BYTES
            }
        };
        tracing::info!(max_message_bytes = limit, "largest event accepted");
        Ok(Arc::new(codec.with_max_message_bytes(limit)))
    }

    pub fn publisher_config(&self) -> PublisherConfig {
        PublisherConfig::with_bootstrap(&self.bootstrap)
    }

    pub fn publisher(&self, config: &PublisherConfig) -> Result<EventPublisher> {
        Ok(EventPublisher::new(config, self.codec()?)?)
    }
}
