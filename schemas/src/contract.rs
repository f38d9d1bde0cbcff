//! Names that other teams depend on: topics, subjects, headers, consumer groups.

use std::fmt;

/// Default topic prefix: topics are `<prefix>.<aggregate>.events`.
pub const DEFAULT_TOPIC_PREFIX: &str = "latechforce";

/// `content-type` header value of every event.
pub const CONTENT_TYPE: &str = "application/vnd.latechforce.event+avro";

/// The Avro namespace of every event record.
pub const NAMESPACE: &str = "com.latechforce.events";

/// Exact Kafka header names (DESIGN.md, "Headers").
#[derive(Debug)]
pub struct Headers;

impl Headers {
    /// The envelope's eventId.
    pub const EVENT_ID: &'static str = "event-id";
    /// The spec's event type string (`record-created`, …).
    pub const EVENT_TYPE: &'static str = "event-type";
    /// The schema version the value was written with (the envelope's `version`).
    pub const EVENT_VERSION: &'static str = "event-version";
    /// Always `application/vnd.latechforce.event+avro`.
    pub const CONTENT_TYPE: &'static str = "content-type";
    /// The envelope's correlationId.
    pub const CORRELATION_ID: &'static str = "correlation-id";
    /// The envelope's causationId: the eventId of the cause; absent for a user action.
    pub const CAUSATION_ID: &'static str = "causation-id";
    /// What consumers keep order by: recordId for record events, runId for automation
    /// events, otherwise the aggregateId.
    pub const ORDERING_KEY: &'static str = "ordering-key";
    /// W3C trace context; present when a trace is active.
    pub const TRACEPARENT: &'static str = "traceparent";
}

/// The four aggregates; one topic each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateType {
    /// `table`: record-created, record-updated and record-deleted; aggregateId = tableId.
    Table,
    /// `automation`: automation-triggered and action-executed; aggregateId = automationId.
    Automation,
    /// `connection`: connection-established; aggregateId = connectionId.
    Connection,
    /// `form`: form-submitted; aggregateId = formId.
    Form,
}

impl AggregateType {
    /// The four aggregate types, one topic each.
    pub const ALL: [AggregateType; 4] =
        [AggregateType::Table, AggregateType::Automation, AggregateType::Connection, AggregateType::Form];

    /// The envelope's aggregateType and the topic's middle part (`table`, `automation`,
    /// `connection`, `form`).
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateType::Table => "table",
            AggregateType::Automation => "automation",
            AggregateType::Connection => "connection",
            AggregateType::Form => "form",
        }
    }

    /// The aggregate type of such a string; `None` for any other string.
    pub fn parse(s: &str) -> Option<AggregateType> {
        AggregateType::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for AggregateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Topic naming with a configurable prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        TopicNames::new(DEFAULT_TOPIC_PREFIX)
    }
}

impl TopicNames {
    /// Topic names under `prefix`: `<prefix>.<aggregate>.events`.
    pub fn new(prefix: impl Into<String>) -> TopicNames {
        TopicNames { prefix: prefix.into() }
    }

    /// The topic prefix (`latechforce` by default).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.<aggregate>.events`
    pub fn events(&self, aggregate: AggregateType) -> String {
        format!("{}.{}.events", self.prefix, aggregate.as_str())
    }

    /// All four event topics.
    pub fn all_events(&self) -> Vec<String> {
        AggregateType::ALL.iter().map(|a| self.events(*a)).collect()
    }

    /// The aggregate whose events a topic carries, if it is one of ours.
    pub fn aggregate_of(&self, topic: &str) -> Option<AggregateType> {
        AggregateType::ALL.into_iter().find(|a| self.events(*a) == topic)
    }

    /// `<topic>.<group>.retry`: consumed only by that group; replayed dead letters arrive here.
    pub fn retry(topic: &str, group: &str) -> String {
        format!("{topic}.{group}.retry")
    }

    /// `<topic>.<group>.dlq`
    pub fn dlq(topic: &str, group: &str) -> String {
        format!("{topic}.{group}.dlq")
    }
}

/// Consumer group id of a worker: `latechforce.<worker>`.
pub fn group_id(worker: &str) -> String {
    format!("{DEFAULT_TOPIC_PREFIX}.{worker}")
}

/// TopicRecordNameStrategy: `<topic>-<record full name>`.
pub fn subject(topic: &str, record_full_name: &str) -> String {
    format!("{topic}-{record_full_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_subject_and_group_names_follow_the_contract() {
        let t = TopicNames::default();
        assert_eq!(t.events(AggregateType::Table), "latechforce.table.events");
        assert_eq!(t.aggregate_of("latechforce.form.events"), Some(AggregateType::Form));
        assert_eq!(t.aggregate_of("other.form.events"), None);
        assert_eq!(
            subject("latechforce.table.events", "com.latechforce.events.RecordCreated"),
            "latechforce.table.events-com.latechforce.events.RecordCreated"
        );
        assert_eq!(TopicNames::dlq("a.b", "g"), "a.b.g.dlq");
        assert_eq!(TopicNames::retry("a.b", "g"), "a.b.g.retry");
        assert_eq!(group_id("audit"), "latechforce.audit");
        assert_eq!(TopicNames::new("x").all_events().len(), 4);
    }
}
