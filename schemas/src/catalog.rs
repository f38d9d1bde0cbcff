//! The embedded schema catalogue: every event type and every version of its schema.

use std::fmt;
use std::sync::OnceLock;

use apache_avro::Schema;

use crate::contract::{AggregateType, NAMESPACE};
use crate::SchemaError;

/// The event types of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `record-created`: a record was created in a table.
    RecordCreated,
    /// `record-updated`: an existing record was modified.
    RecordUpdated,
    /// `record-deleted`: a record was deleted.
    RecordDeleted,
    /// `automation-triggered`: an event started a run of an automation.
    AutomationTriggered,
    /// `action-executed`: one action of an automation run completed.
    ActionExecuted,
    /// `connection-established`: a connection to an external service was authenticated.
    ConnectionEstablished,
    /// `form-submitted`: a form was submitted.
    FormSubmitted,
}

impl EventType {
    /// Every event type, in the spec's order.
    pub const ALL: [EventType; 7] = [
        EventType::RecordCreated,
        EventType::RecordUpdated,
        EventType::RecordDeleted,
        EventType::AutomationTriggered,
        EventType::ActionExecuted,
        EventType::ConnectionEstablished,
        EventType::FormSubmitted,
    ];

    /// The spec's event type string (`record-created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RecordCreated => "record-created",
            EventType::RecordUpdated => "record-updated",
            EventType::RecordDeleted => "record-deleted",
            EventType::AutomationTriggered => "automation-triggered",
            EventType::ActionExecuted => "action-executed",
            EventType::ConnectionEstablished => "connection-established",
            EventType::FormSubmitted => "form-submitted",
        }
    }

    /// The event type of a spec string (`record-created`, …); `None` for any other string.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The Avro record's simple name.
    pub fn record_name(self) -> &'static str {
        match self {
            EventType::RecordCreated => "RecordCreated",
            EventType::RecordUpdated => "RecordUpdated",
            EventType::RecordDeleted => "RecordDeleted",
            EventType::AutomationTriggered => "AutomationTriggered",
            EventType::ActionExecuted => "ActionExecuted",
            EventType::ConnectionEstablished => "ConnectionEstablished",
            EventType::FormSubmitted => "FormSubmitted",
        }
    }

    /// `com.latechforce.events.<RecordName>`: the subject suffix.
    pub fn full_name(self) -> String {
        format!("{NAMESPACE}.{}", self.record_name())
    }

    /// The event type of an Avro record full name (`com.latechforce.events.RecordCreated`);
    /// `None` when the name is not one of ours.
    pub fn from_full_name(name: &str) -> Option<EventType> {
        let simple = name.strip_prefix(NAMESPACE)?.strip_prefix('.')?;
        EventType::ALL.into_iter().find(|e| e.record_name() == simple)
    }

    /// The aggregate whose topic carries this event type: `table` for record events,
    /// `automation` for automation-triggered and action-executed, `connection`, `form`.
    pub fn aggregate(self) -> AggregateType {
        match self {
            EventType::RecordCreated | EventType::RecordUpdated | EventType::RecordDeleted => AggregateType::Table,
            EventType::AutomationTriggered | EventType::ActionExecuted => AggregateType::Automation,
            EventType::ConnectionEstablished => AggregateType::Connection,
            EventType::FormSubmitted => AggregateType::Form,
        }
    }

    /// Record events carry `recordVersion` and use recordId as ordering key.
    pub fn is_record_event(self) -> bool {
        self.aggregate() == AggregateType::Table
    }

    /// The versions this build can write and read, oldest first.
    pub fn versions(self) -> Vec<i32> {
        SCHEMAS.iter().filter(|s| s.event_type == self).map(|s| s.version).collect()
    }

    /// The newest version: what producers write by default and readers resolve to.
    pub fn latest_version(self) -> i32 {
        self.versions().into_iter().max().unwrap_or(1)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `.avsc` file of the contract.
#[derive(Debug)]
pub struct SchemaDef {
    /// The event type this file is a schema of.
    pub event_type: EventType,
    /// Its schema version (the envelope's `version`), counted from 1.
    pub version: i32,
    /// File name under `schemas/avro/`.
    pub file: &'static str,
    /// The schema text as shipped.
    pub text: &'static str,
    parsed: OnceLock<Schema>,
    canonical: OnceLock<String>,
}

impl SchemaDef {
    const fn new(event_type: EventType, version: i32, file: &'static str, text: &'static str) -> Self {
        SchemaDef { event_type, version, file, text, parsed: OnceLock::new(), canonical: OnceLock::new() }
    }

    /// The parsed schema (parsed once; the embedded files are checked by a unit test).
    pub fn schema(&self) -> &Schema {
        self.parsed.get_or_init(|| {
            Schema::parse_str(self.text).unwrap_or_else(|e| panic!("embedded schema {} is invalid: {e}", self.file))
        })
    }

    /// The schema's Parsing Canonical Form (computed once): what fixes its binary layout.
    pub fn canonical_form(&self) -> &str {
        self.canonical.get_or_init(|| self.schema().canonical_form())
    }
}

macro_rules! avsc {
    ($ty:ident, $v:literal, $file:literal) => {
        SchemaDef::new(EventType::$ty, $v, $file, include_str!(concat!("../avro/", $file)))
    };
}

/// Every schema of the contract, in registration order (v1 before v2 of a subject).
pub static SCHEMAS: [SchemaDef; 8] = [
    avsc!(RecordCreated, 1, "record_created.v1.avsc"),
    avsc!(RecordCreated, 2, "record_created.v2.avsc"),
    avsc!(RecordUpdated, 1, "record_updated.v1.avsc"),
    avsc!(RecordDeleted, 1, "record_deleted.v1.avsc"),
    avsc!(AutomationTriggered, 1, "automation_triggered.v1.avsc"),
    avsc!(ActionExecuted, 1, "action_executed.v1.avsc"),
    avsc!(ConnectionEstablished, 1, "connection_established.v1.avsc"),
    avsc!(FormSubmitted, 1, "form_submitted.v1.avsc"),
];

/// The schema of `event_type` at `version`.
pub fn schema_def(event_type: EventType, version: i32) -> Result<&'static SchemaDef, SchemaError> {
    SCHEMAS.iter().find(|s| s.event_type == event_type && s.version == version).ok_or_else(|| SchemaError::UnsupportedVersion {
        event_type: event_type.as_str(),
        version,
        supported: event_type.versions(),
    })
}

