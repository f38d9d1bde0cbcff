//! The Rust event types: an envelope plus one payload per event type of the spec.
//!
//! The field maps of a payload (`fields`, `previousFields`, `triggerData`, `data`, …) are
//! [`LazyFields`]: read, compared, printed and (de)serialized as the [`Fields`] they
//! dereference to, and built only when first read if the event was decoded.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::EventType;
use crate::contract::{AggregateType, TopicNames};
use crate::fields::{Fields, LazyFields};

/// Fields every event carries (DESIGN.md, "Envelope").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique id of this event (UUID); consumers deduplicate on it.
    pub event_id: Uuid,
    /// tableId, automationId, connectionId or formId: the Kafka key.
    pub aggregate_id: String,
    /// Per-aggregate, strictly increasing; 0 until the outbox assigns it.
    pub aggregate_sequence: i64,
    /// Millisecond precision (Avro timestamp-millis).
    pub occurred_on: DateTime<Utc>,
    /// Schema version of the payload.
    pub version: i32,
    /// Shared by every event caused, directly or not, by one user action; a new event
    /// starts with its own eventId here.
    pub correlation_id: String,
    /// eventId of the cause; `None` for a user action.
    pub causation_id: Option<String>,
}

/// `record-created`: a record was created in a table (aggregateId = tableId). Versions 1
/// and 2; v2 adds `createdBy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordCreated {
    /// The table the record belongs to: the event's aggregateId and Kafka key.
    pub table_id: String,
    /// The new record's id, unique within its table: the event's ordering key.
    pub record_id: String,
    /// The record row's version after this change (`recordVersion` in the Avro envelope);
    /// projections refuse stale writes with it.
    pub record_version: i64,
    /// The record's fields, by field name (in Avro: scalars as Avro scalars, arrays and
    /// objects as JSON text).
    pub fields: LazyFields,
    /// The user who created the record (v2 only); `None` when read from v1 data.
    pub created_by: Option<String>,
}

/// `record-updated`: an existing record was modified (aggregateId = tableId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordUpdated {
    /// The table the record belongs to: the event's aggregateId and Kafka key.
    pub table_id: String,
    /// The updated record's id: the event's ordering key.
    pub record_id: String,
    /// The record row's version after this change (`recordVersion` in the Avro envelope);
    /// projections refuse stale writes with it.
    pub record_version: i64,
    /// The record's fields before the change.
    pub previous_fields: LazyFields,
    /// The record's fields after the change.
    pub current_fields: LazyFields,
    /// Names of the fields whose value differs between the two: added, changed or removed.
    pub changed_fields: Vec<String>,
}

/// `record-deleted`: a record was deleted (aggregateId = tableId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordDeleted {
    /// The table the record belonged to: the event's aggregateId and Kafka key.
    pub table_id: String,
    /// The deleted record's id: the event's ordering key.
    pub record_id: String,
    /// The record row's version after the deletion (one above its last stored version);
    /// projections refuse stale writes with it.
    pub record_version: i64,
    /// The record's fields as they were when it was deleted.
    pub deleted_fields: LazyFields,
}

/// `automation-triggered`: an event started a run of an automation (aggregateId =
/// automationId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationTriggered {
    /// The automation that was triggered: the event's aggregateId and Kafka key.
    pub automation_id: String,
    /// What triggered the run: the automation worker writes the triggering event's type
    /// (`record-created`, `form-submitted`, …).
    pub trigger_id: String,
    /// The triggering event's data the run works on (e.g. `tableId`, `recordId` and
    /// `fields` of a record); action templates read it.
    pub trigger_data: LazyFields,
    /// The run this starts: the ordering key of this event and of the run's ActionExecuted
    /// events.
    pub run_id: String,
}

/// How an action of an automation run ended (`success` or `failure` in Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionResult {
    /// The action did what it was asked; `data` holds what it produced.
    Success,
    /// The action failed; `error` says why. A failed action ends its run as failed.
    Failure,
}

