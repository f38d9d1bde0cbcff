//! The automation tables: definitions (`ltf_automations`), runs
//! (`ltf_automation_runs`, with their depth in a chain of automations), their steps
//! (`ltf_automation_steps`) and the events their record actions wrote
//! (`ltf_automation_effects`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;
use sqlx::types::Json as Jsonb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::definition::{Action, Automation, Trigger, TriggerEvent};

type Row = (String, String, bool, Jsonb<Trigger>, Jsonb<Vec<Action>>);

fn automation((id, name, enabled, Jsonb(trigger), Jsonb(actions)): Row) -> Automation {
    Automation { id, name, enabled, trigger, actions }
}

const COLUMNS: &str = "id, name, enabled, trigger, actions";

/// Inserts a validated definition.
pub async fn insert(conn: &mut PgConnection, a: &Automation) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO ltf_automations (id, name, enabled, trigger, actions) VALUES ($1, $2, $3, $4, $5)")
        .bind(&a.id)
        .bind(&a.name)
        .bind(a.enabled)
        .bind(Jsonb(&a.trigger))
        .bind(Jsonb(&a.actions))
        .execute(conn)
        .await?;
    Ok(())
}

/// The automation `id`.
pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<Automation>, sqlx::Error> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM ltf_automations WHERE id = $1")).bind(id).fetch_optional(conn).await?;
    Ok(row.map(automation))
}

/// Every automation, by id.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Automation>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM ltf_automations ORDER BY id")).fetch_all(conn).await?;
    Ok(rows.into_iter().map(automation).collect())
}

/// Enables or disables `id`; false when there is no such automation.
pub async fn set_enabled(conn: &mut PgConnection, id: &str, enabled: bool) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE ltf_automations SET enabled = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(enabled)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The enabled automations triggered by `event` on table or form `scope`, by id.
pub async fn triggered_by(conn: &mut PgConnection, event: TriggerEvent, scope: &str) -> Result<Vec<Automation>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ltf_automations
         WHERE enabled AND trigger->>'event' = $1 AND coalesce(trigger->>'tableId', trigger->>'formId') = $2
         ORDER BY id"
    ))
    .bind(event.as_str())
    .bind(scope)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(automation).collect())
}

/// One run of an automation, with its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AutomationRun {
    /// The run id (UUIDv5 of the source eventId and the automation id).
    pub run_id: Uuid,
    /// The automation.
    pub automation_id: String,
    /// The event that triggered it.
    pub source_event_id: Uuid,
    /// The flow's correlation id.
    pub correlation_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// What the trigger passed to the actions.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub trigger_data: Json,
    /// The actions as they were when the run started.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub actions: Vec<Action>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The executed actions, in order.
    pub steps: Vec<RunStep>,
}

/// One executed action of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunStep {
    /// Index of the action in the run's action list.
    pub position: i32,
    /// The action id.
    pub action_id: String,
    /// `webhook`, `email`, …
    pub action_type: String,
    /// `success` or `failure`.
    pub result: String,
    /// What the action returned.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Option<Json>,
    /// Why it failed.
    pub error: Option<String>,
    /// Handler attempts it took.
    pub attempts: i32,
    /// When it finished.
    pub executed_at: DateTime<Utc>,
}

type RunRow =
    (Uuid, String, Uuid, String, String, Json, Jsonb<Vec<Action>>, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>);
type StepRow = (Uuid, i32, String, String, String, Option<Json>, Option<String>, i32, DateTime<Utc>);

/// How many runs are `running` now.
pub async fn running_runs(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM ltf_automation_runs WHERE status = 'running'").fetch_one(conn).await
}

/// The latest `limit` runs, of `automation` when given, newest first, with their steps.
pub async fn runs(conn: &mut PgConnection, automation: Option<&str>, limit: i64) -> Result<Vec<AutomationRun>, sqlx::Error> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT run_id, automation_id, source_event_id, correlation_id, status, trigger_data, actions, error, started_at, finished_at
         FROM ltf_automation_runs WHERE ($1::text IS NULL OR automation_id = $1)
         ORDER BY started_at DESC, run_id LIMIT $2",
    )
    .bind(automation)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let steps: Vec<StepRow> = sqlx::query_as(
        "SELECT run_id, position, action_id, action_type, result, data, error, attempts, executed_at
         FROM ltf_automation_steps WHERE run_id = ANY($1) ORDER BY run_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                run_id,
                automation_id,
                source_event_id,
                correlation_id,
                status,
                trigger_data,
                Jsonb(actions),
                error,
                started_at,
                finished_at,
            )| {
                let steps = steps
                    .iter()
                    .filter(|s| s.0 == run_id)
                    .map(|(_, position, action_id, action_type, result, data, error, attempts, executed_at)| RunStep {
                        position: *position,
                        action_id: action_id.clone(),
                        action_type: action_type.clone(),
                        result: result.clone(),
                        data: data.clone(),
                        error: error.clone(),
                        attempts: *attempts,
                        executed_at: *executed_at,
                    })
                    .collect();
                AutomationRun {
                    run_id,
                    automation_id,
                    source_event_id,
                    correlation_id,
                    status,
                    trigger_data,
                    actions,
                    error,
                    started_at,
                    finished_at,
                    steps,
                }
            },
        )
        .collect())
}