/// The newest schema of `event_type`: the reader schema.
pub fn latest(event_type: EventType) -> &'static SchemaDef {
    SCHEMAS.iter().filter(|s| s.event_type == event_type).max_by_key(|s| s.version).expect("every event type has a schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::schema_compatibility::SchemaCompatibility;

    #[test]
    fn every_embedded_schema_parses_and_names_its_event_type() {
        for def in &SCHEMAS {
            let Schema::Record(rec) = def.schema() else { panic!("{} is not a record", def.file) };
            assert_eq!(rec.name.fullname(None), def.event_type.full_name(), "{}", def.file);
            assert!(rec.lookup.contains_key("eventId"));
            assert_eq!(rec.lookup.contains_key("recordVersion"), def.event_type.is_record_event());
        }
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(EventType::from_full_name(&t.full_name()), Some(t));
        }
    }

    #[test]
    fn record_created_v2_reads_v1_data_and_v1_reads_v2() {
        let v1 = schema_def(EventType::RecordCreated, 1).unwrap().schema();
        let v2 = schema_def(EventType::RecordCreated, 2).unwrap().schema();
        SchemaCompatibility::can_read(v1, v2).expect("v2 reader reads v1 data");
        SchemaCompatibility::can_read(v2, v1).expect("v1 reader reads v2 data");
        assert_eq!(EventType::RecordCreated.latest_version(), 2);
    }

    #[test]
    fn unknown_version_is_a_typed_error() {
        let err = schema_def(EventType::FormSubmitted, 7).unwrap_err();
        assert!(matches!(err, SchemaError::UnsupportedVersion { version: 7, .. }));
    }

    #[test]
    fn no_schema_is_recursive() {
        // Spark 3 and parquet readers fail on recursive types: no named type may
        // appear inside its own definition.
        fn walk(s: &Schema, stack: &mut Vec<String>) {
            match s {
                Schema::Record(r) => {
                    let n = r.name.fullname(None);
                    assert!(!stack.contains(&n), "recursive type {n}");
                    stack.push(n);
                    for f in &r.fields {
                        walk(&f.schema, stack);
                    }
                    stack.pop();
                }
                Schema::Ref { name } => assert!(!stack.contains(&name.fullname(None)), "recursive ref {name:?}"),
                Schema::Array(a) => walk(&a.items, stack),
                Schema::Map(m) => walk(&m.types, stack),
                Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, stack)),
                _ => {}
            }
        }
        for def in &SCHEMAS {
            walk(def.schema(), &mut Vec::new());
        }
    }
}
