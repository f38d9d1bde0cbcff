//! The Rust event types: an envelope plus one payload per event type of the spec.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::EventType;
use crate::contract::{AggregateType, TopicNames};
use crate::fields::Fields;

/// Fields every event carries (DESIGN.md, "Envelope").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub event_id: Uuid,
    /// tableId, automationId, connectionId or formId: the Kafka key.
    pub aggregate_id: String,
    /// Per-aggregate, strictly increasing; 0 until the outbox assigns it.
    pub aggregate_sequence: i64,
    /// Millisecond precision (Avro timestamp-millis).
    pub occurred_on: DateTime<Utc>,
    /// Schema version of the payload.
    pub version: i32,
    pub correlation_id: String,
    /// eventId of the cause; `None` for a user action.
    pub causation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordCreated {
    pub table_id: String,
    pub record_id: String,
    pub record_version: i64,
    pub fields: Fields,
    /// v2 only; `None` when read from v1 data.
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordUpdated {
    pub table_id: String,
    pub record_id: String,
    pub record_version: i64,
    pub previous_fields: Fields,
    pub current_fields: Fields,
    pub changed_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordDeleted {
    pub table_id: String,
    pub record_id: String,
    pub record_version: i64,
    pub deleted_fields: Fields,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationTriggered {
    pub automation_id: String,
    pub trigger_id: String,
    pub trigger_data: Fields,
    pub run_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionResult {
    Success,
    Failure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecuted {
    pub automation_id: String,
    pub action_id: String,
    pub run_id: String,
    pub result: ActionResult,
    pub data: Option<Fields>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEstablished {
    pub connection_id: String,
    pub service: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSubmitted {
    pub form_id: String,
    pub submission_id: String,
    pub data: Fields,
    pub submitted_by: Option<String>,
}

/// The payload, by event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", content = "payload", rename_all = "kebab-case")]
pub enum EventPayload {
    RecordCreated(RecordCreated),
    RecordUpdated(RecordUpdated),
    RecordDeleted(RecordDeleted),
    AutomationTriggered(AutomationTriggered),
    ActionExecuted(ActionExecuted),
    ConnectionEstablished(ConnectionEstablished),
    FormSubmitted(FormSubmitted),
}

impl EventPayload {
    pub fn event_type(&self) -> EventType {
        match self {
            EventPayload::RecordCreated(_) => EventType::RecordCreated,
            EventPayload::RecordUpdated(_) => EventType::RecordUpdated,
            EventPayload::RecordDeleted(_) => EventType::RecordDeleted,
            EventPayload::AutomationTriggered(_) => EventType::AutomationTriggered,
            EventPayload::ActionExecuted(_) => EventType::ActionExecuted,
            EventPayload::ConnectionEstablished(_) => EventType::ConnectionEstablished,
            EventPayload::FormSubmitted(_) => EventType::FormSubmitted,
        }
    }

    /// The aggregateId the spec builds for this payload.
    pub fn aggregate_id(&self) -> &str {
        match self {
            EventPayload::RecordCreated(p) => &p.table_id,
            EventPayload::RecordUpdated(p) => &p.table_id,
            EventPayload::RecordDeleted(p) => &p.table_id,
            EventPayload::AutomationTriggered(p) => &p.automation_id,
            EventPayload::ActionExecuted(p) => &p.automation_id,
            EventPayload::ConnectionEstablished(p) => &p.connection_id,
            EventPayload::FormSubmitted(p) => &p.form_id,
        }
    }

    /// recordId for record events, otherwise `None` (the aggregateId orders).
    pub fn record_id(&self) -> Option<&str> {
        match self {
            EventPayload::RecordCreated(p) => Some(&p.record_id),
            EventPayload::RecordUpdated(p) => Some(&p.record_id),
            EventPayload::RecordDeleted(p) => Some(&p.record_id),
            _ => None,
        }
    }

    /// The record row's version after the change, for record events.
    pub fn record_version(&self) -> Option<i64> {
        match self {
            EventPayload::RecordCreated(p) => Some(p.record_version),
            EventPayload::RecordUpdated(p) => Some(p.record_version),
            EventPayload::RecordDeleted(p) => Some(p.record_version),
            _ => None,
        }
    }
}

/// One domain event: envelope + payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(flatten)]
    pub payload: EventPayload,
}

/// Now, truncated to milliseconds (what Avro timestamp-millis keeps).
pub fn now_millis() -> DateTime<Utc> {
    millis_to_time(Utc::now().timestamp_millis())
}

pub(crate) fn millis_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl DomainEvent {
    /// A new event for a user action: fresh eventId, its own correlation id, no cause,
    /// the newest schema version, occurredOn = now.
    pub fn new(payload: EventPayload) -> DomainEvent {
        let event_id = Uuid::new_v4();
        DomainEvent {
            envelope: Envelope {
                event_id,
                aggregate_id: payload.aggregate_id().to_owned(),
                aggregate_sequence: 0,
                occurred_on: now_millis(),
                version: payload.event_type().latest_version(),
                correlation_id: event_id.to_string(),
                causation_id: None,
            },
            payload,
        }
    }

    /// Marks this event as caused by `cause`: same correlation id, causationId = its eventId.
    pub fn caused_by(mut self, cause: &DomainEvent) -> DomainEvent {
        self.envelope.correlation_id = cause.envelope.correlation_id.clone();
        self.envelope.causation_id = Some(cause.envelope.event_id.to_string());
        self
    }

    pub fn with_version(mut self, version: i32) -> DomainEvent {
        self.envelope.version = version;
        self
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> DomainEvent {
        self.envelope.correlation_id = id.into();
        self
    }

    pub fn with_sequence(mut self, seq: i64) -> DomainEvent {
        self.envelope.aggregate_sequence = seq;
        self
    }

    pub fn event_id(&self) -> Uuid {
        self.envelope.event_id
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    pub fn aggregate_type(&self) -> AggregateType {
        self.event_type().aggregate()
    }

    pub fn aggregate_id(&self) -> &str {
        &self.envelope.aggregate_id
    }

    /// recordId for record events, runId for automation events, otherwise the aggregateId
    /// (DESIGN.md, "Ordering key"). Automation events need order only within a run (its
    /// AutomationTriggered, then each ActionExecuted), so runs of one automation are
    /// handled concurrently and a slow or retried run holds up no other.
    pub fn ordering_key(&self) -> &str {
        match &self.payload {
            EventPayload::AutomationTriggered(p) => &p.run_id,
            EventPayload::ActionExecuted(p) => &p.run_id,
            other => other.record_id().unwrap_or(&self.envelope.aggregate_id),
        }
    }

    /// The topic this event belongs on.
    pub fn topic(&self, topics: &TopicNames) -> String {
        topics.events(self.aggregate_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> DomainEvent {
        DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
            table_id: "tbl".into(),
            record_id: "rec".into(),
            record_version: 1,
            fields: Fields::new(),
            created_by: None,
        }))
    }

    #[test]
    fn keys_topics_and_ordering_keys_follow_the_contract() {
        let e = created();
        assert_eq!(e.aggregate_id(), "tbl");
        assert_eq!(e.ordering_key(), "rec");
        assert_eq!(e.topic(&TopicNames::default()), "latechforce.table.events");
        assert_eq!(e.envelope.version, 2);
        assert_eq!(e.envelope.correlation_id, e.event_id().to_string());
        let c = DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: "c1".into(),
            service: "github".into(),
            user_id: "u".into(),
        }))
        .caused_by(&e);
        assert_eq!(c.ordering_key(), "c1");
        assert_eq!(c.envelope.correlation_id, e.envelope.correlation_id);
        assert_eq!(c.envelope.causation_id, Some(e.event_id().to_string()));
        assert_eq!(c.topic(&TopicNames::new("p")), "p.connection.events");
        let a = DomainEvent::new(EventPayload::AutomationTriggered(AutomationTriggered {
            automation_id: "auto".into(),
            trigger_id: "record-created".into(),
            trigger_data: Fields::new(),
            run_id: "run-1".into(),
        }));
        assert_eq!((a.aggregate_id(), a.ordering_key()), ("auto", "run-1"));
    }

    #[test]
    fn occurred_on_is_millisecond_precise() {
        let e = created();
        assert_eq!(e.envelope.occurred_on.timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
