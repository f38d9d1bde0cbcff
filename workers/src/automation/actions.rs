//! The action executor and run tracker. A run advances by events:
//! AutomationTriggered executes the first action; each action's ActionExecuted is written
//! with the step's row and the dedup record of the event that caused it, in one
//! transaction; a successful ActionExecuted executes the next action, or ends the run as
//! succeeded after the last; a failed one ends the run as failed.
//!
//! External calls (webhook, email, notify) happen before that transaction, carrying the
//! idempotency key `<runId>:<actionId>`: a crash between the call and the commit repeats
//! the call with the same key. Record actions run their use case inside the transaction,
//! so they happen exactly once.
//!
//! Every external call goes through its dependency's circuit breaker
//! ([`HandlerContext::dependency`]: `webhook:<host>:<port>`, `smtp`), which bounds the
//! calls to it at once and refuses them while its circuit is open. A failure of the
//! dependency (refused, timed out, 5xx, 408, 429, circuit open) is returned to the runtime,
//! which parks the event without using an attempt, until the worker's `max_park`
//! (default 15 min): then the step is recorded as failed with `dependency_unavailable`
//! and the run ends `failed`, a run outcome, not a dead letter. Other retryable failures
//! are retried until the last attempt, which records the action as failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ltf_domain::automations::store::{self, NewStep, RunState};
use ltf_domain::automations::{render, render_fields, render_json, Action, ActionKind, NotifyChannel};
use ltf_domain::usecases::{CreateRecord, CreateRecordInput, RecordPatch, UpdateRecord, UpdateRecordInput, UseCase};
use ltf_schemas::{ActionExecuted, ActionResult, EventCodec, EventPayload, EventType, Fields};
use metrics::{counter, histogram};
use serde_json::{json, Value as Json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::effects::{EffectError, Webhooks, SMTP};
use super::{emit, Effects};
use crate::metrics::{labels, AUTOMATION_ACTIONS_TOTAL, AUTOMATION_ACTION_SECONDS, AUTOMATION_RUNS_TOTAL};
use ltf_consumers::ErrorClass;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// Executes actions and tracks runs.
#[derive(Debug)]
pub struct ActionHandler {
    codec: Arc<EventCodec>,
    effects: Arc<Effects>,
}

impl ActionHandler {
    /// A handler with the worker's effects.
    pub fn new(codec: Arc<EventCodec>, effects: Arc<Effects>) -> ActionHandler {
        ActionHandler { codec, effects }
    }
}

/// A run as stored: what its actions need.
struct Run {
    id: Uuid,
    automation_id: String,
    trigger_data: Json,
    actions: Vec<Action>,
    steps: Fields,
}

async fn load_run(pool: &PgPool, id: Uuid) -> Result<Run, HandlerError> {
    let Some(state) = store::run_state(&mut *pool.acquire().await?, id).await? else {
        return Err(HandlerError::permanent(ErrorClass::UnknownRun, format!("run {id} is not in the run tracker")));
    };
    let RunState { automation_id, trigger_data, actions, steps } = state;
    Ok(Run { id, automation_id, trigger_data, actions, steps: steps.into_iter().collect() })
}

fn parse_run_id(s: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(s).map_err(|_| HandlerError::permanent(ErrorClass::BadRunId, format!("runId {s:?} is not a UUID")))
}

impl Run {
    /// What templates see: the trigger data plus `runId`, `automationId` and `steps`.
    fn template_data(&self) -> Json {
        let mut data = match &self.trigger_data {
            Json::Object(m) => m.clone(),
            _ => Fields::new(),
        };
        data.insert("runId".into(), json!(self.id.to_string()));
        data.insert("automationId".into(), json!(self.automation_id));
        data.insert("steps".into(), Json::Object(self.steps.clone()));
        Json::Object(data)
    }
}

#[async_trait]
impl Handler for ActionHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "actions"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        matches!(event_type, EventType::AutomationTriggered | EventType::ActionExecuted)
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let dedup = ctx.dedup_store()?;
        match &event.event.payload {
            EventPayload::AutomationTriggered(p) => {
                let run = load_run(dedup.pool(), parse_run_id(&p.run_id)?).await?;
                self.execute(ctx, event, run, 0).await
            }
            EventPayload::ActionExecuted(p) => {
                let run_id = parse_run_id(&p.run_id)?;
                if p.result == ActionResult::Failure {
                    return self.finish(ctx, event, run_id, "failed", p.error.as_deref()).await;
                }
                let run = load_run(dedup.pool(), run_id).await?;
                let Some(done) = run.actions.iter().position(|a| a.id == p.action_id) else {
                    return Err(HandlerError::permanent(
                        ErrorClass::UnknownAction,
                        format!("run {run_id} has no action {:?}", p.action_id),
                    ));
                };
                if done + 1 < run.actions.len() {
                    self.execute(ctx, event, run, done + 1).await
                } else {
                    self.finish(ctx, event, run_id, "succeeded", None).await
                }
            }
            _ => Ok(()),
        }
    }
}

