//! What the `automation` fuzz target in `fuzz/` runs, callable from stable tests too: its
//! corpus under `fuzz/corpus/automation/` is replayed by `cargo test -p ltf-domain`
//! (`tests/fuzz_corpus.rs`). Pure functions only: no database, no network.

use ltf_schemas::examples::samples;
use serde_json::{json, Value as Json};

use crate::automations::{render, render_fields, render_json, trigger_data, ActionKind, Automation};

/// The `automation` target: a POST /automations body. Parses it as an [`Automation`] (as the
/// API does), checks that the definition as stored reads back equal, validates it, and for
/// every sample event evaluates the trigger and renders every templated string of every
/// action against the event's trigger data (plus one earlier step's data). Returns how many
/// templates rendered without a missing path.
///
/// Panics only on a bug: a definition that does not read back as it was stored.
pub fn automation(data: &[u8]) -> usize {
    let Ok(automation) = serde_json::from_slice::<Automation>(data) else { return 0 };
    let stored = serde_json::to_value(&automation).expect("an automation serializes");
    let back: Automation = serde_json::from_value(stored).expect("a stored automation reads back");
    assert_eq!(back, automation, "a stored automation reads back changed");
    if automation.validate().is_err() {
        return 0;
    }
    let mut rendered = 0;
    for event in samples() {
        let _ = automation.trigger.matches(&event.payload);
        let Some(fields) = trigger_data(&event.payload) else { continue };
        let mut data = Json::Object(fields);
        data["steps"] = json!({"first": {"recordId": "rec_2", "status": 200, "tags": ["a", {"b": null}]}});
        for action in &automation.actions {
            let results = match &action.kind {
                ActionKind::Webhook { body, .. } => vec![body.as_ref().map(|b| render_json(b, &data).is_ok()).unwrap_or(true)],
                ActionKind::Email { to, subject, body } => {
                    [to, subject, body].into_iter().map(|t| render(t, &data).is_ok()).collect()
                }
                ActionKind::CreateRecord { fields, .. } => vec![render_fields(fields, &data).is_ok()],
                ActionKind::UpdateRecord { record_id, fields, .. } => {
                    vec![render(record_id, &data).is_ok(), render_fields(fields, &data).is_ok()]
                }
                ActionKind::Notify { message, .. } => vec![render(message, &data).is_ok()],
            };
            rendered += results.into_iter().filter(|ok| *ok).count();
        }
    }
    rendered
}
