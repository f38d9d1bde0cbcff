use std::collections::BTreeSet;

use ltf_schemas::{EventType, Fields};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use thiserror::Error;

use crate::usecases::definitions::MAX_NAME_CHARS;

/// Most actions one automation may have.
pub const MAX_ACTIONS: usize = 20;
/// Longest webhook timeout a definition may ask for.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// An automation definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Automation {
    /// Its id; the aggregateId of its AutomationTriggered and ActionExecuted events.
    pub id: String,
    /// Display name.
    pub name: String,
    /// A disabled automation is stored but never triggered.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// When it runs.
    pub trigger: Trigger,
    /// What it does, in order; a run stops at the first failed action.
    pub actions: Vec<Action>,
}

fn enabled_default() -> bool {
    true
}

/// The event types an automation can be triggered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TriggerEvent {
    /// A record of `tableId` was created.
    RecordCreated,
    /// A record of `tableId` was updated.
    RecordUpdated,
    /// A record of `tableId` was deleted.
    RecordDeleted,
    /// A form (`formId`) was submitted.
    FormSubmitted,
}

impl TriggerEvent {
    /// The event type string (`record-updated`).
    pub fn as_str(self) -> &'static str {
        self.event_type().as_str()
    }

    /// The contract's event type.
    pub fn event_type(self) -> EventType {
        match self {
            TriggerEvent::RecordCreated => EventType::RecordCreated,
            TriggerEvent::RecordUpdated => EventType::RecordUpdated,
            TriggerEvent::RecordDeleted => EventType::RecordDeleted,
            TriggerEvent::FormSubmitted => EventType::FormSubmitted,
        }
    }

    /// The trigger event of `event_type`, if automations can be triggered by it.
    pub fn of(event_type: EventType) -> Option<TriggerEvent> {
        Some(match event_type {
            EventType::RecordCreated => TriggerEvent::RecordCreated,
            EventType::RecordUpdated => TriggerEvent::RecordUpdated,
            EventType::RecordDeleted => TriggerEvent::RecordDeleted,
            EventType::FormSubmitted => TriggerEvent::FormSubmitted,
            _ => return None,
        })
    }
}

/// When an automation runs: an event of type `event` of table `tableId` (record events)
/// or form `formId` (form-submitted) for which every condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// The event type.
    pub event: TriggerEvent,
    /// The table, for record events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_id: Option<String>,
    /// The form, for form-submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// All must hold (none: every event of the table or form).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A condition on one field of the event's record (current fields; deleted fields for
/// record-deleted) or submission data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The field name.
    pub field: String,
    /// The test.
    pub op: ConditionOp,
    /// The value compared with (`equals`, `notEquals`, `changedTo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Option<Json>,
}

/// How a [`Condition`] tests its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum ConditionOp {
    /// The field equals `value`.
    Equals,
    /// The field does not equal `value` (a missing field is not equal).
    NotEquals,
    /// The field has a non-null value.
    Exists,
    /// The field is among changedFields (record-updated only).
    Changed,
    /// The field is among changedFields and now equals `value` (record-updated only), e.g.
    /// "status changed to Done".
    ChangedTo,
}

/// One step of an automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Its id, unique in the automation: ActionExecuted's actionId.
    pub id: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: ActionKind,
}

