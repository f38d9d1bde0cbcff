//! Creating the event topics.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::PublishError;

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name (e.g. `latechforce.table.events`).
    pub name: String,
    /// Number of partitions; at least 1.
    pub partitions: i32,
    /// Copies of each partition; at least 1 and at most the number of brokers.
    pub replication_factor: i32,
}

/// Outcome per topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The topic did not exist and was created.
    Created,
    /// The topic existed and was left as it is (its settings may differ from the spec).
    AlreadyExisted,
}

/// Creates each topic that does not exist yet; existing topics are left as they are.
pub async fn ensure_topics(bootstrap_servers: &str, specs: &[TopicSpec]) -> Result<Vec<(String, Ensured)>, PublishError> {
    for s in specs {
        if s.partitions < 1 {
            return Err(PublishError::Config {
                key: "partitions".into(),
                reason: format!("{} for {}: must be at least 1", s.partitions, s.name),
            });
        }
        if s.replication_factor < 1 {
            return Err(PublishError::Config {
                key: "replication_factor".into(),
                reason: format!("{} for {}: must be at least 1", s.replication_factor, s.name),
            });
        }
    }
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap_servers).create().map_err(PublishError::Create)?;
    let new: Vec<NewTopic<'_>> =
        specs.iter().map(|s| NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor))).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| PublishError::Topic { topic: "*".into(), reason: e.to_string() })?;
    let outcome = results
        .into_iter()
        .map(|r| match r {
            Ok(name) => Ok((name, Ensured::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((name, Ensured::AlreadyExisted)),
            Err((name, code)) => Err(PublishError::Topic { topic: name, reason: code.to_string() }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    for s in specs {
        wait_for_leaders(&admin, &s.name).await?;
    }
    Ok(outcome)
}

/// Waits until every partition of a new topic has a leader, so producers and consumers
/// that start right after `ensure_topics` do not meet "not leader" errors.
async fn wait_for_leaders(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<(), PublishError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = match admin.inner().fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => md.topics().iter().all(|t| {
                t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
            }),
            Err(_) => false,
        };
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PublishError::Topic { topic: topic.into(), reason: "partitions have no leader after 30 s".into() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The smallest `max.message.bytes` of the existing topics among `topics` (the largest
/// message every one of them takes), or `None` when none of them exists yet.
pub async fn max_message_bytes(bootstrap_servers: &str, topics: &[String]) -> Result<Option<usize>, PublishError> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap_servers).create().map_err(PublishError::Create)?;
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .describe_configs(resources.iter(), &opts)
        .await
        .map_err(|e| PublishError::Topic { topic: "*".into(), reason: e.to_string() })?;
    let mut smallest: Option<usize> = None;
    for result in results {
        // A topic that does not exist yet has no limit of its own; it is created later
        // with the broker's default.
        let Ok(resource) = result else { continue };
        let value = resource.get("max.message.bytes").and_then(|e| e.value.as_deref()).and_then(|v| v.parse::<usize>().ok());
        if let Some(v) = value {
            smallest = Some(smallest.map_or(v, |s| s.min(v)));
        }
    }
    Ok(smallest)
}
