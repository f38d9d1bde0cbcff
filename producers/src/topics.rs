//! Creating the event topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::PublishError;

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
}

/// Outcome per topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    AlreadyExisted,
}

/// Creates each topic that does not exist yet; existing topics are left as they are.
pub async fn ensure_topics(bootstrap_servers: &str, specs: &[TopicSpec]) -> Result<Vec<(String, Ensured)>, PublishError> {
    for s in specs {
        if s.partitions < 1 {
            return Err(PublishError::Config { key: "partitions".into(), reason: format!("{} for {}: must be at least 1", s.partitions, s.name) });
        }
        if s.replication_factor < 1 {
            return Err(PublishError::Config { key: "replication_factor".into(), reason: format!("{} for {}: must be at least 1", s.replication_factor, s.name) });
        }
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .create()
        .map_err(PublishError::Create)?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| PublishError::Topic { topic: "*".into(), reason: e.to_string() })?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(name) => Ok((name, Ensured::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((name, Ensured::AlreadyExisted)),
            Err((name, code)) => Err(PublishError::Topic { topic: name, reason: code.to_string() }),
        })
        .collect()
}