/// `action-executed`: one action of an automation run completed (aggregateId =
/// automationId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecuted {
    /// The automation the run belongs to: the event's aggregateId and Kafka key.
    pub automation_id: String,
    /// The action's id within the automation's definition.
    pub action_id: String,
    /// The run the action belongs to (the runId of its AutomationTriggered): the event's
    /// ordering key.
    pub run_id: String,
    /// Whether the action succeeded.
    pub result: ActionResult,
    /// What the action produced, on success (later actions read it as
    /// `steps.<actionId>.…`); `None` on failure.
    pub data: Option<LazyFields>,
    /// Why the action failed; `None` on success.
    pub error: Option<String>,
}

/// `connection-established`: a connection to an external service was authenticated
/// (aggregateId = connectionId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEstablished {
    /// The connection's id (`conn_…` when generated): the event's aggregateId and Kafka key.
    pub connection_id: String,
    /// The external service connected to, by its configured name (e.g. `github`).
    pub service: String,
    /// The user who owns the connection.
    pub user_id: String,
}

/// `form-submitted`: a form was submitted (aggregateId = formId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSubmitted {
    /// The form submitted: the event's aggregateId and Kafka key.
    pub form_id: String,
    /// The submission's id (`sub_…`), unique per submission.
    pub submission_id: String,
    /// The submitted values, by form field name.
    pub data: LazyFields,
    /// The user who submitted the form; `None` when no user is known.
    pub submitted_by: Option<String>,
}

/// The payload, by event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", content = "payload", rename_all = "kebab-case")]
pub enum EventPayload {
    /// `record-created`: a record was created in a table.
    RecordCreated(RecordCreated),
    /// `record-updated`: an existing record was modified.
    RecordUpdated(RecordUpdated),
    /// `record-deleted`: a record was deleted.
    RecordDeleted(RecordDeleted),
    /// `automation-triggered`: an event started a run of an automation.
    AutomationTriggered(AutomationTriggered),
    /// `action-executed`: one action of an automation run completed.
    ActionExecuted(ActionExecuted),
    /// `connection-established`: a connection to an external service was authenticated.
    ConnectionEstablished(ConnectionEstablished),
    /// `form-submitted`: a form was submitted.
    FormSubmitted(FormSubmitted),
}

impl EventPayload {
    /// The event type this payload is of.
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

    /// The field maps the payload carries (record fields, trigger data, action data, a
    /// form submission): the part of an event whose size its writer controls.
    pub fn field_maps(&self) -> Vec<&Fields> {
        match self {
            EventPayload::RecordCreated(p) => vec![&*p.fields],
            EventPayload::RecordUpdated(p) => vec![&*p.previous_fields, &*p.current_fields],
            EventPayload::RecordDeleted(p) => vec![&*p.deleted_fields],
            EventPayload::AutomationTriggered(p) => vec![&*p.trigger_data],
            EventPayload::ActionExecuted(p) => p.data.iter().map(|d| &**d).collect(),
            EventPayload::FormSubmitted(p) => vec![&*p.data],
            EventPayload::ConnectionEstablished(_) => Vec::new(),
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
    /// The fields every event carries: ids, aggregate, sequence, time, version, correlation.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The event type and its payload.
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

    /// Sets the schema version to write (e.g. 1 for RecordCreated v1); encoding refuses a
    /// payload that version cannot carry.
    pub fn with_version(mut self, version: i32) -> DomainEvent {
        self.envelope.version = version;
        self
    }

    /// Sets the correlation id (e.g. the request's `X-Correlation-Id`).
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> DomainEvent {
        self.envelope.correlation_id = id.into();
        self
    }

    /// Sets aggregateSequence, which the outbox otherwise assigns when it writes the event.
    pub fn with_sequence(mut self, seq: i64) -> DomainEvent {
        self.envelope.aggregate_sequence = seq;
        self
    }

    /// This event's eventId.
    pub fn event_id(&self) -> Uuid {
        self.envelope.event_id
    }

    /// The event type, from the payload.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The aggregate of this event type (`table` for record events, …): it picks the topic.
    pub fn aggregate_type(&self) -> AggregateType {
        self.event_type().aggregate()
    }

    /// The envelope's aggregateId: the Kafka key.
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
            fields: Fields::new().into(),
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
            trigger_data: Fields::new().into(),
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