impl ActionHandler {
    /// Ends a run (once: a replayed ending changes nothing).
    async fn finish(
        &self,
        ctx: &HandlerContext,
        event: &Event,
        run_id: Uuid,
        status: &'static str,
        error: Option<&str>,
    ) -> Result<(), HandlerError> {
        let Some(mut tx) = ctx.dedup_store()?.begin(ctx, event).await? else { return Ok(()) };
        let ended = store::finish_run(&mut tx, run_id, status, error).await?;
        tx.commit().await?;
        if ended {
            counter!(AUTOMATION_RUNS_TOTAL, labels::STATUS => status).increment(1);
        }
        Ok(())
    }

    /// Executes action `position` of `run`, caused by `event`, and records it.
    async fn execute(&self, ctx: &HandlerContext, event: &Event, run: Run, position: usize) -> Result<(), HandlerError> {
        // The pipeline skipped this event if it was processed already; `begin` below
        // decides a concurrent delivery.
        let dedup = ctx.dedup_store()?;
        let action = run.actions[position].clone();
        let data = run.template_data();
        let key = format!("{}:{}", run.id, action.id);
        let started = Instant::now();
        let mut external = match &action.kind {
            ActionKind::CreateRecord { .. } | ActionKind::UpdateRecord { .. } => None,
            kind => Some(self.call(ctx, kind, &data, &key, emit::traceparent(event).as_deref()).await),
        };
        if let Some(Err(e)) = &mut external {
            match &e.dependency {
                // The dependency's failure: parked by the runtime, until `max_park`.
                Some(d) if !ctx.park_expired() => {
                    return Err(HandlerError::retryable(ErrorClass::ActionFailed, &e).from_dependency(d.clone()))
                }
                Some(d) => {
                    e.message = format!("{}: {d} stayed unavailable ({})", ErrorClass::DependencyUnavailable, e.message);
                }
                None if e.retryable && !ctx.is_last_attempt() => {
                    return Err(HandlerError::retryable(ErrorClass::ActionFailed, &e));
                }
                None => {}
            }
        }
        let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
        let result: Result<Fields, String> = match external {
            Some(r) => r.map_err(|e| e.message),
            None => self.record_action(&mut tx, event, run.id, &action, &data).await?,
        };
        let action_type = action.kind.type_name();
        histogram!(AUTOMATION_ACTION_SECONDS, labels::ACTION_TYPE => action_type).record(started.elapsed().as_secs_f64());
        let (result_kind, step_data, error) = match result {
            Ok(d) => (ActionResult::Success, Some(d), None),
            Err(e) => (ActionResult::Failure, None, Some(e)),
        };
        let result_name = match result_kind {
            ActionResult::Success => "success",
            ActionResult::Failure => "failure",
        };
        let step = NewStep {
            run_id: run.id,
            position: position as i32,
            action_id: &action.id,
            action_type,
            result: result_name,
            data: step_data.clone().map(Json::Object),
            error: error.as_deref(),
            attempts: ctx.attempt as i32,
        };
        store::record_step(&mut tx, &step).await?;
        let executed = emit::caused_by(
            event,
            emit::derived(run.id, &format!("action-executed/{position}")),
            EventPayload::ActionExecuted(ActionExecuted {
                automation_id: run.automation_id.clone(),
                action_id: action.id.clone(),
                run_id: run.id.to_string(),
                result: result_kind,
                data: step_data.map(Into::into),
                error,
            }),
        );
        emit::append(&mut tx, &self.codec, event, vec![executed]).await?;
        tx.commit().await?;
        counter!(AUTOMATION_ACTIONS_TOTAL, labels::ACTION_TYPE => action_type, labels::RESULT => result_name).increment(1);
        Ok(())
    }

