//! The trigger evaluator: a record or form event that matches an enabled automation
//! starts a run: the run's row and its AutomationTriggered, written with the event's
//! dedup record in one transaction.
//!
//! Loops are bounded: a run's depth is 1, or the depth of the run whose record action
//! wrote the triggering event + 1 (`ltf_automation_effects`). A run deeper than
//! `max_depth` is recorded as `failed` with `loop_detected` and runs no action (no
//! AutomationTriggered), so an automation writing to its own trigger table stops.

use std::sync::Arc;

use async_trait::async_trait;
use ltf_domain::automations::store::{self, NewRun};
use ltf_domain::automations::{trigger_data, TriggerEvent};
use ltf_schemas::{AutomationTriggered, EventCodec, EventPayload, EventType};
use metrics::counter;
use serde_json::Value as Json;

use super::emit;
use crate::metrics::{labels, AUTOMATION_RUNS_TOTAL};
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// Starts the runs an event triggers.
#[derive(Debug)]
pub struct TriggerHandler {
    codec: Arc<EventCodec>,
    max_depth: u32,
}

/// The error of a run refused for its depth; starts with the stable `loop_detected`.
fn loop_detected(depth: i32, max_depth: u32) -> String {
    format!("loop_detected: this run would be number {depth} of a chain of automations triggering each other; the limit is {max_depth}")
}

impl TriggerHandler {
    /// A handler writing events with `codec`, refusing runs deeper than `max_depth`.
    pub fn new(codec: Arc<EventCodec>, max_depth: u32) -> TriggerHandler {
        TriggerHandler { codec, max_depth }
    }
}

#[async_trait]
impl Handler for TriggerHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "triggers"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        TriggerEvent::of(event_type).is_some()
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let dedup = ctx.dedup_store()?;
        let payload = &event.event.payload;
        let (Some(trigger), Some(data)) = (TriggerEvent::of(event.event_type()), trigger_data(payload)) else { return Ok(()) };
        let scope = match payload {
            EventPayload::FormSubmitted(p) => p.form_id.as_str(),
            EventPayload::RecordCreated(p) => p.table_id.as_str(),
            EventPayload::RecordUpdated(p) => p.table_id.as_str(),
            EventPayload::RecordDeleted(p) => p.table_id.as_str(),
            _ => return Ok(()),
        };
        let candidates = store::triggered_by(&mut *dedup.pool().acquire().await?, trigger, scope).await?;
        let matching: Vec<_> = candidates.into_iter().filter(|a| a.trigger.matches(payload)).collect();
        if matching.is_empty() {
            return Ok(());
        }
        let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
        let depth = store::depth_of_writer(&mut tx, event.event_id()).await?.map_or(1, |d| d + 1);
        let too_deep = depth > i32::try_from(self.max_depth).unwrap_or(i32::MAX);
        let mut events = Vec::with_capacity(matching.len());
        for automation in &matching {
            let run_id = emit::run_id(event.event_id(), &automation.id);
            let trigger_data = Json::Object(data.clone());
            let run = NewRun {
                run_id,
                automation_id: &automation.id,
                source_event_id: event.event_id(),
                correlation_id: &event.event.envelope.correlation_id,
                trigger_data: &trigger_data,
                actions: &automation.actions,
                depth,
            };
            store::start_run(&mut tx, &run).await?;
            if too_deep {
                store::finish_run(&mut tx, run_id, "failed", Some(&loop_detected(depth, self.max_depth))).await?;
                continue;
            }
            events.push(emit::caused_by(
                event,
                emit::derived(run_id, "automation-triggered"),
                EventPayload::AutomationTriggered(AutomationTriggered {
                    automation_id: automation.id.clone(),
                    trigger_id: trigger.as_str().to_owned(),
                    trigger_data: data.clone().into(),
                    run_id: run_id.to_string(),
                }),
            ));
        }
        emit::append(&mut tx, &self.codec, event, events).await?;
        tx.commit().await?;
        if too_deep {
            tracing::warn!(
                depth,
                max_depth = self.max_depth,
                runs = matching.len(),
                "automation loop stopped: runs failed with loop_detected"
            );
            counter!(AUTOMATION_RUNS_TOTAL, labels::STATUS => "failed").increment(matching.len() as u64);
        } else {
            counter!(AUTOMATION_RUNS_TOTAL, labels::STATUS => "started").increment(matching.len() as u64);
        }
        Ok(())
    }
}