/// The run `run_id`.
pub async fn run(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<AutomationRun>, sqlx::Error> {
    let automation: Option<String> = sqlx::query_scalar("SELECT automation_id FROM ltf_automation_runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(automation) = automation else { return Ok(None) };
    Ok(runs(conn, Some(&automation), i64::MAX).await?.into_iter().find(|r| r.run_id == run_id))
}

/// A run as the actions handler needs it: its automation, trigger data, the action list
/// it started with, and the data of the steps done so far (by action id, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// The automation the run belongs to.
    pub automation_id: String,
    /// The trigger data it started from.
    pub trigger_data: Json,
    /// The actions, as they were when the run started.
    pub actions: Vec<Action>,
    /// (action id, step data) of each recorded step, by position.
    pub steps: Vec<(String, Json)>,
}

/// The state of run `run_id`; `None` when no such run was started.
pub async fn run_state(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<RunState>, sqlx::Error> {
    let row: Option<(String, Json, Jsonb<Vec<Action>>)> =
        sqlx::query_as("SELECT automation_id, trigger_data, actions FROM ltf_automation_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((automation_id, trigger_data, Jsonb(actions))) = row else { return Ok(None) };
    let steps: Vec<(String, Option<Json>)> =
        sqlx::query_as("SELECT action_id, data FROM ltf_automation_steps WHERE run_id = $1 ORDER BY position")
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await?;
    let steps = steps.into_iter().map(|(id, data)| (id, data.unwrap_or(Json::Null))).collect();
    Ok(Some(RunState { automation_id, trigger_data, actions, steps }))
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Its id (derived from the source event and the automation).
    pub run_id: Uuid,
    /// The automation.
    pub automation_id: &'a str,
    /// The event that triggered it.
    pub source_event_id: Uuid,
    /// That event's correlation id.
    pub correlation_id: &'a str,
    /// The trigger data.
    pub trigger_data: &'a Json,
    /// The automation's actions at this moment (the run keeps them).
    pub actions: &'a [Action],
    /// Its depth in a chain of automations ([`depth_of_writer`] + 1, or 1).
    pub depth: i32,
}

/// Starts a run (`running`); a run of the same id that exists already is left as it is.
pub async fn start_run(conn: &mut PgConnection, run: &NewRun<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ltf_automation_runs (run_id, automation_id, source_event_id, correlation_id, status, trigger_data, actions, depth)
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $7) ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(run.run_id)
    .bind(run.automation_id)
    .bind(run.source_event_id)
    .bind(run.correlation_id)
    .bind(Jsonb(run.trigger_data))
    .bind(Jsonb(run.actions))
    .bind(run.depth)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that run `run_id` wrote the events `event_ids` (through its record actions).
pub async fn record_effects(conn: &mut PgConnection, run_id: Uuid, event_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO ltf_automation_effects (event_id, run_id) SELECT unnest($1::uuid[]), $2 ON CONFLICT DO NOTHING")
        .bind(event_ids)
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The depth of the run that wrote `event_id`, or `None` when no run did.
pub async fn depth_of_writer(conn: &mut PgConnection, event_id: Uuid) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.depth FROM ltf_automation_effects e JOIN ltf_automation_runs r USING (run_id) WHERE e.event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(conn)
    .await
}

/// Ends a running run with `status` (`succeeded`, `failed`) and `error`; returns whether
/// it was running (a run that ended already is left as it is).
pub async fn finish_run(conn: &mut PgConnection, run_id: Uuid, status: &str, error: Option<&str>) -> Result<bool, sqlx::Error> {
    let ended = sqlx::query(
        "UPDATE ltf_automation_runs SET status = $2, error = $3, finished_at = now() WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(status)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(ended.rows_affected() == 1)
}

/// One executed action of a run.
#[derive(Debug, Clone)]
pub struct NewStep<'a> {
    /// The run.
    pub run_id: Uuid,
    /// The action's position in the run's list.
    pub position: i32,
    /// The action's id.
    pub action_id: &'a str,
    /// The action type (`webhook`, …).
    pub action_type: &'a str,
    /// `success` or `failure`.
    pub result: &'a str,
    /// What the action returned, on success.
    pub data: Option<Json>,
    /// Why it failed, on failure.
    pub error: Option<&'a str>,
    /// The attempt that recorded it.
    pub attempts: i32,
}

/// Records a step; a step recorded already at that position is left as it is.
pub async fn record_step(conn: &mut PgConnection, step: &NewStep<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ltf_automation_steps (run_id, position, action_id, action_type, result, data, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id, position) DO NOTHING",
    )
    .bind(step.run_id)
    .bind(step.position)
    .bind(step.action_id)
    .bind(step.action_type)
    .bind(step.result)
    .bind(step.data.as_ref().map(Jsonb))
    .bind(step.error)
    .bind(step.attempts)
    .execute(conn)
    .await?;
    Ok(())
}