    /// Performs an external action (webhook, email, notify) through its dependency's
    /// circuit breaker: admitted (or refused while the circuit is open), then reported.
    async fn call(
        &self,
        ctx: &HandlerContext,
        kind: &ActionKind,
        data: &Json,
        key: &str,
        traceparent: Option<&str>,
    ) -> Result<Fields, EffectError> {
        let text = |t: &str| -> Result<String, EffectError> {
            match render(t, data).map_err(EffectError::permanent)? {
                Json::String(s) => Ok(s),
                other => Ok(other.to_string()),
            }
        };
        let dependency = match kind {
            ActionKind::Webhook { url, .. } => text(url).ok().and_then(|u| Webhooks::dependency_of(&u)),
            ActionKind::Email { .. } => Some(SMTP.to_owned()),
            ActionKind::Notify { channel, .. } => self.effects.notify_dependency(*channel),
            ActionKind::CreateRecord { .. } | ActionKind::UpdateRecord { .. } => None,
        };
        let Some(dependency) = dependency else { return self.perform(kind, data, key, traceparent, text).await };
        let admitted = ctx.dependency(&dependency).await.map_err(|e| EffectError::transient(&dependency, e.message))?;
        let result = self.perform(kind, data, key, traceparent, text).await;
        admitted.finish(!matches!(&result, Err(e) if e.dependency.is_some()));
        result
    }

    /// The external call itself.
    async fn perform(
        &self,
        kind: &ActionKind,
        data: &Json,
        key: &str,
        traceparent: Option<&str>,
        text: impl Fn(&str) -> Result<String, EffectError>,
    ) -> Result<Fields, EffectError> {
        match kind {
            ActionKind::Webhook { url, body, timeout_ms } => {
                let body = match body {
                    Some(b) => render_json(b, data).map_err(EffectError::permanent)?,
                    None => data.clone(),
                };
                self.effects.webhooks.post(&text(url)?, &body, key, timeout_ms.map(Duration::from_millis), traceparent).await
            }
            ActionKind::Email { to, subject, body } => {
                let mailer = self
                    .effects
                    .mailer
                    .as_ref()
                    .ok_or_else(|| EffectError::permanent("no SMTP server is configured (smtp_url)"))?;
                mailer.send(&text(to)?, &text(subject)?, &text(body)?, key).await
            }
            ActionKind::Notify { message, channel } => {
                let message = text(message)?;
                self.effects.notify(*channel, &message, data, key, traceparent).await
            }
            ActionKind::CreateRecord { .. } | ActionKind::UpdateRecord { .. } => {
                Err(EffectError::permanent("not an external action"))
            }
        }
    }

