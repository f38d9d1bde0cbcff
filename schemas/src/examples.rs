//! Example events of every type and version: documentation, contract tests, and the
//! cross-language decoding check.

use serde_json::json;

use crate::event::*;
use crate::fields::LazyFields;

fn fields(v: serde_json::Value) -> LazyFields {
    v.as_object().cloned().map(LazyFields::from).unwrap()
}

/// One event of every type and version (RecordCreated v1 and v2, both ActionExecuted
/// results), with every kind of field value.
pub fn samples() -> Vec<DomainEvent> {
    let f = fields(json!({"name": "Ada", "age": 36, "tags": ["a", {"b": 1}], "score": 9.5, "x": null}));
    let created = |by: Option<&str>| {
        EventPayload::RecordCreated(RecordCreated {
            table_id: "tbl_1".into(),
            record_id: "rec_1".into(),
            record_version: 1,
            fields: f.clone(),
            created_by: by.map(Into::into),
        })
    };
    let first = DomainEvent::new(created(None)).with_version(1).with_sequence(1);
    vec![
        first.clone(),
        DomainEvent::new(created(Some("user_9"))).with_sequence(2).caused_by(&first),
        DomainEvent::new(EventPayload::RecordUpdated(RecordUpdated {
            table_id: "tbl_1".into(),
            record_id: "rec_1".into(),
            record_version: 2,
            previous_fields: f.clone(),
            current_fields: fields(json!({"name": "Ada L.", "age": 36})),
            changed_fields: vec!["name".into()],
        })),
        DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
            table_id: "tbl_1".into(),
            record_id: "rec_1".into(),
            record_version: 3,
            deleted_fields: f.clone(),
        })),
        DomainEvent::new(EventPayload::AutomationTriggered(AutomationTriggered {
            automation_id: "auto_1".into(),
            trigger_id: "trg_1".into(),
            trigger_data: f.clone(),
            run_id: "run_1".into(),
        })),
        DomainEvent::new(EventPayload::ActionExecuted(ActionExecuted {
            automation_id: "auto_1".into(),
            action_id: "act_1".into(),
            run_id: "run_1".into(),
            result: ActionResult::Success,
            data: Some(f.clone()),
            error: None,
        })),
        DomainEvent::new(EventPayload::ActionExecuted(ActionExecuted {
            automation_id: "auto_1".into(),
            action_id: "act_2".into(),
            run_id: "run_1".into(),
            result: ActionResult::Failure,
            data: None,
            error: Some("timeout".into()),
        })),
        DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: "conn_1".into(),
            service: "github".into(),
            user_id: "user_9".into(),
        })),
        DomainEvent::new(EventPayload::FormSubmitted(FormSubmitted {
            form_id: "form_1".into(),
            submission_id: "sub_1".into(),
            data: f,
            submitted_by: None,
        })),
    ]
}