/// The kinds of action. String values may hold `{{path}}` templates, filled from the run's
/// trigger data (`{{fields.email}}`, `{{recordId}}`) and earlier steps' data
/// (`{{steps.<actionId>.recordId}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionKind {
    /// HTTP POST of a JSON body with an `Idempotency-Key` header.
    Webhook {
        /// http or https URL.
        url: String,
        /// The JSON body (templated); default: the run's trigger data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        body: Option<Json>,
        /// Per-call timeout (default the worker's).
        #[serde(default, rename = "timeoutMs", skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// An email over SMTP with the same idempotency key as a header.
    Email {
        /// Recipient address (templated).
        to: String,
        /// Subject (templated).
        subject: String,
        /// Plain-text body (templated).
        body: String,
    },
    /// Creates a record through the CreateRecord use case.
    CreateRecord {
        /// The table.
        #[serde(rename = "tableId")]
        table_id: String,
        /// Its fields (templated).
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        fields: Fields,
    },
    /// Updates a record through the UpdateRecord use case.
    UpdateRecord {
        /// The table.
        #[serde(rename = "tableId")]
        table_id: String,
        /// The record (templated, e.g. `{{fields.contact}}`).
        #[serde(rename = "recordId")]
        record_id: String,
        /// The fields to set (templated).
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        fields: Fields,
    },
    /// A message delivered by the worker's notification channel.
    Notify {
        /// The message (templated).
        message: String,
        /// Which channel (default: the worker's configured default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<NotifyChannel>,
    },
}

impl ActionKind {
    /// The action type string (`webhook`).
    pub fn type_name(&self) -> &'static str {
        match self {
            ActionKind::Webhook { .. } => "webhook",
            ActionKind::Email { .. } => "email",
            ActionKind::CreateRecord { .. } => "create_record",
            ActionKind::UpdateRecord { .. } => "update_record",
            ActionKind::Notify { .. } => "notify",
        }
    }
}

/// Where a notify action's message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotifyChannel {
    /// The worker's notification webhook.
    Webhook,
    /// The worker's notification email recipient.
    Email,
}

/// Why a definition is refused; names the bad key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid automation: {key}: {reason}")]
pub struct DefinitionError {
    /// The offending key, e.g. `actions[1].url`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(key: impl Into<String>, reason: impl Into<String>) -> DefinitionError {
    DefinitionError { key: key.into(), reason: reason.into() }
}

