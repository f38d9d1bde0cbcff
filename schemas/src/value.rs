//! Conversions between the Rust event types and apache-avro `Value`s of our schemas.
//!
//! Written out by hand (rather than through serde) so unions, logical types and the
//! v1/v2 differences are explicit, and so decoding reports the field at fault.

use apache_avro::types::Value;

use crate::catalog::EventType;
use crate::event::{
    millis_to_time, ActionExecuted, ActionResult, AutomationTriggered, ConnectionEstablished, DomainEvent, Envelope,
    EventPayload, FormSubmitted, RecordCreated, RecordDeleted, RecordUpdated,
};
use crate::fields::{avro_to_fields, fields_to_avro, LazyFields};
use crate::SchemaError;

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn opt_s(v: &Option<String>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(x) => Value::Union(1, Box::new(s(x))),
    }
}

/// Refuses what the schema at `envelope.version` cannot carry.
pub(crate) fn check_encodable(event: &DomainEvent) -> Result<(), SchemaError> {
    if let EventPayload::RecordCreated(p) = &event.payload {
        if event.envelope.version == 1 && p.created_by.is_some() {
            return Err(SchemaError::InvalidEvent {
                event_id: event.envelope.event_id,
                event_type: event.event_type().as_str(),
                version: 1,
                reason: "createdBy exists only from version 2 on".into(),
            });
        }
    }
    Ok(())
}

/// The event as an apache-avro record of its schema at `envelope.version` (the reference
/// encoding the direct encoder is tested against).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn to_avro(event: &DomainEvent) -> Result<Value, SchemaError> {
    let env = &event.envelope;
    let ty = event.event_type();
    let mut f: Vec<(String, Value)> = Vec::with_capacity(11);
    let mut put = |k: &str, v: Value| f.push((k.to_owned(), v));
    put("eventId", Value::Uuid(env.event_id));
    put("aggregateType", s(ty.aggregate().as_str()));
    put("eventType", s(ty.as_str()));
    put("aggregateId", s(&env.aggregate_id));
    put("aggregateSequence", Value::Long(env.aggregate_sequence));
    put("occurredOn", Value::TimestampMillis(env.occurred_on.timestamp_millis()));
    put("version", Value::Int(env.version));
    put("correlationId", s(&env.correlation_id));
    put("causationId", opt_s(&env.causation_id));
    if let Some(v) = event.payload.record_version() {
        put("recordVersion", Value::Long(v));
    }
    let payload = match &event.payload {
        EventPayload::RecordCreated(p) => {
            let mut r = vec![
                ("tableId".into(), s(&p.table_id)),
                ("recordId".into(), s(&p.record_id)),
                ("fields".into(), fields_to_avro(&p.fields)),
            ];
            check_encodable(event)?;
            if env.version >= 2 {
                r.push(("createdBy".into(), opt_s(&p.created_by)));
            }
            r
        }
        EventPayload::RecordUpdated(p) => vec![
            ("tableId".into(), s(&p.table_id)),
            ("recordId".into(), s(&p.record_id)),
            ("previousFields".into(), fields_to_avro(&p.previous_fields)),
            ("currentFields".into(), fields_to_avro(&p.current_fields)),
            ("changedFields".into(), Value::Array(p.changed_fields.iter().map(|c| s(c)).collect())),
        ],
        EventPayload::RecordDeleted(p) => vec![
            ("tableId".into(), s(&p.table_id)),
            ("recordId".into(), s(&p.record_id)),
            ("deletedFields".into(), fields_to_avro(&p.deleted_fields)),
        ],
        EventPayload::AutomationTriggered(p) => vec![
            ("automationId".into(), s(&p.automation_id)),
            ("triggerId".into(), s(&p.trigger_id)),
            ("triggerData".into(), fields_to_avro(&p.trigger_data)),
            ("runId".into(), s(&p.run_id)),
        ],
        EventPayload::ActionExecuted(p) => vec![
            ("automationId".into(), s(&p.automation_id)),
            ("actionId".into(), s(&p.action_id)),
            ("runId".into(), s(&p.run_id)),
            (
                "result".into(),
                match p.result {
                    ActionResult::Success => Value::Enum(0, "success".into()),
                    ActionResult::Failure => Value::Enum(1, "failure".into()),
                },
            ),
            (
                "data".into(),
                match &p.data {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(d) => Value::Union(1, Box::new(fields_to_avro(d))),
                },
            ),
            ("error".into(), opt_s(&p.error)),
        ],
        EventPayload::ConnectionEstablished(p) => vec![
            ("connectionId".into(), s(&p.connection_id)),
            ("service".into(), s(&p.service)),
            ("userId".into(), s(&p.user_id)),
        ],
        EventPayload::FormSubmitted(p) => vec![
            ("formId".into(), s(&p.form_id)),
            ("submissionId".into(), s(&p.submission_id)),
            ("data".into(), fields_to_avro(&p.data)),
            ("submittedBy".into(), opt_s(&p.submitted_by)),
        ],
    };
    f.push(("payload".to_owned(), Value::Record(payload)));
    Ok(Value::Record(f))
}

/// Field access on a decoded record that names the field at fault.
struct Rec {
    ty: EventType,
    fields: Vec<(String, Value)>,
}

impl Rec {
    fn new(ty: EventType, v: Value, what: &str) -> Result<Rec, SchemaError> {
        match v {
            Value::Record(fields) => Ok(Rec { ty, fields }),
            _ => Err(SchemaError::Malformed { event_type: ty.as_str(), field: what.into() }),
        }
    }

    fn bad(&self, field: &str) -> SchemaError {
        SchemaError::Malformed { event_type: self.ty.as_str(), field: field.to_owned() }
    }

