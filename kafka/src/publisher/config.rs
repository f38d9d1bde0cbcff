use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::PublishError;

/// Producer settings. Every field has a default; `validate` names the bad key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublisherConfig {
    /// Kafka bootstrap servers (`host:port,…`). Default `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// How long librdkafka waits to fill a batch (`linger.ms`). Default 5.
    pub linger_ms: u32,
    /// Maximum batch size in bytes (`batch.size`). Default 1 MiB.
    pub batch_bytes: u32,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd. Default `lz4`.
    pub compression: String,
    /// Bound on librdkafka's send queue in KiB (`queue.buffering.max.kbytes`); the
    /// librdkafka default is 1 GiB. Default 65536 (64 MiB).
    pub queue_max_kbytes: u32,
    /// Bound on the number of queued messages (`queue.buffering.max.messages`). Default 100000.
    pub queue_max_messages: u32,
    /// How long an event may wait for acknowledgement before it fails
    /// (`message.timeout.ms`). Default 30000.
    pub message_timeout_ms: u32,
    /// Extra librdkafka properties, applied last (e.g. `security.protocol`). The
    /// idempotence and transaction settings cannot be overridden here.
    pub extra: BTreeMap<String, String>,
    /// Set by [`EventPublisher::transactional`](crate::EventPublisher::transactional) only:
    /// the producer's `transactional.id`.
    #[serde(skip)]
    pub(crate) transactional_id: Option<String>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            linger_ms: 5,
            batch_bytes: 1 << 20,
            compression: "lz4".into(),
            queue_max_kbytes: 65536,
            queue_max_messages: 100_000,
            message_timeout_ms: 30_000,
            extra: BTreeMap::new(),
            transactional_id: None,
        }
    }
}

const GUARDED: [&str; 7] = [
    "acks",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "max.in.flight.requests.per.connection",
    "retries",
    "transactional.id",
    "transaction.timeout.ms",
];

impl PublisherConfig {
    /// The defaults, with `bootstrap_servers` (`host:port,…`).
    pub fn with_bootstrap(bootstrap_servers: impl Into<String>) -> PublisherConfig {
        PublisherConfig { bootstrap_servers: bootstrap_servers.into(), ..Default::default() }
    }

    /// Checks every field; the error names the first bad key.
    pub fn validate(&self) -> Result<(), PublishError> {
        let bad = |key: &str, reason: &str| Err(PublishError::Config { key: key.into(), reason: reason.into() });
        if self.bootstrap_servers.trim().is_empty() {
            return bad("bootstrap_servers", "must name at least one host:port");
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            return bad("compression", "must be one of none, gzip, snappy, lz4, zstd");
        }
        if self.linger_ms > 900_000 {
            return bad("linger_ms", "must be at most 900000");
        }
        if self.batch_bytes == 0 {
            return bad("batch_bytes", "must be positive");
        }
        if self.queue_max_kbytes == 0 || self.queue_max_messages == 0 {
            return bad("queue_max_kbytes", "queue bounds must be positive");
        }
        if self.message_timeout_ms == 0 {
            return bad("message_timeout_ms", "must be positive");
        }
        if let Some(k) = self.extra.keys().find(|k| GUARDED.contains(&k.as_str())) {
            return bad(&format!("extra.{k}"), "idempotence and transaction settings are fixed by the publisher");
        }
        Ok(())
    }

    /// The librdkafka configuration of an idempotent producer.
    pub fn client_config(&self) -> Result<ClientConfig, PublishError> {
        self.validate()?;
        let mut c = crate::security::client_config(&self.bootstrap_servers);
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            // A failure that would leave a gap in a partition's sequence is a fatal error
            // instead; the publisher then replaces the producer and its caller retries.
            .set("enable.gapless.guarantee", "true")
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set("compression.type", &self.compression)
            .set("queue.buffering.max.kbytes", self.queue_max_kbytes.to_string())
            .set("queue.buffering.max.messages", self.queue_max_messages.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("socket.nagle.disable", "true");
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        if let Some(id) = &self.transactional_id {
            // A transaction left open by a producer that died is aborted by the broker after
            // this long, or at once when a producer of the same id starts.
            c.set("transactional.id", id).set("transaction.timeout.ms", self.message_timeout_ms.max(10_000).to_string());
            // One produce request in flight per broker: after Kafka refuses a message, no
            // later request of the transaction is still out, so the abort that follows
            // returns at once instead of waiting for those to time out.
            c.set("max.in.flight.requests.per.connection", "1");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_idempotent() {
        let c = PublisherConfig::default().client_config().unwrap();
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("socket.nagle.disable"), Some("true"));
        assert_eq!(c.get("queue.buffering.max.kbytes"), Some("65536"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = PublisherConfig { compression: "brotli".into(), ..Default::default() };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`compression`"), "{e}");
        c.compression = "zstd".into();
        c.extra.insert("acks".into(), "1".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`extra.acks`"), "{e}");
        let e = PublisherConfig::with_bootstrap(" ").validate().unwrap_err().to_string();
        assert!(e.contains("`bootstrap_servers`"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<PublisherConfig>(r#"{"lingerMs": 3}"#).unwrap_err().to_string();
        assert!(e.contains("lingerMs"), "{e}");
    }
}
