//! Automations: stored definitions of "when this event matches, run these actions".
//!
//! A definition ([`Automation`]) is a [`Trigger`] (event type, table or form, conditions on
//! field values and on changedFields) and an ordered list of [`Action`]s. This module
//! holds the definitions, their validation, their evaluation against an event
//! ([`Trigger::matches`]), the `{{path}}` templates actions use, and the PostgreSQL store
//! of definitions and runs ([`store`]). The automation worker (ltf-consumers) executes
//! them.

mod definition;
mod matching;
pub mod store;
mod template;

pub use definition::{
    Action, ActionKind, Automation, Condition, ConditionOp, DefinitionError, NotifyChannel, Trigger, TriggerEvent,
};
pub use matching::trigger_data;
pub use store::{AutomationRun, RunStep};
pub use template::{render, render_fields, render_json, TemplateError};