    /// Runs a record action's use case inside the dedup transaction. `Ok(Err(..))` is the
    /// action's failure (a refused use case, a template naming nothing); `Err` a failure
    /// to retry.
    async fn record_action(
        &self,
        conn: &mut PgConnection,
        event: &Event,
        run_id: Uuid,
        action: &Action,
        data: &Json,
    ) -> Result<Result<Fields, String>, HandlerError> {
        let uc_ctx = emit::use_case_context(event, "actions", &action.id);
        let outcome = match &action.kind {
            ActionKind::CreateRecord { table_id, fields } => {
                let fields = match render_fields(fields, data) {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                CreateRecord
                    .execute(conn, &self.codec, &uc_ctx, CreateRecordInput { table_id: table_id.clone(), fields })
                    .await
                    .map(|o| (o.value, o.events))
            }
            ActionKind::UpdateRecord { table_id, record_id, fields } => {
                let (record_id, fields) = match (render(record_id, data), render_fields(fields, data)) {
                    (Ok(id), Ok(f)) => (id, f),
                    (Err(e), _) | (_, Err(e)) => return Ok(Err(e.to_string())),
                };
                let record_id = match record_id {
                    Json::String(s) => s,
                    Json::Array(ids) if ids.len() == 1 && ids[0].is_string() => ids[0].as_str().unwrap_or_default().to_owned(),
                    other => return Ok(Err(format!("recordId must name one record, got {other}"))),
                };
                let patch = RecordPatch { record_id, fields, expected_version: None };
                UpdateRecord
                    .execute(conn, &self.codec, &uc_ctx, UpdateRecordInput { table_id: table_id.clone(), patch })
                    .await
                    .map(|o| (o.value, o.events))
            }
            _ => return Ok(Err("not a record action".into())),
        };
        match outcome {
            Ok((record, events)) => {
                // The events this run wrote: a run they trigger is one level deeper.
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id()).collect();
                store::record_effects(conn, run_id, &ids).await?;
                let mut d = Fields::new();
                d.insert("recordId".into(), json!(record.id));
                d.insert("tableId".into(), json!(record.table_id));
                d.insert("recordVersion".into(), json!(record.version));
                Ok(Ok(d))
            }
            Err(e) if e.is_retryable() => Err(emit::use_case_error(e)),
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}

impl super::Effects {
    /// The dependency a notify action through `channel` calls, if any is configured.
    pub(crate) fn notify_dependency(&self, channel: Option<NotifyChannel>) -> Option<String> {
        match channel.or(self.notify.default_channel)? {
            NotifyChannel::Webhook => self.notify.webhook_url.as_deref().and_then(Webhooks::dependency_of),
            NotifyChannel::Email => Some(SMTP.to_owned()),
        }
    }

    /// Delivers a notify action's message through `channel` (default: the configured
    /// default channel).
    pub(crate) async fn notify(
        &self,
        channel: Option<NotifyChannel>,
        message: &str,
        data: &Json,
        key: &str,
        traceparent: Option<&str>,
    ) -> Result<Fields, EffectError> {
        let channel = channel
            .or(self.notify.default_channel)
            .ok_or_else(|| EffectError::permanent("no notification channel is configured"))?;
        let mut out = match channel {
            NotifyChannel::Webhook => {
                let url = self
                    .notify
                    .webhook_url
                    .as_deref()
                    .ok_or_else(|| EffectError::permanent("no notification webhook is configured"))?;
                let body = json!({"message": message, "runId": data["runId"], "automationId": data["automationId"]});
                self.webhooks.post(url, &body, key, None, traceparent).await?
            }
            NotifyChannel::Email => {
                let to = self
                    .notify
                    .email_to
                    .as_deref()
                    .ok_or_else(|| EffectError::permanent("no notification recipient is configured"))?;
                let mailer =
                    self.mailer.as_ref().ok_or_else(|| EffectError::permanent("no SMTP server is configured (smtp_url)"))?;
                mailer.send(to, "LaTeChforce notification", message, key).await?
            }
        };
        out.insert(
            "channel".into(),
            json!(match channel {
                NotifyChannel::Webhook => "webhook",
                NotifyChannel::Email => "email",
            }),
        );
        Ok(out)
    }
}
