//! The workers: each one consumer group (`latechforce.<worker>`) with its handlers. Only
//! `audit` is built so far; automation, analytics and cache follow.

pub mod audit;

use ltf_schemas::{AggregateType, TopicNames};

use crate::Router;

/// A worker `ltf worker <name>` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Every event of every topic to the append-only event log.
    Audit,
}

impl WorkerKind {
    /// Every worker, for listings.
    pub const ALL: [WorkerKind; 1] = [WorkerKind::Audit];

    /// The worker's name (`audit`).
    pub fn name(self) -> &'static str {
        match self {
            WorkerKind::Audit => "audit",
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
            WorkerKind::Audit => AggregateType::ALL.iter().map(|a| names.events(*a)).collect(),
        }
    }

    /// Its handlers.
    pub fn router(self) -> Router {
        match self {
            WorkerKind::Audit => Router::new().register(audit::AuditHandler),
        }
    }
}