    fn take(&mut self, field: &str) -> Result<Value, SchemaError> {
        let i = self.fields.iter().position(|(k, _)| k == field).ok_or_else(|| self.bad(field))?;
        Ok(unwrap_union(self.fields.swap_remove(i).1))
    }

    fn string(&mut self, field: &str) -> Result<String, SchemaError> {
        match self.take(field)? {
            Value::String(x) => Ok(x),
            Value::Uuid(u) => Ok(u.to_string()),
            _ => Err(self.bad(field)),
        }
    }

    fn opt_string(&mut self, field: &str) -> Result<Option<String>, SchemaError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::String(x) => Ok(Some(x)),
            _ => Err(self.bad(field)),
        }
    }

    fn long(&mut self, field: &str) -> Result<i64, SchemaError> {
        match self.take(field)? {
            Value::Long(x) | Value::TimestampMillis(x) => Ok(x),
            Value::Int(x) => Ok(x.into()),
            _ => Err(self.bad(field)),
        }
    }

    fn fields(&mut self, field: &str) -> Result<LazyFields, SchemaError> {
        let v = self.take(field)?;
        avro_to_fields(v).map(LazyFields::from).ok_or_else(|| self.bad(field))
    }

    fn record(&mut self, field: &str) -> Result<Rec, SchemaError> {
        let v = self.take(field)?;
        Rec::new(self.ty, v, field)
    }
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

/// The envelope's `version` of a decoded record, before full decoding.
pub(crate) fn version_of(ty: EventType, v: &Value) -> Result<i32, SchemaError> {
    if let Value::Record(fields) = v {
        if let Some((_, Value::Int(n))) = fields.iter().find(|(k, _)| k == "version") {
            return Ok(*n);
        }
    }
    Err(SchemaError::Malformed { event_type: ty.as_str(), field: "version".into() })
}

/// A decoded (and reader-resolved) Avro record back to the event type `ty`.
pub(crate) fn from_avro(ty: EventType, v: Value) -> Result<DomainEvent, SchemaError> {
    let mut r = Rec::new(ty, v, "<root>")?;
    let event_id = match r.take("eventId")? {
        Value::Uuid(u) => u,
        Value::String(x) => x.parse().map_err(|_| r.bad("eventId"))?,
        _ => return Err(r.bad("eventId")),
    };
    let declared = r.string("eventType")?;
    if declared != ty.as_str() {
        return Err(r.bad("eventType"));
    }
    let version = match r.take("version")? {
        Value::Int(n) => n,
        _ => return Err(r.bad("version")),
    };
    let envelope = Envelope {
        event_id,
        aggregate_id: r.string("aggregateId")?,
        aggregate_sequence: r.long("aggregateSequence")?,
        occurred_on: millis_to_time(r.long("occurredOn")?),
        version,
        correlation_id: r.string("correlationId")?,
        causation_id: r.opt_string("causationId")?,
    };
    let record_version = if ty.is_record_event() { r.long("recordVersion")? } else { 0 };
    let mut p = r.record("payload")?;
    let payload = match ty {
        EventType::RecordCreated => EventPayload::RecordCreated(RecordCreated {
            table_id: p.string("tableId")?,
            record_id: p.string("recordId")?,
            record_version,
            fields: p.fields("fields")?,
            // Absent in v1 data read without resolution; resolution fills null.
            created_by: if p.fields.iter().any(|(k, _)| k == "createdBy") { p.opt_string("createdBy")? } else { None },
        }),
        EventType::RecordUpdated => EventPayload::RecordUpdated(RecordUpdated {
            table_id: p.string("tableId")?,
            record_id: p.string("recordId")?,
            record_version,
            previous_fields: p.fields("previousFields")?,
            current_fields: p.fields("currentFields")?,
            changed_fields: match p.take("changedFields")? {
                Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        Value::String(x) => Ok(x),
                        _ => Err(p.bad("changedFields")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(p.bad("changedFields")),
            },
        }),
        EventType::RecordDeleted => EventPayload::RecordDeleted(RecordDeleted {
            table_id: p.string("tableId")?,
            record_id: p.string("recordId")?,
            record_version,
            deleted_fields: p.fields("deletedFields")?,
        }),
        EventType::AutomationTriggered => EventPayload::AutomationTriggered(AutomationTriggered {
            automation_id: p.string("automationId")?,
            trigger_id: p.string("triggerId")?,
            trigger_data: p.fields("triggerData")?,
            run_id: p.string("runId")?,
        }),
        EventType::ActionExecuted => EventPayload::ActionExecuted(ActionExecuted {
            automation_id: p.string("automationId")?,
            action_id: p.string("actionId")?,
            run_id: p.string("runId")?,
            result: match p.take("result")? {
                Value::Enum(_, sym) if sym == "success" => ActionResult::Success,
                Value::Enum(_, sym) if sym == "failure" => ActionResult::Failure,
                _ => return Err(p.bad("result")),
            },
            data: match p.take("data")? {
                Value::Null => None,
                m => Some(avro_to_fields(m).ok_or_else(|| p.bad("data"))?.into()),
            },
            error: p.opt_string("error")?,
        }),
        EventType::ConnectionEstablished => EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: p.string("connectionId")?,
            service: p.string("service")?,
            user_id: p.string("userId")?,
        }),
        EventType::FormSubmitted => EventPayload::FormSubmitted(FormSubmitted {
            form_id: p.string("formId")?,
            submission_id: p.string("submissionId")?,
            data: p.fields("data")?,
            submitted_by: p.opt_string("submittedBy")?,
        }),
    };
    Ok(DomainEvent { envelope, payload })
}
