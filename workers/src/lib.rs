//! The four workers of the pipeline, built on the worker runtime (`ltf-consumers`) and
//! the domain (`ltf-producers`'s store and use cases): each one consumer group
//! (`<prefix>.<worker>`) with its handlers.
//!
//! | module | worker | its state |
//! |---|---|---|
//! | [`audit`] | every event of every topic, once, in the append-only event log | `ltf_event_log` |
//! | [`analytics`] | hourly rollups per table, form, service and automation | `ltf_analytics_rollups` |
//! | [`cache`] | the Redis read-through cache of records, version-guarded | Redis keys under a prefix |
//! | [`automation`] | automations, forms to records, connection usage, delete cascades | `ltf_connection_usage` (runs and steps through the domain) |
//! | [`metrics`] | the workers' metric names, labels and catalogue | |
//!
//! Guarantees: every handler is idempotent — by a dedup record written in the same
//! transaction as its effect, or (cache) by a version guard — so a redelivered or
//! replayed event never applies twice; a failed handler leaves its event to the
//! runtime's retry and dead-letter rules.

#![warn(missing_docs)]

pub mod analytics;
pub mod audit;
pub mod automation;
pub mod cache;
pub mod metrics;

use std::sync::Arc;

use ltf_schemas::EventCodec;

use ltf_schemas::{AggregateType, TopicNames};

use ltf_consumers::Router;

/// A worker `ltf worker <name>` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Every event of every topic to the append-only event log.
    Audit,
    /// The Redis record cache, from the table topic.
    Cache,
    /// Hourly rollups per table, form, service and automation.
    Analytics,
    /// Automations, form submissions to records, connection usage, delete cascades.
    Automation,
}

/// What a worker's handlers need besides Kafka: connections to their stores.
#[derive(Debug, Clone, Default)]
pub struct WorkerDeps {
    /// The Redis URL (`redis://127.0.0.1:6379`): the cache worker's.
    pub redis_url: Option<String>,
    /// The cache's key prefix (default [`cache::DEFAULT_PREFIX`]).
    pub cache_key_prefix: Option<String>,
    /// The codec of the events the worker emits (the automation worker's).
    pub codec: Option<Arc<EventCodec>>,
    /// The automation worker's settings.
    pub automation: automation::AutomationConfig,
}

/// A worker that cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum WorkerSetupError {
    /// A dependency the worker needs was not given.
    #[error("the {worker} worker needs {what}")]
    Missing {
        /// The worker.
        worker: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// The cache could not be set up.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// The automation worker could not be set up.
    #[error(transparent)]
    Automation(#[from] automation::AutomationSetupError),
}

impl WorkerKind {
    /// Every worker, for listings.
    pub const ALL: [WorkerKind; 4] = [WorkerKind::Audit, WorkerKind::Cache, WorkerKind::Analytics, WorkerKind::Automation];

    /// The worker's name (`audit`).
    pub fn name(self) -> &'static str {
        match self {
            WorkerKind::Audit => "audit",
            WorkerKind::Cache => "cache",
            WorkerKind::Analytics => "analytics",
            WorkerKind::Automation => "automation",
        }
    }

    /// The worker named `name`.
    pub fn parse(name: &str) -> Option<WorkerKind> {
        WorkerKind::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Its consumer group id: `<topic prefix>.<name>`, so `latechforce.<name>` with the
    /// default prefix (DESIGN.md), and a group of its own for every other prefix.
    pub fn group_id(self, names: &TopicNames) -> String {
        format!("{}.{}", names.prefix(), self.name())
    }

    /// The event topics it consumes.
    pub fn topics(self, names: &TopicNames) -> Vec<String> {
        match self {
            WorkerKind::Audit | WorkerKind::Analytics => AggregateType::ALL.iter().map(|a| names.events(*a)).collect(),
            WorkerKind::Cache => vec![names.events(AggregateType::Table)],
            WorkerKind::Automation => AggregateType::ALL.iter().map(|a| names.events(*a)).collect(),
        }
    }

    /// Whether its pipeline records processed events in the PostgreSQL dedup store. The
    /// cache worker does not: its version guard is its idempotency.
    pub fn uses_dedup_store(self) -> bool {
        match self {
            WorkerKind::Audit | WorkerKind::Analytics | WorkerKind::Automation => true,
            WorkerKind::Cache => false,
        }
    }

    /// How long its events may stay parked on a failing dependency: the automation
    /// worker's `max_park` (a step then fails, a run outcome); the others wait without
    /// limit, so an outage never costs them an event.
    pub fn max_park(self, deps: &WorkerDeps) -> Option<std::time::Duration> {
        match self {
            WorkerKind::Automation => Some(deps.automation.max_park),
            WorkerKind::Audit | WorkerKind::Analytics | WorkerKind::Cache => None,
        }
    }

    /// Its handlers, connected to the stores of `deps`. Must be called inside a Tokio
    /// runtime (connections are made lazily, so a store that is down is an outage the
    /// runtime waits out, not a start-up failure).
    pub fn router(self, deps: &WorkerDeps) -> Result<Router, WorkerSetupError> {
        Ok(match self {
            WorkerKind::Audit => Router::new().register(audit::AuditHandler),
            WorkerKind::Analytics => Router::new().register(analytics::AnalyticsHandler),
            WorkerKind::Automation => {
                let codec =
                    deps.codec.clone().ok_or(WorkerSetupError::Missing { worker: "automation", what: "an event codec" })?;
                automation::router(codec, &deps.automation)?
            }
            WorkerKind::Cache => {
                let url = deps.redis_url.as_deref().ok_or(WorkerSetupError::Missing { worker: "cache", what: "a Redis URL" })?;
                let mut config = cache::CacheConfig::new(url);
                if let Some(prefix) = &deps.cache_key_prefix {
                    config.key_prefix = prefix.clone();
                }
                Router::new().register(cache::CacheHandler::new(cache::RecordCache::new(&config)?))
            }
        })
    }
}
