//! Creating the event topics.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::PublishError;

/// A replication factor that lets the cluster choose: its `default.replication.factor`.
pub const CLUSTER_DEFAULT_REPLICATION: i32 = -1;

/// Is `rf` a replication factor a topic can be created with: at least 1, or
/// [`CLUSTER_DEFAULT_REPLICATION`]?
fn valid_replication(rf: i32) -> bool {
    rf >= 1 || rf == CLUSTER_DEFAULT_REPLICATION
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name (e.g. `latechforce.table.events`).
    pub name: String,
    /// Number of partitions; at least 1.
    pub partitions: i32,
    /// Copies of each partition: at least 1 and at most the number of brokers, or
    /// [`CLUSTER_DEFAULT_REPLICATION`].
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
        if !valid_replication(s.replication_factor) {
            return Err(PublishError::Config {
                key: "replication_factor".into(),
                reason: format!("{} for {}: must be at least 1 (or -1, the cluster's default)", s.replication_factor, s.name),
            });
        }
    }
    let admin = admin(bootstrap_servers)?;
    let new: Vec<NewTopic<'_>> =
        specs.iter().map(|s| NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor))).collect();
    create(&admin, &new).await
}

fn admin(bootstrap_servers: &str) -> Result<AdminClient<DefaultClientContext>, PublishError> {
    crate::security::client_config(bootstrap_servers).create().map_err(PublishError::Create)
}

/// Creates `new` (existing topics are left as they are) and waits for their leaders.
async fn create(admin: &AdminClient<DefaultClientContext>, new: &[NewTopic<'_>]) -> Result<Vec<(String, Ensured)>, PublishError> {
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
            // A principal that may not create topics (least privilege: only the admin
            // does) still ensures topics that exist.
            Err((name, RDKafkaErrorCode::TopicAuthorizationFailed)) if exists(admin, &name) => {
                Ok((name, Ensured::AlreadyExisted))
            }
            Err((name, code)) => Err(PublishError::Topic { topic: name, reason: code.to_string() }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    for t in new {
        wait_for_leaders(admin, t.name).await?;
    }
    Ok(outcome)
}

/// Whether `topic` exists (as far as this principal may see).
fn exists(admin: &AdminClient<DefaultClientContext>, topic: &str) -> bool {
    admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .is_ok_and(|md| md.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// A topic that holds copies of another topic's messages (a consumer group's retry and
/// dead-letter topics), to be as durable as that topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideTopic {
    /// The side topic's name.
    pub name: String,
    /// The topic whose messages it holds.
    pub source: String,
    /// Number of partitions; at least 1.
    pub partitions: i32,
    /// The replication factor when the source topic does not exist yet (at least 1, or
    /// [`CLUSTER_DEFAULT_REPLICATION`]).
    pub fallback_replication: i32,
}

/// How a topic keeps its messages: copies of each partition and the copies a write
/// with `acks=all` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// Copies of each partition.
    pub replication_factor: i32,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: Option<String>,
}

/// The durability of `topic`, or `None` when it does not exist.
pub async fn durability(bootstrap_servers: &str, topic: &str) -> Result<Option<Durability>, PublishError> {
    durability_with(&admin(bootstrap_servers)?, topic).await
}

async fn durability_with(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<Option<Durability>, PublishError> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| PublishError::Topic { topic: topic.into(), reason: e.to_string() })?;
    let Some(replicas) = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .and_then(|t| t.partitions().first())
        .map(|p| p.replicas().len() as i32)
    else {
        return Ok(None);
    };
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let configs = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
        .await
        .map_err(|e| PublishError::Topic { topic: topic.into(), reason: e.to_string() })?;
    let min_insync_replicas =
        configs.into_iter().flatten().find_map(|r| r.get("min.insync.replicas").and_then(|e| e.value.clone()));
    Ok(Some(Durability { replication_factor: replicas, min_insync_replicas }))
}

/// Creates each side topic that does not exist yet with the replication factor and
/// `min.insync.replicas` of its source topic (`fallback_replication` and the broker's
/// default when the source does not exist yet); existing topics are left as they are.
pub async fn ensure_side_topics(bootstrap_servers: &str, topics: &[SideTopic]) -> Result<Vec<(String, Ensured)>, PublishError> {
    let admin = admin(bootstrap_servers)?;
    let mut durabilities = Vec::with_capacity(topics.len());
    for t in topics {
        if t.partitions < 1 || !valid_replication(t.fallback_replication) {
            return Err(PublishError::Config {
                key: if t.partitions < 1 { "partitions" } else { "replication_factor" }.into(),
                reason: format!("{}: must be at least 1 (a replication factor may be -1, the cluster's default)", t.name),
            });
        }
        durabilities.push(durability_with(&admin, &t.source).await?);
    }
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&durabilities)
        .map(|(t, d)| {
            let replication = d.as_ref().map_or(t.fallback_replication, |d| d.replication_factor);
            let topic = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replication));
            match d.as_ref().and_then(|d| d.min_insync_replicas.as_deref()) {
                Some(min) => topic.set("min.insync.replicas", min),
                None => topic,
            }
        })
        .collect();
    create(&admin, &new).await
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
    let admin = admin(bootstrap_servers)?;
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