fn check_name(key: &str, value: &str) -> Result<(), DefinitionError> {
    if value.trim().is_empty() {
        return Err(bad(key, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(bad(key, format!("must be at most {MAX_NAME_CHARS} characters")));
    }
    Ok(())
}

impl Automation {
    /// Checks everything that can be checked without the database (tables and forms are
    /// checked by the store).
    pub fn validate(&self) -> Result<(), DefinitionError> {
        check_name("id", &self.id)?;
        check_name("name", &self.name)?;
        self.trigger.validate()?;
        if self.actions.is_empty() {
            return Err(bad("actions", "must hold at least one action"));
        }
        if self.actions.len() > MAX_ACTIONS {
            return Err(bad("actions", format!("must hold at most {MAX_ACTIONS} actions")));
        }
        let mut ids = BTreeSet::new();
        for (i, action) in self.actions.iter().enumerate() {
            let key = |k: &str| format!("actions[{i}].{k}");
            check_name(&key("id"), &action.id)?;
            if !ids.insert(action.id.as_str()) {
                return Err(bad(key("id"), format!("duplicate action id {:?}", action.id)));
            }
            match &action.kind {
                ActionKind::Webhook { url, timeout_ms, .. } => {
                    let parsed = reqwest::Url::parse(url).map_err(|e| bad(key("url"), e.to_string()))?;
                    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                        return Err(bad(key("url"), "must be an http or https URL with a host"));
                    }
                    if matches!(timeout_ms, Some(t) if *t == 0 || *t > MAX_TIMEOUT_MS) {
                        return Err(bad(key("timeoutMs"), format!("must be between 1 and {MAX_TIMEOUT_MS}")));
                    }
                }
                ActionKind::Email { to, subject, .. } => {
                    if !to.contains("{{") && !to.contains('@') {
                        return Err(bad(key("to"), "must be an email address or a template"));
                    }
                    check_name(&key("subject"), subject)?;
                }
                ActionKind::CreateRecord { table_id, .. } => check_name(&key("tableId"), table_id)?,
                ActionKind::UpdateRecord { table_id, record_id, .. } => {
                    check_name(&key("tableId"), table_id)?;
                    check_name(&key("recordId"), record_id)?;
                }
                ActionKind::Notify { message, .. } => check_name(&key("message"), message)?,
            }
        }
        Ok(())
    }

    /// The index of action `id`.
    pub fn position(actions: &[Action], id: &str) -> Option<usize> {
        actions.iter().position(|a| a.id == id)
    }
}

impl Trigger {
    fn validate(&self) -> Result<(), DefinitionError> {
        match self.event {
            TriggerEvent::FormSubmitted => {
                if self.form_id.is_none() {
                    return Err(bad("trigger.formId", "is required for form-submitted"));
                }
                if self.table_id.is_some() {
                    return Err(bad("trigger.tableId", "is only for record events"));
                }
            }
            _ => {
                if self.table_id.is_none() {
                    return Err(bad("trigger.tableId", format!("is required for {}", self.event.as_str())));
                }
                if self.form_id.is_some() {
                    return Err(bad("trigger.formId", "is only for form-submitted"));
                }
            }
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let key = |k: &str| format!("trigger.conditions[{i}].{k}");
            check_name(&key("field"), &c.field)?;
            let needs_value = matches!(c.op, ConditionOp::Equals | ConditionOp::NotEquals | ConditionOp::ChangedTo);
            if needs_value && c.value.is_none() {
                return Err(bad(key("value"), "is required for this op"));
            }
            if !needs_value && c.value.is_some() {
                return Err(bad(key("value"), "is not used by this op"));
            }
            if matches!(c.op, ConditionOp::Changed | ConditionOp::ChangedTo) && self.event != TriggerEvent::RecordUpdated {
                return Err(bad(key("op"), "changed and changedTo apply to record-updated only"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Json) -> Automation {
        serde_json::from_value(v).unwrap()
    }

    fn valid() -> Json {
        json!({
            "id": "auto_1", "name": "Notify on done",
            "trigger": {"event": "record-updated", "tableId": "tasks",
                        "conditions": [{"field": "status", "op": "changedTo", "value": "Done"}]},
            "actions": [
                {"id": "hook", "type": "webhook", "url": "https://example.com/hook", "timeoutMs": 2000},
                {"id": "mail", "type": "email", "to": "{{fields.owner}}", "subject": "Done", "body": "{{fields.title}}"}
            ]
        })
    }

    #[test]
    fn a_valid_definition_round_trips() {
        let a = parse(valid());
        a.validate().unwrap();
        assert!(a.enabled);
        assert_eq!(a.actions[1].kind.type_name(), "email");
        assert_eq!(serde_json::from_value::<Automation>(serde_json::to_value(&a).unwrap()).unwrap(), a);
    }

    #[test]
    fn invalid_definitions_name_the_bad_key() {
        let cases = [
            ("/actions", json!([]), "actions"),
            ("/actions/0/url", json!("ftp://x"), "actions[0].url"),
            ("/actions/0/timeoutMs", json!(0), "actions[0].timeoutMs"),
            ("/actions/1/id", json!("hook"), "actions[1].id"),
            ("/trigger/tableId", json!(null), "trigger.tableId"),
            ("/trigger/conditions/0/value", json!(null), "trigger.conditions[0].value"),
        ];
        for (pointer, value, key) in cases {
            let mut v = valid();
            *v.pointer_mut(pointer).unwrap() = value;
            let a: Automation = serde_json::from_value(v).unwrap();
            assert_eq!(a.validate().unwrap_err().key, key, "{pointer}");
        }
        let mut v = valid();
        v["trigger"] = json!({"event": "record-created", "tableId": "t", "conditions": [{"field": "s", "op": "changed"}]});
        assert_eq!(parse(v).validate().unwrap_err().key, "trigger.conditions[0].op");
        let mut v = valid();
        v["actions"][0]["type"] = json!("teleport");
        assert!(serde_json::from_value::<Automation>(v).is_err());
    }
}
