//! Options every subcommand shares; each can also come from an environment variable.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use ltf_kafka::security::KafkaSecurity;
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
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
}

/// Kafka security of every client the command creates (see `ltf_kafka::security`). The
/// SASL password is read from `LTF_KAFKA_SASL_PASSWORD` or from a file, never from a flag
/// (a flag shows in the process list).
#[derive(Debug, Clone, Args)]
pub struct KafkaSecurityArgs {
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, global = true, env = "LTF_KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, global = true, env = "LTF_KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    /// The SASL user.
    #[arg(long, global = true, env = "LTF_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// A file holding the SASL password (or set LTF_KAFKA_SASL_PASSWORD).
    #[arg(long, global = true, env = "LTF_KAFKA_SASL_PASSWORD_FILE")]
    pub kafka_sasl_password_file: Option<String>,
    /// The CA bundle (PEM) the brokers' certificates are checked against.
    #[arg(long, global = true, env = "LTF_KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<String>,
    /// The client certificate (PEM) for mTLS.
    #[arg(long, global = true, env = "LTF_KAFKA_SSL_CERTIFICATE_LOCATION")]
    pub kafka_ssl_certificate_location: Option<String>,
    /// The client private key (PEM) for mTLS.
    #[arg(long, global = true, env = "LTF_KAFKA_SSL_KEY_LOCATION")]
    pub kafka_ssl_key_location: Option<String>,
    /// A file of librdkafka properties (`key=value` lines) applied to every client.
    #[arg(long, global = true, env = "LTF_KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<String>,
}

impl KafkaSecurityArgs {
    /// Each setting with the environment variable it is read from.
    pub fn by_variable(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("LTF_KAFKA_SECURITY_PROTOCOL", &self.kafka_security_protocol),
            ("LTF_KAFKA_SASL_MECHANISM", &self.kafka_sasl_mechanism),
            ("LTF_KAFKA_SASL_USERNAME", &self.kafka_sasl_username),
            ("LTF_KAFKA_SASL_PASSWORD_FILE", &self.kafka_sasl_password_file),
            ("LTF_KAFKA_SSL_CA_LOCATION", &self.kafka_ssl_ca_location),
            ("LTF_KAFKA_SSL_CERTIFICATE_LOCATION", &self.kafka_ssl_certificate_location),
            ("LTF_KAFKA_SSL_KEY_LOCATION", &self.kafka_ssl_key_location),
            ("LTF_KAFKA_PROPERTIES_FILE", &self.kafka_properties_file),
        ]
    }

    /// The settings, checked (the error names the variable), installed for every Kafka
    /// client of the process.
    pub fn install(&self) -> Result<()> {
        let given = self.by_variable();
        let security = KafkaSecurity::from_lookup(|name| match given.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => (*value).clone(),
            None => std::env::var(name).ok(),
        })
        .context("Kafka security settings")?;
        ltf_kafka::security::install(security);
        Ok(())
    }
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
