//! What a chaos run knows after the fact, for the checks: the stores to compare, and
//! what the load was told (the API's answers) and what the receiver saw.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ltf_schemas::{EventCodec, TopicNames};
use sqlx::PgPool;

/// A record change the API accepted (answered 2xx): the record's version after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The table.
    pub table_id: String,
    /// The record.
    pub record_id: String,
    /// Its version after the change (for a delete: the version deleted).
    pub version: i64,
    /// What the change was.
    pub kind: ChangeKind,
}

/// The kind of an accepted record change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created (RecordCreated).
    Created,
    /// Updated (RecordUpdated).
    Updated,
    /// Deleted (RecordDeleted).
    Deleted,
}

/// Everything the checks compare.
#[derive(Debug, Clone)]
pub struct Ground {
    /// The run's database.
    pub pool: PgPool,
    /// Kafka.
    pub bootstrap: String,
    /// The codec of the run's topics (decodes what is on them).
    pub codec: Arc<EventCodec>,
    /// The run's topic names (its own prefix).
    pub topics: TopicNames,
    /// The consumer group of each worker: `audit`, `cache`, `analytics`, `automation`.
    pub groups: BTreeMap<String, String>,
    /// Redis, and the cache worker's key prefix.
    pub redis_url: String,
    /// The cache worker's key prefix.
    pub cache_prefix: String,
    /// The Idempotency-Keys of the webhook calls that took effect at the receiver.
    pub received_keys: BTreeSet<String>,
    /// The record changes the API accepted.
    pub accepted: Vec<Accepted>,
}

/// What the checks found. A run passes when every count but `events` is 0 and
/// `problems` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Distinct events on the topics.
    pub events: usize,
    /// Events missing from a place they must reach (outbox, topics, audit log, analytics,
    /// cache, a run, a webhook's receiver).
    pub lost: usize,
    /// Events applied more than once (audit rows, analytics counts, runs, effects).
    pub doubled: usize,
    /// Events of one record handled out of their order.
    pub out_of_order: usize,
    /// Work left unfinished: outbox rows unpublished, runs still `running`, lag.
    pub stuck: usize,
    /// Messages on the dead-letter topics.
    pub dead_lettered: usize,
    /// One line per violation, naming what and where (at most a few per kind).
    pub problems: Vec<String>,
}
