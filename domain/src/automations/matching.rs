use ltf_schemas::{EventPayload, Fields};
use serde_json::{json, Value as Json};

use super::definition::{ConditionOp, Trigger, TriggerEvent};

/// What a run is started with, from the event that triggered it: `tableId`, `recordId`,
/// `recordVersion` and `fields` (for record-updated also `previousFields` and
/// `changedFields`; for record-deleted the deleted fields), or `formId`, `submissionId`,
/// `submittedBy` and `fields` (the submitted data). `None` for events that trigger nothing.
pub fn trigger_data(payload: &EventPayload) -> Option<Fields> {
    let v = match payload {
        EventPayload::RecordCreated(p) => json!({
            "tableId": p.table_id, "recordId": p.record_id, "recordVersion": p.record_version, "fields": p.fields,
        }),
        EventPayload::RecordUpdated(p) => json!({
            "tableId": p.table_id, "recordId": p.record_id, "recordVersion": p.record_version,
            "fields": p.current_fields, "previousFields": p.previous_fields, "changedFields": p.changed_fields,
        }),
        EventPayload::RecordDeleted(p) => json!({
            "tableId": p.table_id, "recordId": p.record_id, "recordVersion": p.record_version, "fields": p.deleted_fields,
        }),
        EventPayload::FormSubmitted(p) => json!({
            "formId": p.form_id, "submissionId": p.submission_id, "submittedBy": p.submitted_by, "fields": p.data,
        }),
        _ => return None,
    };
    match v {
        Json::Object(map) => Some(map),
        _ => None,
    }
}

impl Trigger {
    /// Whether an event with this payload starts the automation: same event type, same
    /// table or form, and every condition holds.
    pub fn matches(&self, payload: &EventPayload) -> bool {
        let Some(event) = TriggerEvent::of(payload.event_type()) else { return false };
        if event != self.event {
            return false;
        }
        let (scope, fields, changed): (&str, &Fields, &[String]) = match payload {
            EventPayload::RecordCreated(p) => (&p.table_id, &p.fields, &[]),
            EventPayload::RecordUpdated(p) => (&p.table_id, &p.current_fields, &p.changed_fields),
            EventPayload::RecordDeleted(p) => (&p.table_id, &p.deleted_fields, &[]),
            EventPayload::FormSubmitted(p) => (&p.form_id, &p.data, &[]),
            _ => return false,
        };
        let wanted = if event == TriggerEvent::FormSubmitted { &self.form_id } else { &self.table_id };
        if wanted.as_deref() != Some(scope) {
            return false;
        }
        self.conditions.iter().all(|c| {
            let value = fields.get(&c.field).filter(|v| !v.is_null());
            let changed = changed.iter().any(|f| f == &c.field);
            match c.op {
                ConditionOp::Equals => value.is_some() && value == c.value.as_ref(),
                ConditionOp::NotEquals => value.is_some() && value != c.value.as_ref(),
                ConditionOp::Exists => value.is_some(),
                ConditionOp::Changed => changed,
                ConditionOp::ChangedTo => changed && value.is_some() && value == c.value.as_ref(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltf_schemas::RecordUpdated;

    fn updated(changed: &[&str], status: &str) -> EventPayload {
        let mut current = Fields::new();
        current.insert("status".into(), json!(status));
        current.insert("email".into(), json!("a@example.com"));
        EventPayload::RecordUpdated(RecordUpdated {
            table_id: "tasks".into(),
            record_id: "r1".into(),
            record_version: 2,
            previous_fields: Fields::new().into(),
            current_fields: current.into(),
            changed_fields: changed.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn trigger(conditions: Json) -> Trigger {
        serde_json::from_value(json!({"event": "record-updated", "tableId": "tasks", "conditions": conditions})).unwrap()
    }

    #[test]
    fn changed_to_needs_the_change_and_the_value() {
        let t = trigger(json!([{"field": "status", "op": "changedTo", "value": "Done"}]));
        assert!(t.matches(&updated(&["status"], "Done")));
        assert!(!t.matches(&updated(&["email"], "Done")), "status not changed");
        assert!(!t.matches(&updated(&["status"], "Open")), "changed to something else");
    }

    #[test]
    fn conditions_all_hold_and_scope_must_match() {
        let t =
            trigger(json!([{"field": "email", "op": "changed"}, {"field": "status", "op": "notEquals", "value": "Archived"}]));
        assert!(t.matches(&updated(&["email"], "Open")));
        assert!(!t.matches(&updated(&["email"], "Archived")));
        assert!(!t.matches(&updated(&["status"], "Open")));
        let other: Trigger = serde_json::from_value(json!({"event": "record-updated", "tableId": "other"})).unwrap();
        assert!(!other.matches(&updated(&["email"], "Open")));
        let created: Trigger = serde_json::from_value(json!({"event": "record-created", "tableId": "tasks"})).unwrap();
        assert!(!created.matches(&updated(&["email"], "Open")));
        assert!(!trigger(json!([{"field": "missing", "op": "exists"}])).matches(&updated(&[], "x")));
    }

    #[test]
    fn trigger_data_of_an_update_has_the_change() {
        let data = trigger_data(&updated(&["status"], "Done")).unwrap();
        assert_eq!(data["recordId"], json!("r1"));
        assert_eq!(data["fields"]["status"], json!("Done"));
        assert_eq!(data["changedFields"], json!(["status"]));
    }
}
